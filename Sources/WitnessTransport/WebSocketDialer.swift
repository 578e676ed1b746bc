import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire

/// Opens client WebSocket connections: TCP (to a literal address directly, to a host name through the
/// resolver with Happy Eyeballs), TLS with server name indication for host names, then the HTTP upgrade.
/// The proxy's upstream side, the simulated chargers and replay all connect through it.
package struct WebSocketDialer: Sendable {
    package let url: WebSocketURL
    /// The TLS context for `wss://`; nil for `ws://`.
    package let tlsContext: NIOSSLContext?
    package var connectTimeout: TimeAmount
    /// Time from the TCP connect to the server's answer to the upgrade; nil waits as long as it takes.
    package var handshakeTimeout: TimeAmount?
    package var maximumFrameBytes: Int
    /// TCP keep-alive probes on the connection (the proxy's backend side sets it).
    package var keepAlive: Bool
    /// The server's address when `url` names it by IP: dialled directly, without a resolver.
    let literalAddress: SocketAddress?

    package init(
        url: WebSocketURL, tlsContext: NIOSSLContext?, connectTimeout: TimeAmount = .seconds(10), handshakeTimeout: TimeAmount? = nil,
        maximumFrameBytes: Int = 16 << 20, keepAlive: Bool = false
    ) {
        self.url = url
        self.tlsContext = tlsContext
        self.connectTimeout = connectTimeout
        self.handshakeTimeout = handshakeTimeout
        self.maximumFrameBytes = maximumFrameBytes
        self.keepAlive = keepAlive
        let host = url.host.hasPrefix("[") && url.host.hasSuffix("]") ? String(url.host.dropFirst().dropLast()) : url.host
        self.literalAddress = try? SocketAddress(ipAddress: host, port: url.port)
    }

    /// The name sent as TLS server name indication: the host name, or none when the server is named by IP
    /// address (RFC 6066 allows only host names there). Host names may start with a digit (`1cpo.example`);
    /// only what parses as an address is one.
    package var serverName: String? {
        self.literalAddress == nil ? self.url.host : nil
    }

    /// The server's answer to the upgrade.
    package enum Outcome: Sendable {
        /// 101: the WebSocket is open, with the handlers `upgraded` added.
        case upgraded(channel: any Channel, response: HTTPResponseHead)
        /// Any other status, with up to 64 KiB of the body; the connection is closed.
        case refused(Refusal)
    }

    /// A non-101 answer.
    package struct Refusal: Sendable {
        package var status: HTTPResponseStatus
        package var headers: HTTPHeaders
        package var body: ByteBuffer
    }

    /// How the upgrade request departs from the one NIO's client would send, to carry a peer's request across
    /// as it came (a proxy forwarding a charger's HTTP/1.0 request line, its Connection header, its key).
    package struct RequestShape: Sendable {
        /// The request line's version.
        package var version: HTTPVersion = .http1_1
        /// The Connection header's tokens, in place of NIO's `upgrade`; nil keeps NIO's.
        package var connection: [String]?
        /// The Sec-WebSocket-Key to send (the server's accept is checked against it); nil sends a random one.
        package var key: String?

        package init(version: HTTPVersion = .http1_1, connection: [String]? = nil, key: String? = nil) {
            self.version = version
            self.connection = connection
            self.key = key
        }
    }

    /// Why the handshake ended without an answer.
    package enum HandshakeError: Error, Sendable, CustomStringConvertible {
        /// No answer to the upgrade within `handshakeTimeout`.
        case timedOut
        /// The server closed the connection without answering.
        case closedWithoutAnswer

        package var description: String {
            switch self {
            case .timedOut: "no answer to the WebSocket upgrade in time"
            case .closedWithoutAnswer: "the server closed the connection without answering the upgrade"
            }
        }
    }

    /// Connects and asks for the upgrade of `target` with `headers`, after a `Host` header naming the server
    /// (one among `headers` is left out). `upgraded` adds the frame handlers to the channel, on its event loop, before the outcome is
    /// returned. A failure is the first error the handshake saw (a TLS alert says more than the close that
    /// follows it); the connection is closed.
    package func connect(
        on group: any EventLoopGroup, target: String, headers: HTTPHeaders, shape: RequestShape = RequestShape(),
        upgraded: @escaping @Sendable (any Channel, HTTPResponseHead) throws -> Void
    ) -> EventLoopFuture<Outcome> {
        let eventLoop = group.next()
        let outcome = eventLoop.makePromise(of: Step.self)
        // The server's own Host first, as a browser sends it.
        var request = HTTPHeaders([("Host", self.url.hostHeader)])
        for (name, value) in headers where name.lowercased() != "host" { request.add(name: name, value: value) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.isEmpty ? "/" : target, headers: request)
        let tlsContext = self.tlsContext
        let serverName = self.serverName
        let maximumFrameBytes = self.maximumFrameBytes

        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            // One read per readiness, as on the charger side (WitnessProxyServer): a flooding backend gets a turn.
            .channelOption(.maxMessagesPerRead, value: 1)
        if self.keepAlive { bootstrap = bootstrap.channelOption(.socketOption(.so_keepalive), value: 1) }
        bootstrap = bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                if let tlsContext {
                    try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                }
                let upgrader = NIOTypedWebSocketClientUpgrader<Step>(
                    requestKey: shape.key ?? NIOWebSocketClientUpgrader.randomRequestKey(),
                    maxFrameSize: maximumFrameBytes, enableAutomaticErrorHandling: false,
                    upgradePipelineHandler: { channel, response in
                        channel.eventLoop.makeCompletedFuture {
                            try upgraded(channel, response)
                            return .upgraded(channel: channel, response: response)
                        }
                    }
                )
                let upgrade = NIOTypedHTTPClientUpgradeConfiguration<Step>(
                    upgradeRequestHead: head, upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let collector = RefusalCollector(promise: channel.eventLoop.makePromise())
                            try channel.pipeline.syncOperations.addHandler(collector)
                            return .refused(collector.promise.futureResult)
                        }
                    }
                )
                var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
                configuration.leftOverBytesStrategy = .forwardBytes
                let result = try sync.configureUpgradableHTTPClientPipeline(configuration: configuration)
                if shape.version != .http1_1 || shape.connection != nil {
                    try sync.addHandler(RequestShaper(shape: shape), position: .after(try sync.handler(type: HTTPRequestEncoder.self)))
                }
                // Made here, on the channel's event loop: callers need not be on one.
                let errorCatcher = NIOLoopBound(HandshakeErrorCatcher(), eventLoop: channel.eventLoop)
                try sync.addHandler(errorCatcher.value)
                result.whenComplete { result in
                    outcome.completeWith(
                        result.mapError { error in
                            // NIO's upgrade handler, removed by a close before any answer, fails with this.
                            if let channelError = error as? ChannelError, case .inappropriateOperationForState = channelError {
                                return errorCatcher.value.error ?? HandshakeError.closedWithoutAnswer
                            }
                            return errorCatcher.value.error ?? error
                        }
                    )
                }
            }
        }

        // The deadline covers the whole answer: a refusal's body that comes slowly, or never, times out too.
        let answer = eventLoop.makePromise(of: Outcome.self)
        let timeout = self.handshakeTimeout.map { limit in
            eventLoop.scheduleTask(in: limit) { answer.fail(HandshakeError.timedOut) }
        }
        let connected = self.literalAddress.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: self.url.host, port: self.url.port)
        connected.whenFailure { outcome.fail($0) }
        outcome.futureResult.whenComplete { result in
            switch result {
            case .success(.upgraded(let channel, let response)):
                answer.succeed(.upgraded(channel: channel, response: response))
            case .success(.refused(let refusal)):
                refusal.whenComplete { answer.completeWith($0.map { .refused($0) }) }
            case .failure(let error):
                answer.fail(error)
            }
        }
        return answer.futureResult.always { _ in
            timeout?.cancel()
        }.flatMapErrorThrowing { error in
            // Whatever the dial got as far as, its socket goes: nothing is left open behind a failure.
            connected.whenSuccess { $0.close(promise: nil) }
            throw error
        }
    }

    /// What the client upgrade handler produced, before a refusal's body has arrived.
    enum Step: Sendable {
        case upgraded(channel: any Channel, response: HTTPResponseHead)
        case refused(EventLoopFuture<Refusal>)
    }
}

