import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import OCPPWire
import Testing
import WitnessTransport

/// A TCP server on 127.0.0.1 that answers each request with fixed bytes, or with nothing, or hangs up on
/// it, for the dialer's refusal and failure paths.
private final class CannedServer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let answer: [UInt8]?
    let closeAtOnce: Bool

    init(answer: [UInt8]?, closeAtOnce: Bool = false) {
        self.answer = answer
        self.closeAtOnce = closeAtOnce
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Closing once the request is in sends a FIN; closing before it arrives would reset the connection.
        if self.closeAtOnce { context.close(promise: nil) }
        guard let answer = self.answer else { return }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: answer)), promise: nil)
    }

    static func start(answer: String?, closeAtOnce: Bool = false, group: any EventLoopGroup) async throws -> any Channel {
        let handler = CannedServer(answer: answer.map { Array($0.utf8) }, closeAtOnce: closeAtOnce)
        return try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in channel.pipeline.addHandler(handler) }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}

@Suite("WebSocket client transport")
struct WebSocketDialerTests {
    /// Host names may start with a digit; only what parses as an IP address goes without server name
    /// indication, which RFC 6066 reserves for host names.
    @Test(
        "the TLS server name is the host name, and none for an IP address",
        arguments: [
            ("wss://csms.example/ocpp", "csms.example"),
            ("wss://1cpo.example/ocpp", "1cpo.example"),
            ("wss://365-charge.example:8443/ocpp", "365-charge.example"),
            ("wss://127.0.0.1:9000/ocpp", nil),
            ("wss://[::1]:9000/ocpp", nil),
        ] as [(String, String?)]
    )
    func serverName(url: String, expected: String?) throws {
        #expect(WebSocketDialer(url: try WebSocketURL(parsing: url), tlsContext: nil).serverName == expected)
    }

    @Test("a refused upgrade comes back with its status, headers and body")
    func refusal() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await CannedServer.start(
            answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 11\r\nX-Reason: id\r\n\r\nunknown id\n", group: group
        )
        let dialer = WebSocketDialer(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(server.localAddress?.port ?? 0)"), tlsContext: nil)
        let outcome = try await dialer.connect(on: group, target: "/CP-1", headers: HTTPHeaders()) { _, _ in }.get()
        if case .refused(let refusal) = outcome {
            #expect(refusal.status == .forbidden)
            #expect(refusal.headers.first(name: "X-Reason") == "id")
            #expect(String(buffer: refusal.body) == "unknown id\n")
        } else {
            Issue.record("expected a refusal, got \(outcome)")
        }
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test("a server that never answers the upgrade times out; one that hangs up is said to have closed")
    func noAnswer() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let silent = try await CannedServer.start(answer: nil, group: group)
        let hangsUp = try await CannedServer.start(answer: nil, closeAtOnce: true, group: group)
        var dialer = WebSocketDialer(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(silent.localAddress?.port ?? 0)"), tlsContext: nil)
        dialer.handshakeTimeout = .milliseconds(200)
        await #expect(throws: WebSocketDialer.HandshakeError.timedOut) {
            try await dialer.connect(on: group, target: "/CP-1", headers: HTTPHeaders()) { _, _ in }.get()
        }
        let other = WebSocketDialer(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(hangsUp.localAddress?.port ?? 0)"), tlsContext: nil)
        await #expect(throws: WebSocketDialer.HandshakeError.closedWithoutAnswer) {
            try await other.connect(on: group, target: "/CP-1", headers: HTTPHeaders()) { _, _ in }.get()
        }
        try await silent.close()
        try await hangsUp.close()
        try await group.shutdownGracefully()
    }

    @Test("a port nobody listens on fails with the connection error, not a hang")
    func unreachable() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let closed = try await CannedServer.start(answer: nil, group: group)
        let port = closed.localAddress?.port ?? 0
        try await closed.close()
        let dialer = WebSocketDialer(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(port)"), tlsContext: nil)
        await #expect(throws: (any Error).self) {
            try await dialer.connect(on: group, target: "/", headers: HTTPHeaders()) { _, _ in }.get()
        }
        try await group.shutdownGracefully()
    }

    @Test("a refusal whose body never comes times out, and the socket is closed")
    func refusalBodyNeverComes() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The head announces 100 bytes of body and sends 5.
        let server = try await CannedServer.start(answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nshort", group: group)
        var dialer = WebSocketDialer(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(server.localAddress?.port ?? 0)"), tlsContext: nil)
        dialer.handshakeTimeout = .milliseconds(300)
        let started = NIODeadline.now()
        await #expect(throws: WebSocketDialer.HandshakeError.timedOut) {
            try await dialer.connect(on: group, target: "/CP-1", headers: HTTPHeaders()) { _, _ in }.get()
        }
        // Not waiting for ever: well within what any machine keeps, far below a hang.
        #expect(NIODeadline.now() - started < .seconds(20))
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test("the request shape carries an HTTP/1.0 request line, another Connection header and the given key")
    func requestShape() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let seen = RequestCapture()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in channel.pipeline.addHandler(seen) }
            .bind(host: "127.0.0.1", port: 0).get()
        var dialer = WebSocketDialer(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(server.localAddress?.port ?? 0)"), tlsContext: nil)
        dialer.handshakeTimeout = .seconds(5)
        let shape = WebSocketDialer.RequestShape(version: .http1_0, connection: ["keep-alive"], key: "abc")
        _ = try? await dialer.connect(on: group, target: "/CP-1", headers: HTTPHeaders(), shape: shape) { _, _ in }.get()
        let request = seen.text
        #expect(request.hasPrefix("GET /CP-1 HTTP/1.0\r\n"))
        #expect(request.lowercased().contains("\r\nconnection: keep-alive\r\n"))
        #expect(!request.lowercased().contains("connection: upgrade"))
        #expect(request.contains("\r\nSec-WebSocket-Key: abc\r\n"))
        try await server.close()
        try await group.shutdownGracefully()
    }
}

/// Keeps what a client sent and answers 400, so the dial ends.
private final class RequestCapture: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = NIOLockedValueBox("")

    var text: String { self.received.withLockedValue { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Self.unwrapInboundIn(data)
        self.received.withLockedValue { $0 += String(buffer: bytes) }
        guard self.text.contains("\r\n\r\n") else { return }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")), promise: nil)
    }
}
