import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire

/// The backend's answer to a forwarded upgrade request.
enum UpstreamOutcome: Sendable {
    /// 101: the WebSocket is open; the relay handler is already in its pipeline.
    case upgraded(channel: any Channel, response: HTTPResponseHead)
    /// Any other status, with what the backend said, to be passed on to the charger.
    case rejected(UpstreamRejection)
}

/// A non-101 answer from the backend.
struct UpstreamRejection: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer
}

/// Why the backend could not be reached at all.
struct UpstreamFailure: Error, CustomStringConvertible {
    enum Cause: String {
        case unreachable = "upstreamUnreachable"
        case timeout = "upstreamTimeout"
        case tls = "upstreamTLS"
        case protocolError = "upstreamProtocol"
    }

    var cause: Cause
    var detail: String
    var description: String { self.detail }

    /// The status a charger gets when the backend could not be reached.
    var status: HTTPResponseStatus { self.cause == .timeout ? .gatewayTimeout : .badGateway }
}

/// Opens the backend side of a pair: TCP, optional TLS, then the WebSocket upgrade with the charger's
/// path, query, subprotocol offer and credentials. Runs on the charger's event loop so both channels
/// of the pair share it.
struct UpstreamDialer {
    let upstream: WebSocketURL
    let tlsContext: NIOSSLContext?
    let connectTimeout: TimeAmount
    let handshakeTimeout: TimeAmount
    let maximumFrameBytes: Int
    /// The backend's address when `upstream` names it by IP: dialled directly, without a resolver and
    let forwardsCompression: Bool
    /// Happy Eyeballs for every charger. A host name is resolved for each connection, so DNS changes apply.
    let literalAddress: SocketAddress?

    init(
        upstream: WebSocketURL, tlsContext: NIOSSLContext?, connectTimeout: TimeAmount, handshakeTimeout: TimeAmount, maximumFrameBytes: Int,
        forwardsCompression: Bool = true
    ) {
        self.forwardsCompression = forwardsCompression
        self.upstream = upstream
        self.tlsContext = tlsContext
        self.connectTimeout = connectTimeout
        self.handshakeTimeout = handshakeTimeout
        self.maximumFrameBytes = maximumFrameBytes
        let host = upstream.host.hasPrefix("[") && upstream.host.hasSuffix("]") ? String(upstream.host.dropFirst().dropLast()) : upstream.host
        self.literalAddress = try? SocketAddress(ipAddress: host, port: upstream.port)
    }

    /// The name sent as TLS server name indication: the upstream's host name, or none when the upstream is an
    /// IP address (RFC 6066 allows only host names there). Host names may start with a digit
    /// (`1cpo.example`); only what parses as an address is one.
    var serverName: String? {
        self.literalAddress == nil ? self.upstream.host : nil
    }

    /// Request headers that describe the charger's own hop and are not forwarded.
    static let hopHeaders: Set<String> = [
        "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
        "content-length", "transfer-encoding", "keep-alive", "proxy-connection", "te", "trailer",
    ]