/// Rewrites the upgrade request's head as `RequestShape` says, between NIO's upgrade handler and the
/// encoder, then leaves the pipeline.
final class RequestShaper: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let shape: WebSocketDialer.RequestShape

    init(shape: WebSocketDialer.RequestShape) { self.shape = shape }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = Self.unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        head.version = self.shape.version
        if let tokens = self.shape.connection {
            head.headers.remove(name: "Connection")
            if !tokens.isEmpty { head.headers.add(name: "Connection", value: tokens.joined(separator: ", ")) }
        }
        context.write(Self.wrapOutboundOut(.head(head)), promise: promise)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension RequestShaper: Sendable {}

/// Collects a non-101 response (head and up to 64 KiB of body), then closes.
final class RefusalCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<WebSocketDialer.Refusal>
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var done = false

    init(promise: EventLoopPromise<WebSocketDialer.Refusal>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var part):
            if self.body.readableBytes < 65_536 { self.body.writeBuffer(&part) }
        case .end:
            self.complete(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.complete(context: context)
        context.fireChannelInactive()
    }

    private func complete(context: ChannelHandlerContext) {
        guard !self.done else { return }
        self.done = true
        guard let head = self.head else {
            self.promise.fail(WebSocketDialer.HandshakeError.closedWithoutAnswer)
            return
        }
        self.promise.succeed(WebSocketDialer.Refusal(status: head.status, headers: head.headers, body: self.body))
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension RefusalCollector: Sendable {}

/// Keeps the first error seen during the handshake (a TLS failure says more than "closed").
final class HandshakeErrorCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    var error: (any Error)?

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = error }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension HandshakeErrorCatcher: Sendable {}
