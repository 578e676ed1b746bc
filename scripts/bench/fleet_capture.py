#!/usr/bin/env python3
"""Writes a capture of a fleet to stdout, for timing `ocpp-witness report --policy` on many open windows.

Each of CHARGERS 1.6 chargers (default 2000) opens a connection and sends ROUNDS (default 20) Authorize
calls, each answered Accepted, one millisecond apart across the fleet; no transaction starts. Every
answer opens a window of policies/authorization.yaml's accepted-tag-starts, which stays open for two
minutes, longer than the capture, so the fleet holds CHARGERS x ROUNDS windows at the end.

    python3 scripts/bench/fleet_capture.py [CHARGERS [ROUNDS]] > /tmp/fleet.jsonl
    time ocpp-witness report /tmp/fleet.jsonl --policy policies/authorization.yaml -o /tmp/fleet.json
"""
import datetime
import json
import sys

chargers = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
start = datetime.datetime(2026, 12, 4, 8, 0, 0)
out = sys.stdout


def stamp(ms):
    return (start + datetime.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def line(record):
    out.write(json.dumps(record, separators=(",", ":")) + "\n")


line({"ts": stamp(0), "kind": "header", "format": 1, "started": stamp(0), "backend": "B"})
for c in range(chargers):
    line({"ts": stamp(c), "kind": "open", "conn": c + 1, "chargePoint": f"CP-{c}", "chosen": "ocpp1.6", "version": "1.6"})
clock = chargers
for r in range(rounds):
    for c in range(chargers):
        for direction, message in (
            ("toCSMS", [2, f"a{r}", "Authorize", {"idTag": f"T{c}-{r}"}]),
            ("toCharger", [3, f"a{r}", {"idTagInfo": {"status": "Accepted"}}]),
        ):
            clock += 1
            line({
                "ts": stamp(clock), "kind": "frame", "conn": c + 1, "chargePoint": f"CP-{c}", "dir": direction,
                "opcode": "text", "msgType": message[0], "msgId": message[1], "action": "Authorize", "enc": "json",
                "payload": message,
            })
