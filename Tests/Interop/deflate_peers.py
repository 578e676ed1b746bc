"""WebSocket peers that compress (permessage-deflate, RFC 7692), for the proxy's compression tests.

    deflate_peers.py server PORT_FILE SECONDS [--server-no-context-takeover] [--client-max-window-bits N]
        A `websockets` server speaking ocpp1.6 that answers every CALL: Heartbeat with a fixed time,
        DataTransfer with its data echoed. Writes its port to PORT_FILE.
    deflate_peers.py client URL COUNT
        A `websockets` client (compression on, as by default) sending COUNT DataTransfer CALLs; prints a
        JSON summary: the extension the server's 101 gave, answers, whether every echo matched.
    deflate_peers.py raw URL COUNT
        A client on a plain socket with its own zlib stream (context takeover): sends COUNT DataTransfer
        CALLs, compressed when the 101 agreed to it, in frames with a fixed mask and prints every frame it got back as sent on the
        wire (RSV1, opcode, payload in hex), so two runs can be compared byte for byte.
    deflate_peers.py broken URL
        Negotiates permessage-deflate, then sends a frame marked compressed whose payload is no deflate
        stream; prints the close code it gets back.
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import sys
import urllib.parse
import zlib

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

SUBPROTOCOL = "ocpp1.6"
FIXED_TIME = "2026-12-03T00:00:00.000Z"


def payload_for(index):
    # Repetitive text, so that later messages compress against earlier ones (context takeover).
    return "meter reading %d of a long charging session, energy register %d Wh; " % (index, 10000 + index * 37) * 4


async def answer(websocket):
    try:
        await answer_calls(websocket)
    except websockets.ConnectionClosed:
        pass  # The broken peer's connection ends this way.


async def answer_calls(websocket):
    async for message in websocket:
        call = json.loads(message)
        if call[0] != 2:
            continue
        action, body = call[2], call[3]
        if action == "Heartbeat":
            result = {"currentTime": FIXED_TIME}
        elif action == "DataTransfer":
            result = {"status": "Accepted", "data": body.get("data", "")}
        else:
            result = {}
        await websocket.send(json.dumps([3, call[1], result], separators=(",", ":")))


async def run_server(port_file, seconds, options):
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover="--server-no-context-takeover" in options,
        client_max_window_bits=int(options[options.index("--client-max-window-bits") + 1]) if "--client-max-window-bits" in options else None,
    )
    async with serve(answer, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL], extensions=[factory], compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(port_file + ".tmp", port_file)
        await asyncio.sleep(seconds)


async def run_client(url, count):
    async with connect(url, subprotocols=[SUBPROTOCOL]) as websocket:
        extensions = websocket.response.headers.get("Sec-WebSocket-Extensions")
        matched = 0
        for index in range(count):
            data = payload_for(index)
            await websocket.send(json.dumps([2, "m%d" % index, "DataTransfer", {"vendorId": "witness", "data": data}]))
            reply = json.loads(await websocket.recv())
            if reply[0] == 3 and reply[1] == "m%d" % index and reply[2].get("data") == data:
                matched += 1
        print(json.dumps({"extensions": extensions, "answers": count, "matched": matched}))


def handshake(url):
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    ) % (parts.path or "/", parts.hostname, parts.port, key, SUBPROTOCOL)
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("connection closed during the upgrade: %r" % response)
        response += chunk
    head, rest = response.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    if " 101 " not in lines[0] + " ":
        raise SystemExit("upgrade refused: " + lines[0])
    headers = {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in lines[1:] if ":" in line}
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        raise SystemExit("wrong Sec-WebSocket-Accept")
    return sock, headers, bytearray(rest)


def frame(opcode, payload, rsv1):
    mask = b"\x11\x22\x33\x44"
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes([first, 0x80 | length])
    elif length < 65536:
        header = bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(sock, buffer):
    def need(n):
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buffer.extend(chunk)

    need(2)
    first, second = buffer[0], buffer[1]
    length, offset = second & 0x7F, 2
    if length == 126:
        need(4)
        length, offset = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        need(10)
        length, offset = int.from_bytes(buffer[2:10], "big"), 10
    need(offset + length)
    payload = bytes(buffer[offset : offset + length])
    del buffer[: offset + length]
    return {"fin": bool(first & 0x80), "rsv1": bool(first & 0x40), "opcode": first & 0x0F, "payload": payload}


def run_raw(url, count):
    sock, headers, buffer = handshake(url)
    deflater = zlib.compressobj(wbits=-15)
    inflater = zlib.decompressobj(wbits=-15)
    frames, texts = [], []
    for index in range(count):
        text = json.dumps([2, "m%d" % index, "DataTransfer", {"vendorId": "witness", "data": payload_for(index)}]).encode()
        if headers.get("sec-websocket-extensions"):
            compressed = deflater.compress(text) + deflater.flush(zlib.Z_SYNC_FLUSH)
            sock.sendall(frame(0x1, compressed[:-4], True))
        else:
            sock.sendall(frame(0x1, text, False))
        got = read_frame(sock, buffer)
        frames.append({"rsv1": got["rsv1"], "opcode": got["opcode"], "payload": got["payload"].hex()})
        data = inflater.decompress(got["payload"] + b"\x00\x00\xff\xff") if got["rsv1"] else got["payload"]
        texts.append(json.loads(data)[2].get("data") == payload_for(index))
    sock.sendall(frame(0x8, (1000).to_bytes(2, "big"), False))
    print(json.dumps({"extensions": headers.get("sec-websocket-extensions"), "frames": frames, "echoed": all(texts)}))


def run_broken(url):
    sock, headers, buffer = handshake(url)
    sock.sendall(frame(0x1, b"\xff\xfe\xfd\xfc this is not deflate", True))
    code = None
    try:
        while True:
            got = read_frame(sock, buffer)
            if got["opcode"] == 0x8:
                code = int.from_bytes(got["payload"][:2], "big") if len(got["payload"]) >= 2 else None
                break
    except (EOFError, OSError):
        pass
    print(json.dumps({"extensions": headers.get("sec-websocket-extensions"), "closeCode": code}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        asyncio.run(run_server(sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
    elif mode == "client":
        asyncio.run(run_client(sys.argv[2], int(sys.argv[3])))
    elif mode == "raw":
        run_raw(sys.argv[2], int(sys.argv[3]))
    elif mode == "broken":
        run_broken(sys.argv[2])
    else:
        raise SystemExit(__doc__)
