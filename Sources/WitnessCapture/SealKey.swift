import Crypto
import Foundation

/// An Ed25519 key that signs capture seals (`--seal-key`), or the public half that checks them
/// (`verify --key`). Files are PEM as OpenSSL writes them: `openssl genpkey -algorithm ed25519 -out seal.pem`
/// and `openssl pkey -in seal.pem -pubout -out seal.pub.pem`.
public struct SealKey: Sendable {
    /// Bytes of the DER of an Ed25519 private key (PKCS #8, RFC 8410) before its 32-byte seed.
    static let privatePrefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
    /// Bytes of the DER of an Ed25519 public key (SubjectPublicKeyInfo, RFC 8410) before its 32 bytes.
    static let publicPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    let signing: Curve25519.Signing.PrivateKey?
    public let publicKey: Curve25519.Signing.PublicKey

    /// What a seal names the key by: the first 8 bytes of SHA-256 over its public key, in hex.
    public var id: String { Self.id(of: Array(self.publicKey.rawRepresentation)) }

    public var canSign: Bool { self.signing != nil }

    public init(signing key: Curve25519.Signing.PrivateKey) {
        self.signing = key
        self.publicKey = key.publicKey
    }

    public init(verifying key: Curve25519.Signing.PublicKey) {
        self.signing = nil
        self.publicKey = key
    }

    /// A new key pair.
    public static func generate() -> SealKey {
        SealKey(signing: Curve25519.Signing.PrivateKey())
    }

    /// The public half only: what checks seals.
    public var publicHalf: SealKey {
        SealKey(verifying: self.publicKey)
    }

    /// Reads a PEM file holding an Ed25519 private key (to sign) or public key (to check).
    public init(pemFile path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw LoadError(description: "\(path): cannot be read")
        }
        try self.init(pem: text, source: path)
    }

    public init(pem text: String, source: String = "key") throws {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") }),
            let end = lines[begin...].firstIndex(where: { $0.hasPrefix("-----END ") })
        else { throw LoadError(description: "\(source): not a PEM file (no BEGIN and END lines)") }
        let label = lines[begin].dropFirst("-----BEGIN ".count).prefix { $0 != "-" }
        guard let der = Data(base64Encoded: lines[(begin + 1)..<end].joined()).map(Array.init) else {
            throw LoadError(description: "\(source): the PEM body is not base64")
        }
        switch label {
        case "PRIVATE KEY":
            guard der.count == 48, Array(der.prefix(16)) == Self.privatePrefix,
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
            else { throw LoadError(description: "\(source): not an Ed25519 private key (openssl genpkey -algorithm ed25519 writes one)") }
            self.init(signing: key)
        case "PUBLIC KEY":
            guard der.count == 44, Array(der.prefix(12)) == Self.publicPrefix,
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: der.suffix(32))
            else { throw LoadError(description: "\(source): not an Ed25519 public key (openssl pkey -pubout writes one)") }
            self.init(verifying: key)
        default:
            throw LoadError(description: "\(source): a PEM '\(label)', where an Ed25519 PRIVATE KEY or PUBLIC KEY is expected")
        }
    }

    /// The public key as PEM, for the other side of a dispute.
    public var publicPEM: String {
        Self.pem("PUBLIC KEY", Self.publicPrefix + Array(self.publicKey.rawRepresentation))
    }

    /// The private key as PEM (PKCS #8), as OpenSSL writes it; nil for a public key.
    public var privatePEM: String? {
        self.signing.map { Self.pem("PRIVATE KEY", Self.privatePrefix + Array($0.rawRepresentation)) }
    }

    /// Signs a seal's digest.
    public func sign(_ digest: [UInt8]) throws -> [UInt8] {
        guard let signing else { throw LoadError(description: "a public key cannot sign") }
        return Array(try signing.signature(for: digest))
    }

    public func isValid(signature: [UInt8], for digest: [UInt8]) -> Bool {
        self.publicKey.isValidSignature(signature, for: digest)
    }

    static func id(of publicKey: [UInt8]) -> String {
        CaptureChain.hex(Array(SHA256.hash(data: publicKey).prefix(8)))
    }

    static func pem(_ label: String, _ der: [UInt8]) -> String {
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }
}
