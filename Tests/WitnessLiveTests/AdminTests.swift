import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import OCPPWire
import Testing
import WitnessCapture

@testable import WitnessLive
import WitnessProxy

@Suite("The admin listener's address")
struct AdminBindTests {
    @Test("loopback addresses and localhost are accepted", arguments: ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
    func loopback(host: String) throws {
        try RequestOrigin.requireLoopback(host)
    }

    /// A name that only begins like a loopback address resolves wherever its owner wants: it used to pass.
    @Test("names and other addresses are refused", arguments: ["127.attacker.example", "127.0.0.1.nip.io", "0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1", "128.0.0.1"])
    func elsewhere(host: String) {
        #expect(throws: ProxyStartupError.self) { try RequestOrigin.requireLoopback(host) }
    }
}

@Suite("The admin listener's requests")
struct AdminRequestTests {
    @Test("Host and Origin must name loopback, localhost or an allowed name", arguments: [
        ("127.0.0.1:9100", nil, true), ("localhost", "http://localhost:9100", true), ("[::1]:9100", "https://[::1]:9100", true),
        ("lab.example:9100", "http://lab.example:9100", true), ("evil.example", nil, false), ("127.0.0.1.evil.example", nil, false),
        ("127.0.0.1", "http://evil.example", false), ("127.0.0.1", "null", false), ("", nil, false),
    ] as [(String, String?, Bool)])
    func hostAndOrigin(host: String, origin: String?, answered: Bool) {
        #expect((RequestOrigin.refusal(host: host, origin: origin, allowed: ["lab.example"]) == nil) == answered)
    }

    /// One browser tab that stops reading made the proxy buffer every event for it, without bound.
    @Test("an event-stream client that stops reading is dropped once a mebibyte waits for it")
    func slowStreamClient() throws {
        let board = LiveBoard()
        let server = CaptureViewServer(board: board, sources: [], host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton)
        let channel = EmbeddedChannel(handler: AdminHandler(server: server))
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/events", headers: ["Host": "127.0.0.1"])
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(board.subscriberCount == 1)
        // A reading client gets everything.
        for _ in 0..<100 { board.publish("deviation", ["detail": .string(String(repeating: "x", count: 400))]) }
        channel.embeddedEventLoop.run()
        #expect(channel.isActive)
        // A client that reads nothing more: its socket stops being writable, and what waits grows to the limit.
        channel.isWritable = false
        for _ in 0..<1000 { board.publish("deviation", ["detail": .string(String(repeating: "x", count: 400))]) }
        channel.embeddedEventLoop.run()
        #expect(channel.isActive, "dropped before a mebibyte waited")
        for _ in 0..<5000 { board.publish("deviation", ["detail": .string(String(repeating: "x", count: 400))]) }
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(board.subscriberCount == 0)
    }
}

@Suite("The live board's chargers")
struct LiveBoardRetentionTests {
    static let start: Int64 = 1_795_000_000_000_000

    static func record(_ kind: RecordKind, _ connection: UInt64, _ chargePoint: String, at seconds: Int64) -> CaptureRecord {
        let ts = Timestamp(microseconds: start + seconds * 1_000_000).rfc3339
        return CaptureRecord(
            file: "live", line: 1, fields: ["ts": .string(ts), "kind": .string(kind.rawValue), "conn": .int(Int(connection)), "chargePoint": .string(chargePoint)]
        )
    }

    /// A week of reconnecting chargers grew the board (and its frames) for ever: a charger gone longer than
    /// the retention now leaves it, one that comes back in time stays, and without a retention (the view of
    /// a capture) every charger stays.
    @Test("a charger gone longer than the retention leaves the board")
    func released() {
        let board = LiveBoard(stateRetentionSeconds: 60)
        let kept = LiveBoard()
        let records = [
            Self.record(.open, 1, "CP-A", at: 0), Self.record(.open, 2, "CP-B", at: 0), Self.record(.close, 1, "CP-A", at: 10),
            Self.record(.close, 2, "CP-B", at: 20), Self.record(.open, 3, "CP-B", at: 50), Self.record(.open, 4, "CP-C", at: 100),
        ]
        for record in records {
            board.record(record)
            kept.record(record)
        }
        #expect(board.chargerCount == 2)
        #expect(kept.chargerCount == 3)
    }
}