    func dial(
        on eventLoop: any EventLoop, target: String, chargerHeaders: HTTPHeaders,
        makeRelay: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<UpstreamOutcome> {
        let outcome = eventLoop.makePromise(of: DialStep.self)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: self.upstream.hostHeader)
        for (name, value) in chargerHeaders where !Self.hopHeaders.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        // The charger's compression offers go on (the proxy reads permessage-deflate); other extensions do not.
        let offers = self.forwardsCompression ? PerMessageDeflate.offers(in: chargerHeaders[canonicalForm: "Sec-WebSocket-Extensions"].map(String.init)) : []
        if !offers.isEmpty { headers.add(name: "Sec-WebSocket-Extensions", value: offers.joined(separator: ", ")) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)
        let tlsContext = self.tlsContext
        let serverName = self.serverName
        let maximumFrameBytes = self.maximumFrameBytes
        let errorCatcher = NIOLoopBound(HandshakeErrorCatcher(), eventLoop: eventLoop)

        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<DialStep>(
                        maxFrameSize: maximumFrameBytes,
                        enableAutomaticErrorHandling: false,
                        upgradePipelineHandler: { channel, response in
                            channel.eventLoop.makeCompletedFuture {
                                try makeRelay(channel)
                                return .upgraded(channel: channel, response: response)
                            }
                        }
                    )
                    let upgrade = NIOTypedHTTPClientUpgradeConfiguration<DialStep>(
                        upgradeRequestHead: head,
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                let collector = RejectionCollector(promise: channel.eventLoop.makePromise())
                                try channel.pipeline.syncOperations.addHandler(collector)
                                return .rejected(collector.promise.futureResult)
                            }
                        }
                    )
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
                    configuration.leftOverBytesStrategy = .forwardBytes
                    let upgraded = try sync.configureUpgradableHTTPClientPipeline(configuration: configuration)
                    try sync.addHandler(errorCatcher.value)
                    upgraded.whenComplete { outcome.completeWith($0.mapError { errorCatcher.value.error ?? $0 }) }
                }
            }

        let timeout = eventLoop.scheduleTask(in: self.handshakeTimeout) {
            outcome.fail(UpstreamFailure(cause: .timeout, detail: "backend did not complete the upgrade in time"))
        }
        let connected = self.literalAddress.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: self.upstream.host, port: self.upstream.port)
        connected.whenFailure { error in
            outcome.fail(Self.classify(error))
        }
        let upstreamDescription = self.upstream.description
        return outcome.futureResult.flatMap { step in
            timeout.cancel()
            switch step {
            case .upgraded(let channel, let response):
                return eventLoop.makeSucceededFuture(.upgraded(channel: channel, response: response))
            case .rejected(let rejection):
                return rejection.map { .rejected($0) }
            }
        }.flatMapErrorThrowing { error in
            timeout.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
            if let failure = error as? UpstreamFailure { throw failure }
            var failure = Self.classify(error)
            failure.detail = "\(upstreamDescription): \(failure.detail)"
            throw failure
        }
    }

    static func classify(_ error: any Error) -> UpstreamFailure {
        if let failure = error as? UpstreamFailure { return failure }
        if error is NIOSSLError || error is BoringSSLError {
            return UpstreamFailure(cause: .tls, detail: "TLS handshake with the backend failed: \(error)")
        }
        if let connectError = error as? ChannelError, case .connectTimeout = connectError {
            return UpstreamFailure(cause: .timeout, detail: "connecting to the backend timed out")
        }
        if error is NIOConnectionError || error is IOError {
            return UpstreamFailure(cause: .unreachable, detail: "backend unreachable: \(error)")
        }
        if error is NIOHTTPClientUpgradeError {
            return UpstreamFailure(cause: .protocolError, detail: "backend answered the upgrade incorrectly: \(error)")
        }
        return UpstreamFailure(cause: .unreachable, detail: "backend connection failed: \(error)")
    }
}

/// What the client upgrade handler produced, before a rejection's body has arrived.
enum DialStep: Sendable {
    case upgraded(channel: any Channel, response: HTTPResponseHead)
    case rejected(EventLoopFuture<UpstreamRejection>)
}

/// Collects a backend's non-101 response (head and up to 64 KiB of body), then closes.
final class RejectionCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<UpstreamRejection>
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var done = false

    init(promise: EventLoopPromise<UpstreamRejection>) { self.promise = promise }

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
            self.promise.fail(UpstreamFailure(cause: .protocolError, detail: "backend closed without answering the upgrade"))
            return
        }
        self.promise.succeed(UpstreamRejection(status: head.status, headers: head.headers, body: self.body))
        context.close(promise: nil)
    }
}

/// Keeps the first error seen during the upstream handshake (a TLS failure says more than "closed").
final class HandshakeErrorCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    var error: (any Error)?

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = error }
        context.fireErrorCaught(error)
    }
}
