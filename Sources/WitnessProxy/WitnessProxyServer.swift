import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessChaos

/// Counts since the proxy started.
public struct ProxyStatistics: Sendable, Hashable {
    /// TCP connections accepted from chargers.
    public var accepted = 0
    /// Pairs currently relaying.
    public var active = 0
    /// Upgrades answered with an error status (backend refused or unreachable, not a WebSocket request).
    public var refused = 0
    /// Pairs that have finished.
    public var closed = 0
    public var messagesToCSMS = 0
    public var messagesToCharger = 0
}

/// Sent down both pipelines of every pair when the proxy shuts down.
struct ProxyShutdownEvent: Sendable {}

/// Sent down both pipelines of a pair to close it on request (admin API).
struct ProxyDisconnectEvent: Sendable {
    var code: UInt16
    var reason: String
}

/// Sent to a pair's backend-side handler when an outage makes the backend unreachable.
struct ProxyOutageEvent: Sendable {}

/// Sent to a pair's charger-side handler to send a CALL of the proxy's own (admin API).
struct ProxyInjectEvent: Sendable {
    var action: String
    var payload: JSONValue
    var towardsCharger: Bool
}

/// A pair that is relaying, as the admin API lists it.
public struct ConnectionInfo: Sendable {
    public var id: UInt64
    public var chargePoint: String
    public var remote: String
    public var subprotocol: String?
    public var opened: CaptureTimestamp
}

/// The OCPP Witness proxy: accepts chargers, dials the backend for each, relays and records.
public final class WitnessProxyServer: Sendable {
    public let configuration: ProxyConfiguration
    private let recorder: CaptureWriter?
    private let logger: Logger
    private let group: any EventLoopGroup
    private let chargerTLS: NIOSSLContext?
    private let dialer: UpstreamDialer
    private let redactor: Redactor
    private let state = NIOLockedValueBox(State())
    private let startedNanos = NIODeadline.now().uptimeNanoseconds
    private let outages = OutageBoard()

    private struct State {
        var serverChannel: (any Channel)?
        var nextConnectionID: UInt64 = 1
        var pairs: [UInt64: [any Channel]] = [:]
        var pairInfo: [UInt64: ConnectionInfo] = [:]
        var statistics = ProxyStatistics()
    }

    /// Builds the TLS contexts up front so that a bad certificate or key fails here, naming the file.
    public init(
        configuration: ProxyConfiguration, recorder: CaptureWriter?, logger: Logger, group: any EventLoopGroup
    ) throws {
        self.configuration = configuration
        self.recorder = recorder
        self.logger = logger
        self.group = group
        self.chargerTLS = try configuration.chargerTLS?.makeContext()
        self.dialer = UpstreamDialer(
            upstream: configuration.upstream,
            tlsContext: configuration.upstream.secure ? try configuration.upstreamTLS.makeContext() : nil,
            connectTimeout: configuration.upstreamConnectTimeout,
            handshakeTimeout: configuration.handshakeTimeout,
            maximumFrameBytes: configuration.maximumFrameBytes,
            forwardsCompression: configuration.forwardsCompression
        )
        self.redactor = Redactor(enabled: recorder?.configuration.redactSecrets ?? true)
    }

