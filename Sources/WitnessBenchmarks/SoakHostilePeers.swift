import Foundation
import NIOCore
import NIOPosix
import OCPPWire

/// The four ways a hostile charger of the soak benchmark misbehaves, each a charge point prefix of its own
/// so the proxy's capture, log and fault policy tell them apart.
enum HostileKind: String, CaseIterable, Sendable {
    /// Upgrades (offering permessage-deflate on every other connection), then sends one text message that
    /// never ends: a first frame without FIN and 16 KiB continuation frames, as fast as the socket takes them.
    case continuationStreamer = "continuation streamer"
    /// Upgrades, then either sends a close frame itself or has its backend side closed by the policy, and in
    /// both cases never answers and never closes the TCP connection.
    case closeStaller = "close staller"
    /// Upgrades on a charge point the policy's delay rule matches and sends valid CALLs as fast as the socket
    /// takes them, never reading an answer.
    case delayFaultSender = "delay-fault sender"
    /// Opens TCP, sends the request line and one header of an upgrade, and stalls.
    case halfUpgrade = "half-finished upgrade"

    /// The kind's name in `--kinds`.
    var option: String {
        switch self {
        case .continuationStreamer: "continuation"
        case .closeStaller: "close"
        case .delayFaultSender: "delay"
        case .halfUpgrade: "upgrade"
        }
    }

    /// The charge point of peer `index` on its `cycle`-th connection; the close staller alternates between
    /// its two variants from one connection to the next, so any number of peers runs both.
    func chargePoint(index: Int, cycle: Int) -> String {
        switch self {
        case .continuationStreamer: "SOAK-STREAM-\(index)"
        case .closeStaller: (index + cycle) % 2 == 0 ? "SOAK-CLOSE-\(index)" : "SOAK-CLOSEWAIT-\(index)"
        case .delayFaultSender: "SOAK-DELAY-\(index)"
        case .halfUpgrade: "SOAK-HALF-\(index)"
        }
    }
}

/// What one hostile connection came to.
struct HostileCycle: Sendable {
    enum End: Sendable {
        /// The proxy closed the connection before the peer's hold ran out.
        case byProxy
        /// The peer held on until its hold (or the phase) ran out, or its bounded work was done, and closed.
        case byPeer
        /// The upgrade was answered with something other than 101 (the status, 0 when it was not HTTP).
        case refused(Int)
        case connectFailed
    }

    var end: End = .byPeer
    var bytesSent = 0
    /// Notes for the per-kind table: "deflate agreed", "close frame received", ...
    var notes: [String] = []
}

/// Completed hostile connections per kind, shared by the hostile peers and the sampler.
actor HostileTally {
    struct Counts: Sendable {
        var peers = 0
        var cycles = 0
        var byProxy = 0
        var byPeer = 0
        var refused = 0
        var connectFailures = 0
        var bytesSent = 0
        var notes: [String: Int] = [:]
    }

    private(set) var counts: [HostileKind: Counts] = [:]

    /// Hostile connections completed so far, of every kind.
    var cycles: Int { self.counts.values.reduce(0) { $0 + $1.cycles } }

    func register(_ kind: HostileKind) { self.counts[kind, default: Counts()].peers += 1 }

    func record(_ kind: HostileKind, _ cycle: HostileCycle) {
        var counts = self.counts[kind, default: Counts()]
        counts.cycles += 1
        counts.bytesSent += cycle.bytesSent
        switch cycle.end {
        case .byProxy: counts.byProxy += 1
        case .byPeer: counts.byPeer += 1
        case .refused(let status):
            counts.refused += 1
            counts.notes["upgrade answered \(status == 0 ? "with something not HTTP" : String(status))", default: 0] += 1
        case .connectFailed: counts.connectFailures += 1
        }
        for note in cycle.notes { counts.notes[note, default: 0] += 1 }
        self.counts[kind] = counts
    }
}

/// One hostile charger: a raw NIO client channel to the proxy on 127.0.0.1 writing bytes built here (no
/// WebSocket library would send them), connecting again and again until the phase ends.
struct HostilePeer: Sendable {
    var kind: HostileKind
    var index: Int
    var port: Int
    var group: any EventLoopGroup
    /// How long one connection misbehaves before the peer gives up and closes it, unless the proxy closes it first.
    var hold: Duration
    /// The pause between one connection's end and the next one's start.
    var pause: Duration

    // Every loop is bounded by count as well as by time, so a run ends even if a clock misbehaves.
    static let maximumCycles = 1_000_000
    static let maximumFramesPerCycle = 1 << 16
    static let maximumCallsPerCycle = 1 << 22
    static let chunkBytes = 16 * 1024

