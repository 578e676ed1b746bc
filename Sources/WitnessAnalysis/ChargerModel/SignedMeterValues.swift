import COpenSSL
import Crypto
import Foundation
import OCPPWire
import WitnessCapture

/// A signed meter value in the Open Charge Metering Format (OCMF, SAFE e.V.): `OCMF|{payload}|{signature}`, where
/// the signature is ECDSA over the payload section's bytes as they stand (docs/billing.md, "Signed meter values").
struct OCMF {
    /// The payload section's text, exactly as signed.
    var payloadText: Substring
    var payload: JSONValue
    var signature: JSONValue

    /// One reading of the payload's `RD` list.
    struct Reading {
        /// In Wh (RV with RU kWh or Wh).
        var wh: Double?
        /// TX: B (begin), C, X, E (end), L, R, A, T, S.
        var marker: String?
        var time: String?
    }

    /// Parses OCMF text, or hex or base64 of it (as chargers send it in 1.6 `SignedData`).
    static func parse(_ text: String) -> OCMF? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("OCMF|") { return Self.sections(trimmed) }
        if let bytes = Self.hex(trimmed) ?? Base64.decode(trimmed), bytes.count < 65_536, let decoded = String(validating: bytes, as: UTF8.self),
            decoded.hasPrefix("OCMF|")
        {
            return Self.sections(decoded)
        }
        return nil
    }

    private static func sections(_ text: String) -> OCMF? {
        guard text.utf8.count <= 65_536 else { return nil }
        let parts = text.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "OCMF", let payload = try? JSONParser.parse(String(parts[1])),
            let signature = try? JSONParser.parse(String(parts[2]))
        else { return nil }
        return OCMF(payloadText: parts[1], payload: payload, signature: signature)
    }

    static func hex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    var readings: [Reading] {
        (self.payload["RD"]?.arrayValue ?? []).prefix(64).map { reading in
            var wh = reading["RV"]?.doubleValue
            if let value = wh, reading["RU"]?.stringValue == "kWh" { wh = value * 1000 }
            return Reading(wh: wh, marker: reading["TX"]?.stringValue, time: reading["TM"]?.stringValue)
        }
    }

    /// The signature algorithm (SA; ECDSA-secp256r1-SHA256 when absent).
    var algorithm: String { self.signature["SA"]?.stringValue ?? "ECDSA-secp256r1-SHA256" }

    /// What checking the signature came to.
    enum Verdict: String, Sendable {
        case valid, invalid
        /// No public key for it (none in the message, the charger's configuration or a key file).
        case noKey
        /// An algorithm the analyzer does not check (curves other than secp256r1 and brainpoolP256r1, or SHA-512).
        case unsupported
    }

    /// Checks the signature with a public key (DER SubjectPublicKeyInfo, hex, base64 or PEM): secp256r1 with
    /// swift-crypto, brainpoolP256r1 (both names in use) with the system's OpenSSL. A key of another curve than the
    /// algorithm names does not verify it.
    func verify(publicKey: String?) -> Verdict {
        guard let publicKey else { return .noKey }
        let encoded = self.signature["SD"]?.stringValue ?? ""
        guard let signatureBytes = (self.signature["SE"]?.stringValue ?? "hex") == "base64" ? Base64.decode(encoded) : Self.hex(encoded) else {
            return .invalid
        }
        switch self.algorithm {
        case "ECDSA-secp256r1-SHA256":
            guard let key = Self.p256Key(publicKey), let signature = try? P256.Signing.ECDSASignature(derRepresentation: signatureBytes) else { return .invalid }
            return key.isValidSignature(signature, for: Data(self.payloadText.utf8)) ? .valid : .invalid
        case "ECDSA-brainpool256r1-SHA256", "ECDSA-brainpoolP256r1-SHA256":
            guard let der = Self.derKey(publicKey), Self.contains(der, Self.brainpoolP256r1) else { return .invalid }
            return Self.opensslVerify(message: Array(self.payloadText.utf8), signature: signatureBytes, publicKey: der) ? .valid : .invalid
        default:
            return .unsupported
        }
    }

    /// The DER encoding of the curve's object identifier 1.3.36.3.3.2.8.1.1.7 (RFC 5639), as a key names it.
    static let brainpoolP256r1: [UInt8] = [0x06, 0x09, 0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07]

    static func contains(_ bytes: [UInt8], _ part: [UInt8]) -> Bool {
        guard bytes.count >= part.count else { return false }
        return (0...(bytes.count - part.count)).contains { Array(bytes[$0..<($0 + part.count)]) == part }
    }

    /// A public key's DER SubjectPublicKeyInfo from hex, base64 or PEM.
    static func derKey(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN") {
            let body = trimmed.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            return Base64.decode(body)
        }
        return Self.hex(trimmed) ?? Base64.decode(trimmed)
    }

    /// ECDSA with SHA-256 by the system's libcrypto (EVP), for the curves swift-crypto lacks.
    static func opensslVerify(message: [UInt8], signature: [UInt8], publicKey: [UInt8]) -> Bool {
        publicKey.withUnsafeBufferPointer { keyBuffer -> Bool in
            var cursor: UnsafePointer<UInt8>? = keyBuffer.baseAddress
            guard let key = d2i_PUBKEY(nil, &cursor, keyBuffer.count) else { return false }
            defer { EVP_PKEY_free(key) }
            guard let context = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestVerifyInit(context, nil, EVP_sha256(), nil, key) == 1 else { return false }
            return signature.withUnsafeBufferPointer { signatureBuffer in
                message.withUnsafeBufferPointer { messageBuffer in
                    EVP_DigestVerify(context, signatureBuffer.baseAddress, signatureBuffer.count, messageBuffer.baseAddress, messageBuffer.count) == 1
                }
            }
        }
    }

    /// A P-256 public key from its DER form as hex or base64, or from PEM.
    static func p256Key(_ text: String) -> P256.Signing.PublicKey? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN"), let key = try? P256.Signing.PublicKey(pemRepresentation: trimmed) { return key }
        for bytes in [Self.hex(trimmed), Base64.decode(trimmed)].compactMap({ $0 }) {
            if let key = try? P256.Signing.PublicKey(derRepresentation: bytes) { return key }
            if let key = try? P256.Signing.PublicKey(x963Representation: bytes) { return key }
        }
        return nil
    }

    /// The signed values of a meterValue array: 1.6 sampled values with `format: SignedData`, 2.0.1/2.1
    /// `signedMeterValue` (with its `publicKey`), each with the unsigned register reading of the same meter value.
    static func signedValues(_ meterValues: JSONValue?, version: OCPPVersion, base: String) -> [(ocmf: String, publicKey: String?, unsignedWh: Double?, path: String)] {
        var out: [(String, String?, Double?, String)] = []
        for (valueIndex, meterValue) in (meterValues?.arrayValue ?? []).prefix(16).enumerated() {
            let sampled = meterValue["sampledValue"]?.arrayValue ?? []
            let unsigned = TransactionTracker.samples(.array([meterValue]), version: version, base: "").first?.wh
            for (sampleIndex, sample) in sampled.prefix(16).enumerated() {
                let path = "\(base)/\(valueIndex)/sampledValue/\(sampleIndex)"
                if version == .v16, sample["format"]?.stringValue == "SignedData", let value = sample["value"]?.stringValue {
                    out.append((value, nil, unsigned, path + "/value"))
                } else if let signed = sample["signedMeterValue"], let data = signed["signedMeterData"]?.stringValue,
                    (signed["encodingMethod"]?.stringValue ?? "OCMF").uppercased().contains("OCMF")
                {
                    out.append((data, signed["publicKey"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }, unsigned, path + "/signedMeterValue/signedMeterData"))
                }
            }
        }
        return out
    }
}

