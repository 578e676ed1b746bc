import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire
import WitnessCapture

/// How a simulated charger connects.
public struct OCPPClientOptions: Sendable {
    /// Subprotocols offered, in order of preference.
    public var subprotocols: [String]
    /// `Basic` credentials (user is usually the charge point id).
    public var basicAuth: (user: String, password: String)?
    /// TLS settings for `wss://`; nil uses the system trust store.
    public var tls: TLSConfiguration?
    /// A context made once from `tls`, for many connections (making one per connection loads the trust
    /// roots each time).
    public var sslContext: NIOSSLContext?
    public var extraHeaders: [(String, String)]
    public var connectTimeout: TimeAmount

    public init(
        subprotocols: [String], basicAuth: (user: String, password: String)? = nil, tls: TLSConfiguration? = nil,
        extraHeaders: [(String, String)] = [], connectTimeout: TimeAmount = .seconds(10)
    ) {
        self.subprotocols = subprotocols
        self.basicAuth = basicAuth
        self.tls = tls
        self.extraHeaders = extraHeaders
        self.connectTimeout = connectTimeout
    }
}

/// Why a simulated charger could not open its WebSocket.
public struct OCPPConnectError: Error, CustomStringConvertible, Sendable {
    /// The HTTP status the server answered with, when it answered.
    public var status: Int?
    public var body: String
    public var description: String {
        self.status.map { "upgrade refused with HTTP \($0): \(self.body)" } ?? "connection failed: \(self.body)"
    }
}

public enum OCPPClient {
    /// Connects to `url` (the full address including the charge point id) and upgrades to WebSocket.
    public static func connect(
        to url: WebSocketURL, options: OCPPClientOptions, group: any EventLoopGroup, idPrefix: String = ""
    ) async throws -> OCPPEndpoint {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: url.hostHeader)
        if !options.subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: options.subprotocols.joined(separator: ", "))
        }
        if let auth = options.basicAuth {
            headers.add(name: "Authorization", value: "Basic " + Base64.encode(Array("\(auth.user):\(auth.password)".utf8)))
        }
        for (name, value) in options.extraHeaders { headers.add(name: name, value: value) }
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: url.pathPrefix.isEmpty ? "/" : url.pathPrefix, headers: headers
        )
        let sslContext = try url.secure ? (options.sslContext ?? NIOSSLContext(configuration: options.tls ?? .makeClientConfiguration())) : nil
        let box = NIOLockedValueBox<OCPPEndpoint?>(nil)

        enum Step: Sendable {
            case upgraded(any Channel, HTTPResponseHead)
            case refused(EventLoopFuture<(HTTPResponseHead, ByteBuffer)>)
        }

        let step = try await ClientBootstrap(group: group)
            .connectTimeout(options.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        let name = url.host.first?.isNumber == true || url.host.contains(":") ? nil : url.host
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: name))
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<Step>(
                        maxFrameSize: 16 << 20, enableAutomaticErrorHandling: false,
                        upgradePipelineHandler: { channel, response in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(OCPPEndpointHandler(endpoint: box))
                                return .upgraded(channel, response)
                            }
                        }
                    )
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration<Step>(
                        upgradeRequestHead: head, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                let collector = ResponseCollector(promise: channel.eventLoop.makePromise())
                                try channel.pipeline.syncOperations.addHandler(collector)
                                return .refused(collector.promise.futureResult)
                            }
                        }
                    )
                    var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                    pipeline.leftOverBytesStrategy = .forwardBytes
                    return try sync.configureUpgradableHTTPClientPipeline(configuration: pipeline)
                }
            }
            .get()

        switch step {
        case .upgraded(let channel, let response):
            let chosen = response.headers.first(name: "Sec-WebSocket-Protocol")
            guard let version = chosen.flatMap(OCPPVersion.init(subprotocol:))
                ?? (options.subprotocols.isEmpty ? .v16 : nil)
            else {
                try? await channel.close()
                throw OCPPConnectError(status: nil, body: "server chose no OCPP subprotocol (offered \(options.subprotocols))")
            }
            let endpoint = OCPPEndpoint(channel: channel, version: version, isClient: true, idPrefix: idPrefix)
            box.withLockedValue { $0 = endpoint }
            channel.pipeline.fireUserInboundEventTriggered(EndpointReady())
            return endpoint
        case .refused(let response):
            let (head, body) = try await response.get()
            throw OCPPConnectError(status: Int(head.status.code), body: String(buffer: body))
        }
    }
}

/// Collects a non-101 HTTP response.
final class ResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<(HTTPResponseHead, ByteBuffer)>
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var done = false

    init(promise: EventLoopPromise<(HTTPResponseHead, ByteBuffer)>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body(var part): self.body.writeBuffer(&part)
        case .end:
            self.complete()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.complete()
        context.fireChannelInactive()
    }

    private func complete() {
        guard !self.done else { return }
        self.done = true
        if let head {
            self.promise.succeed((head, self.body))
        } else {
            self.promise.fail(OCPPConnectError(status: nil, body: "server closed without an answer"))
        }
    }
}

@available(*, unavailable)
extension ResponseCollector: Sendable {}
