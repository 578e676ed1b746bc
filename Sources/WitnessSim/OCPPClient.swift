import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
import OCPPWire
import WitnessTransport

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
        if !options.subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: options.subprotocols.joined(separator: ", "))
        }
        if let auth = options.basicAuth {
            headers.add(name: "Authorization", value: "Basic " + Base64.encode(Array("\(auth.user):\(auth.password)".utf8)))
        }
        for (name, value) in options.extraHeaders { headers.add(name: name, value: value) }
        let sslContext = try url.secure ? (options.sslContext ?? NIOSSLContext(configuration: options.tls ?? .makeClientConfiguration())) : nil
        let box = NIOLockedValueBox<OCPPEndpoint?>(nil)
        let dialer = WebSocketDialer(url: url, tlsContext: sslContext, connectTimeout: options.connectTimeout)
        let outcome: WebSocketDialer.Outcome
        do {
            outcome = try await dialer.connect(on: group, target: url.pathPrefix, headers: headers) { channel, _ in
                try channel.pipeline.syncOperations.addHandler(OCPPEndpointHandler(endpoint: box))
            }.get()
        } catch WebSocketDialer.HandshakeError.closedWithoutAnswer {
            throw OCPPConnectError(status: nil, body: "server closed without an answer")
        }
        switch outcome {
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
        case .refused(let refusal):
            throw OCPPConnectError(status: Int(refusal.status.code), body: String(buffer: refusal.body))
        }
    }
}