/// A transaction's signed meter values so far.
struct SignedState {
    var count = 0
    var valid = 0
    var invalid = 0
    var sawBegin = false
    var sawEnd = false
    /// The public key of its first signed value, to tell when it changes.
    var key: String?
    var keyChangeReported = false
}

extension TransactionTracker {
    /// Checks a message's signed meter values (docs/billing.md, "Signed meter values"): the signature, with the key
    /// the message gives, else the charger's configured one (1.6 MeterPublicKey…), else the report's key file; the
    /// signed reading against the unsigned one of the same meter value; the key kept within the transaction.
    func signedValues(
        _ meterValues: JSONValue?, base: String, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        for value in OCMF.signedValues(meterValues, version: state.version, base: base) {
            // 1.6 SignedData is any signed block (7.45): another vendor's format than OCMF is not judged.
            guard let ocmf = OCMF.parse(value.ocmf) else { continue }
            transaction.signed.count += 1
            let key = value.publicKey ?? analyzer.meterKey(of: state.chargePoint)
            if let key, let known = transaction.signed.key, known != key, !transaction.signed.keyChangeReported {
                transaction.signed.keyChangeReported = true
                self.deviation(
                    "meter.keyChanged", "transaction \(transaction.id) is signed with another public key than its earlier signed values", path: value.path,
                    state: state, record: record, analyzer: analyzer, related: [transaction.startRef]
                )
            }
            if transaction.signed.key == nil { transaction.signed.key = key }
            let readings = ocmf.readings
            if readings.contains(where: { $0.marker == "B" }) { transaction.signed.sawBegin = true }
            if readings.contains(where: { $0.marker == "E" }) { transaction.signed.sawEnd = true }
            switch ocmf.verify(publicKey: key) {
            case .valid:
                transaction.signed.valid += 1
            case .invalid:
                transaction.signed.invalid += 1
                self.deviation(
                    "meter.signatureInvalid", "the \(ocmf.algorithm) signature of this signed meter value does not verify with "
                        + (value.publicKey != nil ? "the public key it carries" : "the charger's meter public key"),
                    path: value.path, state: state, record: record, analyzer: analyzer
                )
            case .noKey, .unsupported:
                break
            }
            // Signed kWh with three decimals against unsigned Wh: 1 Wh apart is the resolution.
            if let signed = readings.last?.wh, let unsigned = value.unsignedWh, abs(signed - unsigned) > 1 {
                self.deviation(
                    "meter.signedMismatch", "the signed reading is \(Self.wh(signed)), the unsigned one of the same meter value \(Self.wh(unsigned))",
                    path: value.path, state: state, record: record, analyzer: analyzer
                )
            }
        }
    }

    /// At the stop: a transaction with signed values lacks a signed start or end.
    func signedEnds(_ transaction: Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        guard transaction.signed.count > 0, !(transaction.signed.sawBegin && transaction.signed.sawEnd) else { return }
        let missing = [transaction.signed.sawBegin ? nil : "its begin (TX B)", transaction.signed.sawEnd ? nil : "its end (TX E)"].compactMap { $0 }
        self.deviation(
            "meter.signedMissing", "transaction \(transaction.id) has \(transaction.signed.count) signed meter value(s) but none signs \(missing.joined(separator: " or "))",
            path: nil, state: state, record: record, analyzer: analyzer, related: [transaction.startRef]
        )
    }
}
