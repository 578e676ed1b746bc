import NIOCore
import NIOSSL
import OCPPWire
import WitnessChaos

/// Everything the proxy needs to run, passed in as values (the CLI builds it from flags).
public struct ProxyConfiguration: Sendable {
    /// TLS towards chargers (`wss://` listener), optionally verifying charger client certificates.
    public struct ChargerTLS: Sendable {
        public var certificateChainFile: String
        public var privateKeyFile: String
        /// When set, chargers must present a client certificate signed by this CA (security profile 3).
        public var clientCAFile: String?

        public init(certificateChainFile: String, privateKeyFile: String, clientCAFile: String? = nil) {
            self.certificateChainFile = certificateChainFile
            self.privateKeyFile = privateKeyFile
            self.clientCAFile = clientCAFile
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

        public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil, verifyCertificate: Bool = true) {
            self.caFile = caFile
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.verifyCertificate = verifyCertificate
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
