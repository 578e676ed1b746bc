import NIOCore
import NIOSSL
import OCPPWire
import WitnessChaos
import WitnessPolicy

/// Everything the proxy needs to run, passed in as values (the CLI builds it from flags).
public struct ProxyConfiguration: Sendable {
    /// TLS towards chargers (`wss://` listener), optionally verifying charger client certificates.
    public struct ChargerTLS: Sendable {
        public var certificateChainFile: String
        public var privateKeyFile: String
        /// When set, chargers must present a client certificate signed by this CA (security profile 3).
        public var clientCAFile: String?
        /// The oldest TLS version a charger may use: 1.2 (OCPP security profiles 2 and 3; RFC 8996). Lower only
        /// for a legacy charger; the open record then says so.
        public var minimumVersion: TLSVersion

        public init(certificateChainFile: String, privateKeyFile: String, clientCAFile: String? = nil, minimumVersion: TLSVersion = .tlsv12) {
            self.certificateChainFile = certificateChainFile
            self.privateKeyFile = privateKeyFile
            self.clientCAFile = clientCAFile
            self.minimumVersion = minimumVersion
        }
    }

    /// TLS towards the backend (`wss://` upstream).
    public struct UpstreamTLS: Sendable {
        /// Trust these CAs instead of the system's.
        public var caFile: String?
        /// Client certificate and key presented to the backend (security profile 3).
        public var clientCertificateFile: String?
        public var clientKeyFile: String?
        /// Certificate verification is on by default; turning it off is for lab use only.
        public var verifyCertificate: Bool
        /// The oldest TLS version the backend may answer with: 1.2 unless lowered for a legacy backend.
        public var minimumVersion: TLSVersion

        public init(
            caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil, verifyCertificate: Bool = true,
            minimumVersion: TLSVersion = .tlsv12
        ) {
            self.caFile = caFile
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.verifyCertificate = verifyCertificate
            self.minimumVersion = minimumVersion
        }
    }

    public var listenHost: String
    public var listenPort: Int
    public var upstream: WebSocketURL
    public var backendName: String?
    public var chargerTLS: ChargerTLS?
    public var upstreamTLS: UpstreamTLS
    /// Largest WebSocket frame accepted from either side; larger ones close the connection with 1009.
    public var maximumFrameBytes: Int
    /// Largest message (all fragments together) accepted from either side.
    public var maximumMessageBytes: Int
    /// Time allowed from TCP accept to a completed upgrade on both sides.
    public var handshakeTimeout: TimeAmount
    /// Time allowed to open the TCP (and TLS) connection to the backend.
    public var upstreamConnectTimeout: TimeAmount
    /// Faults to inject; the policy in it can be replaced while the proxy runs.
    public var faults: FaultInjection?
    /// Forward the charger's permessage-deflate offers to the backend (and the backend's answer back), so
    /// the peers compress as they would without the proxy. Off: the offers are dropped and both hops run
    /// uncompressed.
    public var forwardsCompression = true
    /// Fail (1002, 1007) or refuse (400) what breaks RFC 6455, as a strict server would. Off (the default):
    /// what can be carried across goes on as it came, and every breach is recorded as a finding.
    public var strictWebSocket = false
    /// Time a closing handshake may take, from the first close frame (forwarded or the proxy's own) to both
    /// sockets closed; past it the proxy closes both and records which side did not answer.
    public var closingTimeout: TimeAmount = .seconds(10)
    /// Bytes a delay or bandwidth fault may hold back on one connection before the proxy stops reading the
    /// sender, and for all connections together.
    public var heldBytesPerConnection = 1 << 20
    public var heldBytesTotal = 256 << 20