    /// Connects, misbehaves, disconnects and reconnects until `end`, recording each connection in `tally`.
    func run(until end: ContinuousClock.Instant, tally: HostileTally) async {
        let clock = ContinuousClock()
        var cycle = 0
        while clock.now < end && cycle < Self.maximumCycles && !Task.isCancelled {
            let holdEnd = min(clock.now + self.hold, end)
            let outcome = await self.connection(cycle: cycle, until: holdEnd)
            // A connection cut short by the phase's end is not a completed cycle.
            if clock.now < end || outcome.end.isProxy { await tally.record(self.kind, outcome) }
            cycle += 1
            try? await Task.sleep(for: self.pause)
        }
    }

    /// One connection: connect, misbehave until the proxy closes it or `holdEnd`, close.
    private func connection(cycle: Int, until holdEnd: ContinuousClock.Instant) async -> HostileCycle {
        var outcome = HostileCycle()
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: self.group)
                .connectTimeout(.seconds(5))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: "127.0.0.1", port: self.port) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
        } catch {
            outcome.end = .connectFailed
            return outcome
        }
        // The hold: the peer closes the connection itself when it runs out. Whether this close ran tells who
        // ended the connection, whatever the code below was waiting on when it happened.
        let remaining = ContinuousClock.now.duration(to: holdEnd)
        let giveUp = channel.channel.eventLoop.scheduleTask(in: .nanoseconds(max(0, remaining.nanoseconds))) {
            channel.channel.close(promise: nil)
        }
        let chargePoint = self.kind.chargePoint(index: self.index, cycle: cycle)
        var refusedWith: Int?
        do {
            try await channel.executeThenClose { inbound, outbound in
                var reader = HostileReader(inbound.makeAsyncIterator())
                func send(_ bytes: ByteBuffer) async throws {
                    try await outbound.write(bytes)
                    outcome.bytesSent += bytes.readableBytes
                }
                let offersDeflate = self.kind == .continuationStreamer && (self.index + cycle) % 2 == 1
                if self.kind == .halfUpgrade {
                    try await send(ByteBuffer(string: "GET /\(chargePoint) HTTP/1.1\r\nHost: 127.0.0.1:\(self.port)\r\n"))
                    if let answer = try await reader.upgradeResponse() { outcome.notes.append("answered \(answer.status)") }
                    try await reader.drain()
                    return
                }
                try await send(Self.upgradeRequest(chargePoint, port: self.port, offersDeflate: offersDeflate))
                guard let answer = try await reader.upgradeResponse() else {
                    outcome.notes.append("upgrade never answered")
                    return
                }
                guard answer.status == 101 else {
                    refusedWith = answer.status
                    return
                }
                switch self.kind {
                case .continuationStreamer:
                    if offersDeflate { outcome.notes.append(answer.deflateAgreed ? "deflate offered, agreed" : "deflate offered, declined") }
                    try await self.stream(compressed: answer.deflateAgreed, send: send)
                case .closeStaller where chargePoint.hasPrefix("SOAK-CLOSEWAIT-"):
                    // The policy closes the backend side at this CALL; the close the proxy then sends is read
                    // and never answered.
                    try await send(Self.frame(#"[2,"soak-1","Heartbeat",{}]"#))
                    if try await reader.closeFrame() { outcome.notes.append("close-wait: close frame received, never answered") }
                    try await reader.drain()
                case .closeStaller:
                    // A close frame, then nothing: neither the proxy's answer nor its close is read.
                    try await send(Self.frame([0x03, 0xE8], opcode: .close))
                    outcome.notes.append("close sent, answer never read")
                    try await channel.channel.closeFuture.get()
                case .delayFaultSender:
                    try await self.sendCalls(send: send)
                case .halfUpgrade:
                    break
                }
            }
        } catch {
            // A write or read failing is the connection ending; who ended it is told by the hold below.
        }
        giveUp.cancel()
        let peerGaveUp = (try? await giveUp.futureResult.get()) != nil
        if let refusedWith {
            outcome.end = .refused(refusedWith)
        } else {
            outcome.end = peerGaveUp ? .byPeer : .byProxy
        }
        return outcome
    }

    /// One message that never ends: a first frame without FIN, then continuation frames of 16 KiB.
    private func stream(compressed: Bool, send: (ByteBuffer) async throws -> Void) async throws {
        let filler = ByteBuffer(repeating: UInt8(ascii: "x"), count: Self.chunkBytes)
        var first = ByteBuffer(string: #"[2,"soak-stream","DataTransfer",{"vendorId":"soak","data":""#)
        first.writeImmutableBuffer(filler.getSlice(at: 0, length: Self.chunkBytes - first.readableBytes) ?? filler)
        for number in 0..<Self.maximumFramesPerCycle {
            let payload = number == 0 ? first : filler
            var frame = Self.frame(
                compressed ? Self.storedDeflateBlock(payload) : payload, opcode: number == 0 ? .text : .continuation, fin: false
            )
            // RSV1 on the first frame marks the message as compressed (RFC 7692 section 6).
            if compressed && number == 0, let byte = frame.getInteger(at: frame.readerIndex, as: UInt8.self) {
                frame.setInteger(byte | 0x40, at: frame.readerIndex)
            }
            try await send(frame)
        }
    }

    /// Valid Heartbeat CALLs, 64 to a write, never waiting for an answer.
    private func sendCalls(send: (ByteBuffer) async throws -> Void) async throws {
        var id = 0
        while id < Self.maximumCallsPerCycle {
            var batch = ByteBuffer()
            for _ in 0..<64 {
                id += 1
                WebSocketFrameHeader.write(
                    opcode: .text, maskKey: .random(), payload: ByteBuffer(string: #"[2,"soak-\#(id)","Heartbeat",{}]"#), into: &batch
                )
            }
            try await send(batch)
        }
    }

    /// `data` as a non-final stored deflate block (RFC 1951 section 3.2.4): valid compressed data that inflates
    /// to itself, made without a compressor, so the compressed stream is as long as a plain one and costs the
    /// peer nothing to produce. The block starts and ends on a byte boundary, so blocks can follow each other.
    private static func storedDeflateBlock(_ data: ByteBuffer) -> ByteBuffer {
        let length = UInt16(data.readableBytes)
        var block = ByteBuffer()
        block.writeInteger(UInt8(0))  // BFINAL 0, BTYPE 00 (stored), padding to the byte boundary
        block.writeInteger(length, endianness: .little)
        block.writeInteger(~length, endianness: .little)
        block.writeImmutableBuffer(data)
        return block
    }

    /// A masked client frame.
    private static func frame(_ payload: ByteBuffer, opcode: WebSocketWireOpcode = .text, fin: Bool = true) -> ByteBuffer {
        WebSocketFrameHeader.frame(fin: fin, opcode: opcode, maskKey: .random(), payload: payload)
    }

    private static func frame(_ text: String) -> ByteBuffer { Self.frame(ByteBuffer(string: text)) }

    private static func frame(_ bytes: [UInt8], opcode: WebSocketWireOpcode) -> ByteBuffer { Self.frame(ByteBuffer(bytes: bytes), opcode: opcode) }

    private static func upgradeRequest(_ chargePoint: String, port: Int, offersDeflate: Bool) -> ByteBuffer {
        var generator = SystemRandomNumberGenerator()
        let key = Base64.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
        return ByteBuffer(
            string: "GET /\(chargePoint) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n"
                + (offersDeflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "") + "\r\n"
        )
    }
}

/// Reads what the proxy sends a hostile peer: its answer to the upgrade, then frames.
private struct HostileReader {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var pending = ByteBuffer()

    init(_ iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) { self.iterator = iterator }

    struct UpgradeResponse {
        var status: Int
        var deflateAgreed: Bool
    }

    /// Reads up to the end of the HTTP response head; nil when the connection ends first.
    mutating func upgradeResponse() async throws -> UpgradeResponse? {
        let end: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
        while true {
            let bytes = self.pending.readableBytesView
            if let range = bytes.firstRange(of: end) {
                let head = String(decoding: bytes[bytes.startIndex..<range.lowerBound], as: UTF8.self)
                self.pending.moveReaderIndex(to: range.upperBound)
                let lines = head.split(separator: "\r\n")
                let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                let deflate = lines.dropFirst().contains {
                    $0.lowercased().hasPrefix("sec-websocket-extensions:") && $0.lowercased().contains("permessage-deflate")
                }
                return UpgradeResponse(status: status, deflateAgreed: deflate)
            }
            guard var chunk = try await self.iterator.next() else { return nil }
            self.pending.writeBuffer(&chunk)
        }
    }

    /// Reads frames until a close frame arrives (true) or the connection ends (false).
    mutating func closeFrame() async throws -> Bool {
        while true {
            switch WebSocketFrameHeader.parse(self.pending, maximumPayload: 1 << 24) {
            case .header(let header) where self.pending.readableBytes >= header.frameLength:
                self.pending.moveReaderIndex(forwardBy: header.frameLength)
                if header.opcode == .close { return true }
                continue
            case .tooLong:
                self.pending.clear()
            case .header, .needMore:
                break
            }
            guard var chunk = try await self.iterator.next() else { return false }
            self.pending.writeBuffer(&chunk)
        }
    }

    /// Reads and discards everything until the connection ends.
    mutating func drain() async throws {
        while try await self.iterator.next() != nil {}
    }
}

extension HostileCycle.End {
    fileprivate var isProxy: Bool {
        if case .byProxy = self { return true }
        return false
    }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        self.components.seconds * 1_000_000_000 + self.components.attoseconds / 1_000_000_000
    }
}
