import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire

/// A backend (CSMS) simulator: accepts chargers over WebSocket and answers like a well-behaved CSMS.
///
/// Tests and the demo use it in-process; `ocpp-witness simulate csms` runs it on its own.
public final class CSMSSimulator: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Versions it speaks, in order of preference when a charger offers several.
        public var versions: [OCPPVersion]
        /// When set, chargers must send `Authorization: Basic` with this password or get 401.
        public var requiredPassword: String?
        /// TLS for a `wss://` listener.
        public var tls: TLSConfiguration?
        /// Keep every connection's arrival and its endpoint's transcript (tests read them). Off for a simulator
        /// that runs for hours (`simulate csms`, the benchmarks' backend): then only open connections are kept,
        /// without transcripts, so memory follows the connections, not the traffic.
        public var keepsHistory = true
        /// Answer chargers' CALLs; nil uses the built-in answers.
        public var handler: (@Sendable (_ chargePoint: String, _ version: OCPPVersion, _ action: String, _ payload: JSONValue) async throws -> JSONValue)?

        public init(
            host: String = "127.0.0.1", port: Int = 0, versions: [OCPPVersion] = [.v201, .v16, .v21],
            requiredPassword: String? = nil, tls: TLSConfiguration? = nil
        ) {
            self.host = host
            self.port = port
            self.versions = versions
            self.requiredPassword = requiredPassword
            self.tls = tls
        }
    }

    /// What one connected charger sent in its upgrade request.
    public struct Arrival: Sendable {
        public var chargePoint: String
        public var uri: String
        public var headers: HTTPHeaders
        public var endpoint: OCPPEndpoint
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var server: (any Channel)?
        var arrivals: [Arrival] = []
        /// Open connections when closed ones were last dropped (without history).
        var activeAtLastPrune = 0
        var waiters: [(String, CheckedContinuation<OCPPEndpoint, Never>)] = []
        var nextTransactionId = 1000
        var connectHandler: (@Sendable (OCPPEndpoint, String) -> Void)?
    }

    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger = Logger(label: "csms-sim")) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    /// Called for every charger that completes its upgrade.
    public func onConnect(_ handler: @escaping @Sendable (OCPPEndpoint, String) -> Void) {
        self.state.withLockedValue { $0.connectHandler = handler }
    }

    /// Every upgrade accepted so far, in order.
    public var arrivals: [Arrival] { self.state.withLockedValue { $0.arrivals } }

    /// The most recent connection of `chargePoint`, waiting for it if it has not arrived yet.
    public func connection(_ chargePoint: String) async -> OCPPEndpoint {
        await withCheckedContinuation { continuation in
            let existing = self.state.withLockedValue { state -> OCPPEndpoint? in
                if let arrival = state.arrivals.last(where: { $0.chargePoint == chargePoint && $0.endpoint.isActive }) {
                    return arrival.endpoint
                }
                state.waiters.append((chargePoint, continuation))
                return nil
            }
            if let existing { continuation.resume(returning: existing) }
        }
    }

    @discardableResult
    public func start() async throws -> SocketAddress {
        let sslContext = try self.configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.configure(channel, sslContext: sslContext) }
            }
            .bind(host: self.configuration.host, port: self.configuration.port)
            .get()
        self.state.withLockedValue { $0.server = channel }
        guard let address = channel.localAddress else { throw OCPPEndpointError("CSMS simulator has no address") }
        return address
    }

    public var localAddress: SocketAddress? { self.state.withLockedValue { $0.server?.localAddress } }

    /// Stops listening and closes every charger connection.
    public func stop() async {
        let (server, arrivals) = self.state.withLockedValue { ($0.server, $0.arrivals) }
        try? await server?.close()
        for arrival in arrivals where arrival.endpoint.isActive {
            await arrival.endpoint.close(code: .goingAway, reason: "CSMS simulator stopping")
        }
    }

    private final class UpgradeState {
        var refusal: (HTTPResponseStatus, String)?
        var chosen: OCPPVersion?
    }

    private func configure(_ channel: any Channel, sslContext: NIOSSLContext?) throws {
        let sync = channel.pipeline.syncOperations
        if let sslContext { try sync.addHandler(NIOSSLServerHandler(context: sslContext)) }
        let upgradeState = NIOLoopBound(UpgradeState(), eventLoop: channel.eventLoop)
        let box = NIOLockedValueBox<OCPPEndpoint?>(nil)
        let upgrader = NIOTypedWebSocketServerUpgrader<Void>(
            maxFrameSize: 16 << 20, enableAutomaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                channel.eventLoop.makeCompletedFuture { self.decide(head, state: upgradeState.value) }
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(OCPPEndpointHandler(endpoint: box))
                    let version = upgradeState.value.chosen ?? .v16
                    let target = ChargerRequestTarget(uri: head.uri)
                    let endpoint = OCPPEndpoint(
                        channel: channel, version: version, isClient: false, idPrefix: "csms-", keepsTranscript: self.configuration.keepsHistory
                    )
                    self.accept(endpoint, chargePoint: target.chargePointId, head: head)
                    box.withLockedValue { $0 = endpoint }
                    channel.pipeline.fireUserInboundEventTriggered(EndpointReady())
                }
            }
        )
        let upgrade = NIOTypedHTTPServerUpgradeConfiguration<Void>(
            upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture {
                    let refusal = upgradeState.value.refusal ?? (.badRequest, "expected a WebSocket upgrade")
                    try channel.pipeline.syncOperations.addHandler(StatusResponder(status: refusal.0, body: refusal.1))
                }
            }
        )
        _ = try sync.configureUpgradableHTTPServerPipeline(
            configuration: NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgrade)
        )
    }

    private func decide(_ head: HTTPRequestHead, state: UpgradeState) -> HTTPHeaders? {
        if let password = self.configuration.requiredPassword {
            let expected = "Basic " + Base64.encode(Array("\(ChargerRequestTarget(uri: head.uri).chargePointId):\(password)".utf8))
            guard head.headers.first(name: "Authorization") == expected else {
                state.refusal = (.unauthorized, "invalid charge point credentials")
                return nil
            }
        }
        let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].map { $0.lowercased() }
        guard !offered.isEmpty else {
            state.chosen = self.configuration.versions.first
            return HTTPHeaders()
        }
        guard let version = offered.lazy.compactMap({ OCPPVersion(subprotocol: String($0)) })
            .first(where: { self.configuration.versions.contains($0) })
        else {
            state.refusal = (.badRequest, "none of the offered subprotocols is supported")
            return nil
        }
        state.chosen = version
        return ["Sec-WebSocket-Protocol": version.subprotocol]
    }

    private func accept(_ endpoint: OCPPEndpoint, chargePoint: String, head: HTTPRequestHead) {
        let handler = self.configuration.handler
        // The version, not the endpoint: the endpoint keeps this closure, and a closure keeping the endpoint
        // would keep every connection's endpoint (and what it was reassembling) for ever.
        let version = endpoint.version
        endpoint.onCall { action, payload in
            if let handler { return try await handler(chargePoint, version, action, payload) }
            return try OCPPMessages.csmsAnswer(action, payload, version: version) {
                self.state.withLockedValue { state in
                    defer { state.nextTransactionId += 1 }
                    return state.nextTransactionId
                }
            }
        }
        let (waiters, connectHandler) = self.state.withLockedValue { state in
            state.arrivals.append(Arrival(chargePoint: chargePoint, uri: head.uri, headers: head.headers, endpoint: endpoint))
            if !self.configuration.keepsHistory, state.arrivals.count >= 2 * max(64, state.activeAtLastPrune) {
                // Closed connections go, in one pass when the list has doubled: amortised, and never the open ones.
                state.arrivals.removeAll { !$0.endpoint.isActive }
                state.activeAtLastPrune = state.arrivals.count
            }
            let ready = state.waiters.filter { $0.0 == chargePoint }
            state.waiters.removeAll { $0.0 == chargePoint }
            return (ready, state.connectHandler)
        }
        for (_, continuation) in waiters { continuation.resume(returning: endpoint) }
        connectHandler?(endpoint, chargePoint)
    }
}

/// Answers an HTTP request with a fixed status and text, then closes.
final class StatusResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let status: HTTPResponseStatus
    let body: String

    init(status: HTTPResponseStatus, body: String) {
        self.status = status
        self.body = body
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = Self.unwrapInboundIn(data) else { return }
        var headers: HTTPHeaders = ["Content-Type": "text/plain", "Content-Length": "\(self.body.utf8.count)", "Connection": "close"]
        if self.status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Basic realm=\"OCPP\"") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: self.status, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: self.body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

@available(*, unavailable)
extension StatusResponder: Sendable {}
