import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import OCPPWire
import Testing

@testable import WitnessProxy

@Suite("The admin listener's address")
struct AdminBindTests {
    @Test("loopback addresses and localhost are accepted", arguments: ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
    func loopback(host: String) throws {
        try AdminServer.requireLoopback(host)
    }

    /// A name that only begins like a loopback address resolves wherever its owner wants: it used to pass.
    @Test("names and other addresses are refused", arguments: ["127.attacker.example", "127.0.0.1.nip.io", "0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1", "128.0.0.1"])
    func elsewhere(host: String) {
        #expect(throws: ProxyStartupError.self) { try AdminServer.requireLoopback(host) }
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
        #expect((AdminServer.refusal(host: host, origin: origin, allowed: ["lab.example"]) == nil) == answered)
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