    /// Binds the listener; returns the bound address (useful with port 0).
    @discardableResult
    public func start() async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.configureCharger(channel) }
            }
            .bind(host: self.configuration.listenHost, port: self.configuration.listenPort)
            .get()
        self.state.withLockedValue { $0.serverChannel = channel }
        guard let address = channel.localAddress else { throw ProxyStartupError("listener has no local address") }
        self.logger.info(
            "listening",
            metadata: ["address": "\(address)", "upstream": "\(self.configuration.upstream)", "tls": "\(self.chargerTLS != nil)"]
        )
        return address
    }

    public var localAddress: SocketAddress? {
        self.state.withLockedValue { $0.serverChannel?.localAddress }
    }

    public var statistics: ProxyStatistics {
        self.state.withLockedValue { $0.statistics }
    }

    /// Stops accepting, sends close 1001 to both sides of every pair and waits (up to `grace`) for them to go.
    public func shutdown(grace: TimeAmount = .seconds(3)) async {
        let (server, channels) = self.state.withLockedValue { state in
            (state.serverChannel, state.pairs.values.flatMap { $0 })
        }
        try? await server?.close()
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ProxyShutdownEvent())
        }
        let deadline = NIODeadline.now() + grace
        for channel in channels {
            let remaining = deadline - NIODeadline.now()
            if remaining > .zero {
                let timer = channel.eventLoop.scheduleTask(in: remaining) { channel.close(promise: nil) }
                try? await channel.closeFuture.get()
                timer.cancel()
            } else {
                try? await channel.close()
            }
        }
    }

    /// The pairs relaying now.
    public var connections: [ConnectionInfo] {
        self.state.withLockedValue { Array($0.pairInfo.values) }.sorted { $0.id < $1.id }
    }

    /// Closes every connection of `chargePoint` with a close frame `code` on both sides, as a one-off fault.
    /// Returns how many connections were closed.
    @discardableResult
    public func disconnect(chargePoint: String, code: UInt16, reason: String) -> Int {
        let channels = self.state.withLockedValue { state in
            state.pairInfo.values.filter { $0.chargePoint == chargePoint }.flatMap { state.pairs[$0.id] ?? [] }
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ProxyDisconnectEvent(code: code, reason: reason))
        }
        return channels.count / 2
    }

    /// Makes the backend unreachable for `chargePoint` (nil: for every charger) during `seconds`. In `refuse`
    /// mode the backend side of open pairs is reset (their chargers are then dropped too) and new upgrades get
    /// 503; in `blackhole` mode nothing gets through and new upgrades hang until 504.
    public func startOutage(chargePoint: String?, seconds: Double, mode: OutageMode) {
        self.outages.start(chargePoint: chargePoint, seconds: seconds, mode: mode)
        self.logger.warning("outage started", metadata: ["chargePoint": "\(chargePoint ?? "all")", "seconds": "\(seconds)", "mode": "\(mode.rawValue)"])
        guard mode == .refuse else { return }
        let backends = self.state.withLockedValue { state in
            state.pairInfo.values.filter { chargePoint == nil || $0.chargePoint == chargePoint }.compactMap { state.pairs[$0.id]?.last }
        }
        for channel in backends { channel.pipeline.fireUserInboundEventTriggered(ProxyOutageEvent()) }
    }

    /// Ends an outage before its time: for `chargePoint`, or (nil) the one for all chargers.
    public func endOutage(chargePoint: String?) {
        self.outages.end(chargePoint: chargePoint)
        self.logger.notice("outage ended", metadata: ["chargePoint": "\(chargePoint ?? "all")"])
    }

    private func refuseDuringOutage(_ handshake: ChargerHandshake, mode: OutageMode, eventLoop: any EventLoop) -> EventLoopFuture<HTTPHeaders?> {
        let status: HTTPResponseStatus = mode == .refuse ? .serviceUnavailable : .gatewayTimeout
        let detail = mode == .refuse ? "backend unreachable (injected outage)" : "backend did not answer (injected blackhole outage)"
        handshake.refusal = .proxy(status, cause: "outage", detail: detail)
        guard mode == .blackhole else { return eventLoop.makeSucceededFuture(nil) }
        return eventLoop.scheduleTask(in: self.configuration.handshakeTimeout) { nil }.futureResult
    }

    /// Sends the CALL `action` with `payload` on every connection of `chargePoint`, to the charger or to
    /// the backend; the answer is recorded and not forwarded. Returns how many connections it went to.
    @discardableResult
    public func inject(chargePoint: String, action: String, payload: JSONValue, towardsCharger: Bool) -> Int {
        let chargerChannels = self.state.withLockedValue { state in
            state.pairInfo.values.filter { $0.chargePoint == chargePoint }.compactMap { state.pairs[$0.id]?.first }
        }
        for channel in chargerChannels {
            channel.pipeline.fireUserInboundEventTriggered(ProxyInjectEvent(action: action, payload: payload, towardsCharger: towardsCharger))
        }
        return chargerChannels.count
    }

    // MARK: Charger side

    private func configureCharger(_ channel: any Channel) throws {
        let id = self.state.withLockedValue { state -> UInt64 in
            state.statistics.accepted += 1
            defer { state.nextConnectionID += 1 }
            return state.nextConnectionID
        }
        let handshake = ChargerHandshake(
            connectionID: id, remoteAddress: channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        )
        let bound = NIOLoopBound(handshake, eventLoop: channel.eventLoop)
        let sync = channel.pipeline.syncOperations
        if let chargerTLS {
            try sync.addHandler(NIOSSLServerHandler(context: chargerTLS))
        }
        let upgrader = NIOTypedWebSocketServerUpgrader<Void>(
            maxFrameSize: self.configuration.maximumFrameBytes,
            enableAutomaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                self.dialBackend(for: bound.value, head: head, chargerChannel: channel)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture { try self.startRelay(bound.value, chargerChannel: channel) }
            }
        )
        let upgrade = NIOTypedHTTPServerUpgradeConfiguration<Void>(
            upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RefusalResponder(handshake: bound.value) { handshake, refusal, head in
                            self.recordRefusal(handshake, refusal, head: head)
                        }
                    )
                }
            }
        )
        _ = try sync.configureUpgradableHTTPServerPipeline(
            configuration: NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgrade)
        )
        try sync.addHandler(HandshakeFailureRecorder(handshake: handshake) { handshake, cause, detail in
            // NIO answers unparsable HTTP with 400 itself; a failed TLS handshake gets no HTTP answer.
            self.recordRefusal(
                handshake,
                ChargerHandshake.Refusal(
                    status: .badRequest, headers: [:], body: ByteBuffer(), cause: cause, detail: detail,
                    statusSent: cause == "badRequest"
                ),
                head: nil
            )
        })
        handshake.timeout = channel.eventLoop.scheduleTask(in: self.configuration.handshakeTimeout) {
            let handshake = bound.value
            guard !handshake.completed else { return }
            handshake.completed = true
            self.recordRefusal(
                handshake,
                ChargerHandshake.Refusal(
                    status: .requestTimeout, headers: [:], body: ByteBuffer(), cause: "handshakeTimeout",
                    detail: "WebSocket upgrade not completed within \(self.configuration.handshakeTimeout.nanoseconds / 1_000_000_000) s; connection closed",
                    statusSent: false
                ),
                head: nil
            )
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in
            let handshake = bound.value
            handshake.timeout?.cancel()
            if handshake.session?.finished != true, handshake.backendChannel != nil, !handshake.completed {
                handshake.backendChannel?.close(promise: nil)
            }
        }
    }

    private func dialBackend(
        for handshake: ChargerHandshake, head: HTTPRequestHead, chargerChannel: any Channel
    ) -> EventLoopFuture<HTTPHeaders?> {
        let target = ChargerRequestTarget(uri: head.uri)
        // From here the dialer's own timeout applies, and a slow backend gets the charger a 504.
        handshake.timeout?.cancel()
        handshake.upgradeAttempted = true
        handshake.target = target
        handshake.offered = ChargerHandshake.subprotocols(in: head.headers)
        handshake.requestHeaders = head.headers
        let session = RelaySession(
            id: handshake.connectionID, chargePoint: target.chargePointId, recorder: self.recorder, logger: self.logger,
            maximumMessageBytes: self.configuration.maximumMessageBytes, maximumFrameBytes: self.configuration.maximumFrameBytes,
            faults: self.configuration.faults,
            proxyStartNanos: self.startedNanos
        ) { session in
            self.release(session)
        }
        // Outages exist only with fault injection; without it the relay skips the check entirely.
        if self.configuration.faults != nil {
            session.outages = self.outages
            session.startOutage = { chargePoint, seconds, mode in self.startOutage(chargePoint: chargePoint, seconds: seconds, mode: mode) }
        }
        handshake.session = session
        if let mode = self.outages.active(for: target.chargePointId) {
            return self.refuseDuringOutage(handshake, mode: mode, eventLoop: chargerChannel.eventLoop)
        }
        let backendRelay = NIOLoopBound(RelayHandler(side: .backend, session: session), eventLoop: chargerChannel.eventLoop)
        handshake.backendRelay = backendRelay.value
        let requestTarget = self.configuration.upstream.requestTarget(path: target.path, query: target.query)
        let bound = NIOLoopBound(handshake, eventLoop: chargerChannel.eventLoop)
        return self.dialer.dial(on: chargerChannel.eventLoop, target: requestTarget, chargerHeaders: head.headers) { channel in
            try RelayHandler.install(backendRelay.value, on: channel)
        }.map { outcome -> HTTPHeaders? in
            let handshake = bound.value
            switch outcome {
            case .upgraded(let backendChannel, let response):
                handshake.backendChannel = backendChannel
                handshake.backendResponse = response
                guard chargerChannel.isActive else {
                    backendChannel.close(promise: nil)
                    return nil
                }
                return self.agreeSubprotocol(handshake, backendChannel: backendChannel)
            case .rejected(let rejection):
                let reason = rejection.status.reasonPhrase
                handshake.refusal = ChargerHandshake.Refusal(
                    status: rejection.status, headers: rejection.headers, body: rejection.body, cause: "upstreamStatus",
                    detail: "backend answered the upgrade with \(rejection.status.code) \(reason)"
                )
                return nil
            }
        }.recover { error in
            let failure = UpstreamDialer.classify(error)
            bound.value.refusal = .proxy(failure.status, cause: failure.cause.rawValue, detail: failure.detail)
            return nil
        }
    }

    /// The charger's 101 carries the backend's choice; a choice the charger did not offer (or none, when it
    /// offered some) would be rejected by the charger, so the proxy refuses it with 502 and says why.
    private func agreeSubprotocol(_ handshake: ChargerHandshake, backendChannel: any Channel) -> HTTPHeaders? {
        let chosen = handshake.chosenSubprotocol
        let offeredLowered = handshake.offered.map { $0.lowercased() }
        let agreed: Bool
        switch chosen {
        case .some(let chosen): agreed = offeredLowered.contains(chosen.lowercased())
        case .none: agreed = handshake.offered.isEmpty
        }
        guard agreed else {
            let detail =
                chosen.map { "backend chose subprotocol '\($0)', which the charger did not offer (\(handshake.offered.joined(separator: ", ")))" }
                ?? "backend accepted the upgrade without choosing any of the offered subprotocols (\(handshake.offered.joined(separator: ", ")))"
            handshake.refusal = .proxy(.badGateway, cause: "noSubprotocolAgreed", detail: detail)
            backendChannel.close(promise: nil)
            return nil
        }
        var headers = HTTPHeaders()
        if let chosen { headers.add(name: "Sec-WebSocket-Protocol", value: chosen) }
        // The backend's permessage-deflate answer goes to the charger as it is, so both hops compress alike.
        if let answer = handshake.backendResponse?.headers[canonicalForm: "Sec-WebSocket-Extensions"].joined(separator: ", "), !answer.isEmpty {
            let offered = self.configuration.forwardsCompression ? handshake.requestHeaders[canonicalForm: "Sec-WebSocket-Extensions"].map(String.init) : []
            switch PerMessageDeflate.accepted(answer, offered: offered) {
            case .success(let parameters):
                headers.add(name: "Sec-WebSocket-Extensions", value: parameters.header)
                // Under a policy with rules, messages may be changed, dropped or injected: the proxy then
                // forwards them uncompressed, which keeps both peers' contexts valid whatever it does.
                let policyInForce = !(self.configuration.faults?.engine?.policy.rules.isEmpty ?? true)
                handshake.session?.compression = RelayCompression(parameters: parameters, mode: policyInForce ? .decompressed : .passThrough)
            case .failure(let problem):
                let detail = offered.isEmpty ? "backend answered with the extension '\(answer)', which was not offered" : problem.description
                handshake.refusal = .proxy(.badGateway, cause: "extensionNotAgreed", detail: detail)
                backendChannel.close(promise: nil)
                return nil
            }
        }
        return headers
    }

    private func startRelay(_ handshake: ChargerHandshake, chargerChannel: any Channel) throws {
        handshake.completed = true
        handshake.timeout?.cancel()
        guard let session = handshake.session, let backendRelay = handshake.backendRelay,
            let backendChannel = handshake.backendChannel
        else {
            chargerChannel.close(promise: nil)
            return
        }
        let chargerRelay = RelayHandler(side: .charger, session: session)
        try RelayHandler.install(chargerRelay, on: chargerChannel)
        self.state.withLockedValue { state in
            state.pairs[session.id] = [chargerChannel, backendChannel]
            state.pairInfo[session.id] = ConnectionInfo(
                id: session.id, chargePoint: session.chargePoint, remote: handshake.remoteAddress,
                subprotocol: handshake.chosenSubprotocol, opened: CaptureTimestamp.now()
            )
            state.statistics.active += 1
        }
        self.recordOpen(handshake, session: session, chargerChannel: chargerChannel, backendChannel: backendChannel)
        RelayHandler.link(charger: chargerRelay, backend: backendRelay)
    }

    private func release(_ session: RelaySession) {
        self.state.withLockedValue { state in
            guard state.pairs.removeValue(forKey: session.id) != nil else { return }
            state.pairInfo.removeValue(forKey: session.id)
            state.statistics.active -= 1
            state.statistics.closed += 1
            state.statistics.messagesToCSMS += session.messagesToCSMS
            state.statistics.messagesToCharger += session.messagesToCharger
        }
    }

    // MARK: Records

    /// What a security review needs of one TLS hop: the version negotiated and the certificate the peer presented.
    /// Runs on the channel's event loop (the handler's state is not thread-safe).
    static func tlsFacts(_ channel: any Channel) -> (version: String?, peer: JSONValue) {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLHandler.self) else { return (nil, .null) }
        let version: String? = handler.tlsVersion.map {
            switch $0 {
            case .tlsv1: return "TLSv1.0"
            case .tlsv11: return "TLSv1.1"
            case .tlsv12: return "TLSv1.2"
            case .tlsv13: return "TLSv1.3"
            }
        }
        guard let certificate = handler.peerCertificate else { return (version, .null) }
        func distinguished(_ names: [SSLCertificateName]) -> String {
            names.map { name in
                let key: String
                switch name.type {
                case .commonName: key = "CN"
                case .organization: key = "O"
                case .organizationalUnit: key = "OU"
                case .country: key = "C"
                case .state: key = "ST"
                case .city: key = "L"
                default: key = "attribute"
                }
                return key + "=" + name.value
            }.joined(separator: ",")
        }
        let commonName = certificate.subjectName.last { $0.type == .commonName }?.value
        return (
            version,
            [
                "subject": .string(distinguished(certificate.subjectName)), "issuer": .string(distinguished(certificate.issuerName)),
                "commonName": commonName.map(JSONValue.string) ?? .null,
            ]
        )
    }

    private func recordOpen(_ handshake: ChargerHandshake, session: RelaySession, chargerChannel: any Channel, backendChannel: any Channel) {
        let chargerHop = Self.tlsFacts(chargerChannel)
        let backendHop = Self.tlsFacts(backendChannel)
        let target = handshake.target ?? ChargerRequestTarget(uri: "/")
        let chosen = handshake.chosenSubprotocol
        let version = chosen.flatMap(OCPPVersion.init(subprotocol:))
        var fields = JSONObject([
            "path": .string(target.path),
            "query": target.query.map(JSONValue.string) ?? .null,
            "remote": .string(handshake.remoteAddress),
            "upstream": .string(
                self.configuration.upstream.description.prefix(while: { $0 != "/" }) + "//" + self.configuration.upstream.hostHeader
                    + self.configuration.upstream.requestTarget(path: target.path, query: target.query)
            ),
            "offered": .array(handshake.offered.map(JSONValue.string)),
            "chosen": chosen.map(JSONValue.string) ?? .null,
            "version": version.map { .string($0.rawValue) } ?? .null,
            "headers": .object(self.redactor.recordedHeaders(handshake.requestHeaders.map { ($0.name, $0.value) })),
            "compression": session.compression.map { compression in
                .object(JSONObject(["extension": .string(compression.parameters.header), "mode": .string(compression.mode.rawValue)]))
            } ?? .null,
            "tls": .object(
                JSONObject([
                    "charger": .bool(self.chargerTLS != nil),
                    "chargerClientCertificate": .bool(self.configuration.chargerTLS?.clientCAFile != nil),
                    "upstream": .bool(self.configuration.upstream.secure),
                    "chargerVersion": chargerHop.version.map(JSONValue.string) ?? .null,
                    "upstreamVersion": backendHop.version.map(JSONValue.string) ?? .null,
                    "clientCertificate": chargerHop.peer,
                ])
            ),
        ])
        if let backendName = self.configuration.backendName { fields["backend"] = .string(backendName) }
        session.logger.info(
            "connection open",
            metadata: ["path": "\(target.path)", "subprotocol": "\(chosen ?? "none")", "remote": "\(handshake.remoteAddress)"]
        )
        _ = session.record(.connection("open", connection: session.id, chargePoint: session.chargePoint, fields: fields))
    }

    private func recordRefusal(_ handshake: ChargerHandshake, _ refusal: ChargerHandshake.Refusal, head: HTTPRequestHead?) {
        self.state.withLockedValue { $0.statistics.refused += 1 }
        let target = handshake.target ?? head.map { ChargerRequestTarget(uri: $0.uri) }
        var fields = JSONObject([
            "path": target.map { .string($0.path) } ?? .null,
            "remote": .string(handshake.remoteAddress),
            "status": refusal.statusSent ? .int(Int(refusal.status.code)) : .null,
            "cause": .string(refusal.cause),
            "detail": .string(refusal.detail),
        ])
        if !handshake.offered.isEmpty { fields["offered"] = .array(handshake.offered.map(JSONValue.string)) }
        if refusal.cause == "upstreamStatus", refusal.body.readableBytes > 0 {
            fields["body"] = .string(String(buffer: refusal.body))
        }
        if let head { fields["headers"] = .object(self.redactor.recordedHeaders(head.headers.map { ($0.name, $0.value) })) }
        self.logger.warning(
            "upgrade refused",
            metadata: [
                "conn": "\(handshake.connectionID)", "chargePoint": "\(target?.chargePointId ?? "?")",
                "status": "\(refusal.status.code)", "cause": "\(refusal.cause)", "detail": "\(refusal.detail)",
            ]
        )
        self.recorder?.record(
            .connection("reject", connection: handshake.connectionID, chargePoint: target?.chargePointId, fields: fields)
        )
    }
}