    public init(
        listenHost: String, listenPort: Int, upstream: WebSocketURL, backendName: String? = nil,
        chargerTLS: ChargerTLS? = nil, upstreamTLS: UpstreamTLS = UpstreamTLS(),
        maximumFrameBytes: Int = 1 << 20, maximumMessageBytes: Int = 4 << 20,
        handshakeTimeout: TimeAmount = .seconds(15), upstreamConnectTimeout: TimeAmount = .seconds(10)
    ) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.upstream = upstream
        self.backendName = backendName
        self.chargerTLS = chargerTLS
        self.upstreamTLS = upstreamTLS
        self.maximumFrameBytes = maximumFrameBytes
        self.maximumMessageBytes = maximumMessageBytes
        self.handshakeTimeout = handshakeTimeout
        self.upstreamConnectTimeout = upstreamConnectTimeout
    }
}

/// A TLS set-up problem found at start-up, naming the file or setting at fault.
public struct ProxyStartupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension ProxyConfiguration.ChargerTLS {
    func makeContext() throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(self.certificateChainFile)
        } catch {
            throw ProxyStartupError("cannot read listener certificate \(self.certificateChainFile): \(error)")
        }
        do {
            key = try NIOSSLPrivateKey(file: self.privateKeyFile, format: .pem)
        } catch {
            throw ProxyStartupError("cannot read listener private key \(self.privateKeyFile): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        if let clientCAFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCAFile))
            } catch {
                throw ProxyStartupError("cannot read charger client CA \(clientCAFile): \(error)")
            }
            configuration.certificateVerification = .noHostnameVerification
        }
        TLSSuites.restrict(&configuration, minimum: self.minimumVersion, suites: TLSSuites.listener)
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ProxyStartupError("listener TLS set-up failed: \(error)")
        }
    }
}

extension ProxyConfiguration.UpstreamTLS {
    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw ProxyStartupError("cannot read upstream CA \(caFile): \(error)")
            }
        }
        if !self.verifyCertificate { configuration.certificateVerification = .none }
        TLSSuites.restrict(&configuration, minimum: self.minimumVersion, suites: TLSSuites.upstream)
        switch (self.clientCertificateFile, self.clientKeyFile) {
        case (let certificate?, let key?):
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            } catch {
                throw ProxyStartupError("cannot read upstream client certificate \(certificate): \(error)")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw ProxyStartupError("cannot read upstream client key \(key): \(error)")
            }
        case (nil, nil):
            break
        default:
            throw ProxyStartupError("an upstream client certificate needs both the certificate and its key")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ProxyStartupError("upstream TLS set-up failed: \(error)")
        }
    }
}

/// The TLS versions and cipher suites each side of the proxy accepts.
///
/// OCPP's security profiles 2 and 3 require TLS 1.2 or later, and RFC 8996 deprecates 1.0 and 1.1. The OCPP
/// security specification (1.6 security whitepaper; 2.0.1 part 2, A00.FR.318/319) requires a CSMS to support
/// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
/// TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_256_GCM_SHA384, and a compliant charger may offer only the
/// last two, so the listener keeps them next to the modern forward-secret suites and accepts nothing weaker (no
/// CBC, no SHA-1 MACs). Towards the backend the same suites are offered, forward-secret ones first. TLS 1.3 suites
/// are not configurable and are all AEAD.
enum TLSSuites {
    static let forwardSecret: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
    /// Required of a CSMS by OCPP, without forward secrecy: accepted and offered last.
    static let ocppRSA: [NIOTLSCipher] = [.TLS_RSA_WITH_AES_128_GCM_SHA256, .TLS_RSA_WITH_AES_256_GCM_SHA384]
    static let listener = forwardSecret + ocppRSA
    static let upstream = forwardSecret + ocppRSA

    /// Sets the minimum version and, from TLS 1.2 up, the suites. A minimum lowered for a legacy peer keeps
    /// NIO's wider default suites, since peers that old rarely have an AEAD suite.
    static func restrict(_ configuration: inout TLSConfiguration, minimum: TLSVersion, suites: [NIOTLSCipher]) {
        configuration.minimumTLSVersion = minimum
        if minimum == .tlsv12 || minimum == .tlsv13 { configuration.cipherSuiteValues = suites }
    }

    /// "TLSv1.2" and so on, as the open record writes versions.
    static func name(_ version: TLSVersion) -> String {
        switch version {
        case .tlsv1: "TLSv1.0"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }
}
