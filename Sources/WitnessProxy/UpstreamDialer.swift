import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire
import WitnessTransport

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

/// Opens the backend side of a pair through the client transport: TCP, optional TLS, then the WebSocket
/// upgrade with the charger's path, query, subprotocol offer and credentials. Runs on the charger's event
/// loop so both channels of the pair share it.
struct UpstreamDialer {
    let transport: WebSocketDialer
    let forwardsCompression: Bool

    init(
        upstream: WebSocketURL, tlsContext: NIOSSLContext?, connectTimeout: TimeAmount, handshakeTimeout: TimeAmount, maximumFrameBytes: Int,
        forwardsCompression: Bool = true
    ) {
        self.forwardsCompression = forwardsCompression
        self.transport = WebSocketDialer(
            url: upstream, tlsContext: tlsContext, connectTimeout: connectTimeout, handshakeTimeout: handshakeTimeout,
            maximumFrameBytes: maximumFrameBytes, keepAlive: true
        )
    }

    var upstream: WebSocketURL { self.transport.url }

    /// The name sent as TLS server name indication (see `WebSocketDialer.serverName`).
    var serverName: String? { self.transport.serverName }

    /// Request headers that describe the charger's own hop and are not forwarded.
    static let hopHeaders: Set<String> = [
        "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
        "content-length", "transfer-encoding", "keep-alive", "proxy-connection", "te", "trailer",
    ]

    func dial(
        on eventLoop: any EventLoop, target: String, chargerHeaders: HTTPHeaders, shape: WebSocketDialer.RequestShape = .init(),
        makeRelay: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<UpstreamOutcome> {
        var headers = HTTPHeaders()
        for (name, value) in chargerHeaders where !Self.hopHeaders.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        // The charger's compression offers go on (the proxy reads permessage-deflate); other extensions do not.
        let offers = self.forwardsCompression ? PerMessageDeflate.offers(in: chargerHeaders[canonicalForm: "Sec-WebSocket-Extensions"].map(String.init)) : []
        if !offers.isEmpty { headers.add(name: "Sec-WebSocket-Extensions", value: offers.joined(separator: ", ")) }
        let upstreamDescription = self.upstream.description
        return self.transport.connect(on: eventLoop, target: target, headers: headers, shape: shape) { channel, _ in
            try makeRelay(channel)
        }.map { outcome in
            switch outcome {
            case .upgraded(let channel, let response):
                return .upgraded(channel: channel, response: response)
            case .refused(let refusal):
                return .rejected(UpstreamRejection(status: refusal.status, headers: refusal.headers, body: refusal.body))
            }
        }.flatMapErrorThrowing { error in
            var failure = Self.classify(error)
            if !(error is WebSocketDialer.HandshakeError) { failure.detail = "\(upstreamDescription): \(failure.detail)" }
            throw failure
        }
    }

    static func classify(_ error: any Error) -> UpstreamFailure {
        if let failure = error as? UpstreamFailure { return failure }
        switch error as? WebSocketDialer.HandshakeError {
        case .timedOut: return UpstreamFailure(cause: .timeout, detail: "backend did not complete the upgrade in time")
        case .closedWithoutAnswer: return UpstreamFailure(cause: .protocolError, detail: "backend closed without answering the upgrade")
        case nil: break
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
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