/// Records what goes wrong before a charger's upgrade completes: unparsable HTTP, TLS failures.
final class HandshakeFailureRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private let handshake: ChargerHandshake
    private let record: (ChargerHandshake, String, String) -> Void

    init(handshake: ChargerHandshake, record: @escaping (ChargerHandshake, String, String) -> Void) {
        self.handshake = handshake
        self.record = record
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        defer { context.fireErrorCaught(error) }
        guard !self.handshake.completed else { return }
        switch error {
        case let upgradeError as NIOWebSocketUpgradeError:
            // Fired by NIO before it gives up on the upgrade; the refusal responder answers it.
            self.handshake.upgradeAttempted = true
            if self.handshake.target == nil {
                self.handshake.invalidUpgradeHeaders =
                    "invalid WebSocket upgrade request (\(upgradeError)): it needs one Sec-WebSocket-Key and Sec-WebSocket-Version: 13"
            }
        case is HTTPParserError:
            self.handshake.completed = true
            self.handshake.timeout?.cancel()
            self.record(self.handshake, "badRequest", "charger sent something that is not HTTP: \(error)")
        case is NIOSSLError, is BoringSSLError:
            self.handshake.completed = true
            self.handshake.timeout?.cancel()
            self.record(self.handshake, "chargerTLS", "TLS handshake with the charger failed: \(error)")
            context.close(promise: nil)
        default:
            break
        }
    }
}

@available(*, unavailable)
extension HandshakeFailureRecorder: Sendable {}
