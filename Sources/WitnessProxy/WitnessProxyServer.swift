import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessPolicy

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
    /// Bytes that delay and bandwidth faults hold back right now, over all pairs, each held message counting
    /// 256 bytes more than its size (as the held-bytes budgets count it).
    public var heldBytes = 0
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
    public var opened: Timestamp
}

/// The OCPP Witness proxy: accepts chargers, dials the backend for each, relays and records.
public final class WitnessProxyServer: Sendable {
    public let configuration: ProxyConfiguration
    package let recorder: CaptureWriter?
    let logger: Logger
    let group: any EventLoopGroup
    let chargerTLS: NIOSSLContext?
    let dialer: UpstreamDialer
    let redactor: Redactor
    let state = NIOLockedValueBox(State())
    let startedNanos = NIODeadline.now().uptimeNanoseconds
    let outages = OutageBoard()
    let metrics = ProxyMetrics()
    /// Every pair's bounds; the held-bytes budget in it is shared by all pairs.
    let relayLimits: RelayLimits

    struct State {
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
        self.relayLimits = RelayLimits(
            strictWebSocket: configuration.strictWebSocket, closingTimeout: configuration.closingTimeout,
            heldBytesPerConnection: configuration.heldBytesPerConnection,
            // A connection with 1/64 of the high watermark queued is one of the few filling the queue.
            recorderShare: max(16, (recorder?.configuration.highWatermark ?? 65_536) / 64),
            heldBytesTotal: HeldBytesBudget(limit: configuration.heldBytesTotal)
        )
    }

    /// Binds the listener; returns the bound address (useful with port 0).
    @discardableResult
    public func start() async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // One read (at most 64 KiB) per readiness: a charger flooding small messages then gets a turn like
            // every other connection of its event loop, instead of four reads' worth of messages in one go.
            .childChannelOption(.maxMessagesPerRead, value: 1)
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
        var statistics = self.state.withLockedValue { $0.statistics }
        statistics.heldBytes = self.relayLimits.heldBytesTotal.bytes
        return statistics
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

    /// Makes the backend unreachable for `chargePoint` (nil: for every charger) during `duration`. In `refuse`
    /// mode the backend side of open pairs is reset (their chargers are then dropped too) and new upgrades get
    /// 503; in `blackhole` mode nothing gets through and new upgrades hang until 504.
    public func startOutage(chargePoint: String?, duration: BoundedDuration, mode: OutageMode) {
        self.outages.start(chargePoint: chargePoint, duration: duration, mode: mode)
        self.logger.warning("outage started", metadata: ["chargePoint": "\(chargePoint ?? "all")", "seconds": "\(duration.seconds)", "mode": "\(mode.rawValue)"])
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

    func refuseDuringOutage(_ handshake: ChargerHandshake, mode: OutageMode, eventLoop: any EventLoop) -> EventLoopFuture<HTTPHeaders?> {
        let status: HTTPResponseStatus = mode == .refuse ? .serviceUnavailable : .gatewayTimeout
        let detail = mode == .refuse ? "backend unreachable (injected outage)" : "backend did not answer (injected blackhole outage)"
        handshake.refuse(.proxy(status, cause: "outage", detail: detail))
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
}
