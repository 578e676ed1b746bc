import COpenSSL
import Crypto
import Foundation
import OCPPWire
import WitnessCapture
import WitnessModel

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

    /// The key appended as a fourth section (`OCMF|payload|signature|key`, as QR codes for the transparency software
    /// carry it), if any.
    var appendedKey: String?

    private static func sections(_ text: String) -> OCMF? {
        guard text.utf8.count <= 65_536 else { return nil }
        let parts = text.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3 || parts.count == 4, parts[0] == "OCMF", let payload = try? JSONParser.parse(String(parts[1])),
            let signature = try? JSONParser.parse(String(parts[2]))
        else { return nil }
        let appended = parts.count == 4 ? parts[3].trimmingCharacters(in: .whitespacesAndNewlines) : ""
        return OCMF(payloadText: parts[1], payload: payload, signature: signature, appendedKey: appended.isEmpty ? nil : appended)
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

    /// The readings of the payload's `RD` list; `wh` only for energy (RU kWh or Wh, of the 1.8.0 register where RI says).
    var readings: [Reading] {
        (self.payload["RD"]?.arrayValue ?? []).prefix(64).map { reading in
            let unit = reading["RU"]?.stringValue
            let register = reading["RI"]?.stringValue.map { $0.contains("1.8.0") } ?? true
            var wh: Double?
            if register, let value = reading["RV"]?.doubleValue, value.isFinite {
                wh = unit == "kWh" ? value * 1000 : unit == "Wh" ? value : nil
            }
            return Reading(wh: wh, marker: reading["TX"]?.stringValue, time: reading["TM"]?.stringValue)
        }
    }

    /// The signature algorithm: SA, else the OCPP message's signingMethod, else ECDSA-secp256r1-SHA256.
    var signingMethod: String?
    var algorithm: String {
        self.signature["SA"]?.stringValue ?? self.signingMethod.flatMap { $0.isEmpty ? nil : $0 } ?? "ECDSA-secp256r1-SHA256"
    }

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
    /// Checks the signature with a public key's DER (see `derKey`): a key that cannot be read is no key.
    func verify(publicKey der: [UInt8]?) -> Verdict {
        guard let der else { return .noKey }
        let encoded = self.signature["SD"]?.stringValue ?? ""
        guard let signatureBytes = (self.signature["SE"]?.stringValue ?? "hex") == "base64" ? Base64.decode(encoded) : Self.hex(encoded) else {
            return .invalid
        }
        switch self.algorithm {
        case "ECDSA-secp256r1-SHA256":
            // DER SubjectPublicKeyInfo, or the raw point (04…) some configurations hold; a key of another curve is no P-256 key.
            guard let key = (try? P256.Signing.PublicKey(derRepresentation: der)) ?? (try? P256.Signing.PublicKey(x963Representation: der)) else {
                return Self.opensslReads(der) ? .invalid : .noKey
            }
            guard let signature = try? P256.Signing.ECDSASignature(derRepresentation: signatureBytes) else { return .invalid }
            return key.isValidSignature(signature, for: Data(self.payloadText.utf8)) ? .valid : .invalid
        case "ECDSA-brainpool256r1-SHA256", "ECDSA-brainpoolP256r1-SHA256":
            guard Self.opensslReads(der) else { return .noKey }
            return Self.opensslVerify(message: Array(self.payloadText.utf8), signature: signatureBytes, publicKey: der, curve: "brainpoolP256r1") ? .valid : .invalid
        default:
            return .unsupported
        }
    }

    /// A public key's DER SubjectPublicKeyInfo, at most 4 KiB, from PEM, hex, base64, or the OCA application note's
    /// `oca:base16:asn1:<hex>` / `oca:base64:asn1:<base64>` (itself base64-encoded in OCPP messages and configuration).
    static func derKey(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count <= 8192 else { return nil }
        if trimmed.hasPrefix("-----BEGIN") {
            let body = trimmed.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
            return Base64.decode(body)
        }
        if trimmed.hasPrefix("oca:") { return Self.ocaKey(trimmed) }
        if let hex = Self.hex(trimmed) { return hex }
        guard let bytes = Base64.decode(trimmed) else { return nil }
        if let text = String(validating: bytes, as: UTF8.self), text.hasPrefix("oca:") { return Self.ocaKey(text) }
        return bytes
    }

    /// `oca:base16:asn1:<hex>` (non-hex characters ignored) or `oca:base64:asn1:<base64>`.
    private static func ocaKey(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", maxSplits: 3)
        guard parts.count == 4, parts[2] == "asn1" else { return nil }
        switch parts[1] {
        case "base16": return Self.hex(String(parts[3].filter(\.isHexDigit)))
        case "base64": return Base64.decode(String(parts[3]))
        default: return nil
        }
    }

    /// Whether libcrypto reads `der` as a public key (of any curve), the whole buffer.
    static func opensslReads(_ der: [UInt8]) -> Bool {
        der.withUnsafeBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            var cursor: UnsafePointer<UInt8>? = base
            guard let key = d2i_PUBKEY(nil, &cursor, buffer.count) else { return false }
            EVP_PKEY_free(key)
            return cursor.map { $0 - base == buffer.count } ?? false
        }
    }

    /// ECDSA with SHA-256 by the system's libcrypto (EVP), for the curves swift-crypto lacks: the key must be the
    /// whole buffer and of `curve`.
    static func opensslVerify(message: [UInt8], signature: [UInt8], publicKey: [UInt8], curve: String) -> Bool {
        publicKey.withUnsafeBufferPointer { keyBuffer -> Bool in
            guard let base = keyBuffer.baseAddress else { return false }
            var cursor: UnsafePointer<UInt8>? = base
            guard let key = d2i_PUBKEY(nil, &cursor, keyBuffer.count) else { return false }
            defer { EVP_PKEY_free(key) }
            guard let end = cursor, end - base == keyBuffer.count else { return false }
            var name = [CChar](repeating: 0, count: 64)
            guard EVP_PKEY_get_group_name(key, &name, name.count, nil) == 1,
                String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) == curve
            else { return false }
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

    /// The signed values of a meterValue array: 1.6 sampled values with `format: SignedData`, 2.0.1/2.1
    /// `signedMeterValue` (with its `publicKey`), each with the unsigned register reading of the same meter value.
    static let signedPerMessage = 8

    /// The signed values of a meterValue array (at most `signedPerMessage`): 1.6 sampled values with
    /// `format: SignedData` (the OCMF text, hex or base64 of it, or the OCA application note's JSON with
    /// `signedMeterData` and `publicKey`), 2.0.1/2.1 `signedMeterValue`; each with the unsigned register reading of
    /// the same meter value and context.
    static func signedValues(
        _ meterValues: JSONValue?, version: OCPPVersion, base: String
    ) -> [(ocmf: String, publicKey: String?, signingMethod: String?, unsignedWh: Double?, path: String)] {
        var out: [(String, String?, String?, Double?, String)] = []
        for (valueIndex, meterValue) in (meterValues?.arrayValue ?? []).prefix(16).enumerated() {
            let sampled = meterValue["sampledValue"]?.arrayValue ?? []
            // Most meter values carry nothing signed: they cost one look at each sampled value.
            guard sampled.contains(where: { $0["signedMeterValue"] != nil || $0["format"]?.stringValue == "SignedData" }) else { continue }
            let unsigned = TransactionTracker.samples(.array([meterValue]), version: version, base: "")
            // Of the same context only: a signed begin is not held against an unsigned end.
            func unsignedWh(_ context: String?) -> Double? { unsigned.first { $0.context == context }?.wh }
            for (sampleIndex, sample) in sampled.prefix(16).enumerated() {
                guard out.count < Self.signedPerMessage else {
                    if sample["format"]?.stringValue == "SignedData" || sample["signedMeterValue"] != nil { out.append(("", nil, nil, nil, "truncated")) }
                    return out
                }
                let path = "\(base)/\(valueIndex)/sampledValue/\(sampleIndex)"
                let context = sample["context"]?.stringValue
                if version == .v16, sample["format"]?.stringValue == "SignedData", let value = sample["value"]?.stringValue {
                    if value.hasPrefix("{"), let note = try? JSONParser.parse(value), let data = note["signedMeterData"]?.stringValue {
                        let key = note["publicKey"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
                        out.append((data, key, note["signingMethod"]?.stringValue, unsignedWh(context), path + "/value"))
                    } else {
                        out.append((value, nil, nil, unsignedWh(context), path + "/value"))
                    }
                } else if let signed = sample["signedMeterValue"], let data = signed["signedMeterData"]?.stringValue,
                    (signed["encodingMethod"]?.stringValue ?? "OCMF").uppercased().contains("OCMF")
                {
                    // The same sampledValue carries the unsigned value.
                    let own = TransactionTracker.samples(.array([["sampledValue": [sample]]]), version: version, base: "").first?.wh
                    out.append((
                        data, signed["publicKey"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }, signed["signingMethod"]?.stringValue,
                        own ?? unsignedWh(context), path + "/signedMeterValue/signedMeterData"
                    ))
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
    /// The public key (DER) of its first signed value with one, to tell when it changes, and to check later values
    /// that carry none.
    var key: [UInt8]?
    var keyChangeReported = false
    /// Signed readings that differ from the unsigned ones.
    var mismatched = 0
    /// The transaction pagination (PG `T<n>`) of its latest signed value, and whether a step back was reported.
    var page: Int?
    var paginationReported = false
    /// The payloads seen (hashes, the latest 16): a record sent again (a stop repeating the begin) is no new record.
    var seen: [UInt64] = []
    /// A message carried more signed values than are checked: a missing begin or end is not proven.
    var truncated = false
}

extension TransactionTracker {
    /// Checks a message's signed meter values (docs/billing.md, "Signed meter values"): the signature, with the key
    /// the message gives, else the charger's configured one (1.6 MeterPublicKey…), else the report's key file; the
    /// signed reading against the unsigned one of the same meter value; the key kept within the transaction.
    func signedValues(
        _ meterValues: JSONValue?, base: String, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        for value in OCMF.signedValues(meterValues, version: state.version, base: base) {
            if value.path == "truncated" {
                transaction.signed.truncated = true
                continue
            }
            // 1.6 SignedData is any signed block (7.45): another vendor's format than OCMF is not judged.
            guard var ocmf = OCMF.parse(value.ocmf) else { continue }
            ocmf.signingMethod = value.signingMethod
            // A record sent again (the stop's readings repeat the begin) was judged the first time.
            let digest = StableHash.fnv1a(String(ocmf.payloadText))
            if transaction.signed.seen.contains(digest) { continue }
            if transaction.signed.seen.count >= 16 { transaction.signed.seen.removeFirst() }
            transaction.signed.seen.append(digest)
            transaction.signed.count += 1
            // The key the value carries, else the one the transaction's values carried, else the charger's configured
            // key for this connector, else the operator's key file.
            let carried = (value.publicKey ?? ocmf.appendedKey).flatMap(OCMF.derKey)
            let key = carried ?? transaction.signed.key
                ?? analyzer.meterKey(of: state.chargePoint, connector: transaction.connector?.unit).flatMap(OCMF.derKey)
            if let carried, let known = transaction.signed.key, known != carried, !transaction.signed.keyChangeReported {
                transaction.signed.keyChangeReported = true
                self.deviation(
                    "meter.keyChanged", "transaction \(transaction.id) is signed with another public key than its earlier signed values", path: value.path,
                    state: state, record: record, analyzer: analyzer, related: [transaction.startRef]
                )
            }
            if transaction.signed.key == nil, let carried { transaction.signed.key = carried }
            let readings = ocmf.readings
            if readings.contains(where: { $0.marker == "B" }) { transaction.signed.sawBegin = true }
            if readings.contains(where: { $0.marker == "E" }) { transaction.signed.sawEnd = true }
            let verdict = ocmf.verify(publicKey: key)
            switch verdict {
            case .valid:
                transaction.signed.valid += 1
            case .invalid:
                transaction.signed.invalid += 1
                self.deviation(
                    "meter.signatureInvalid", "the \(ocmf.algorithm) signature of this signed meter value does not verify with "
                        + (carried != nil ? "the public key it carries" : "the meter public key its transaction, the charger or the operator gave"),
                    path: value.path, state: state, record: record, analyzer: analyzer
                )
            case .noKey, .unsupported:
                break
            }
            // A record whose signature fails proves nothing more: one cause, one finding.
            if verdict == .invalid { continue }
            // OCMF pagination: the transaction counter counts up by one per record; one that does not rise was
            // repeated or replayed (records left out between are the charger's choice to send, not judged).
            if let page = ocmf.payload["PG"]?.stringValue, page.hasPrefix("T"), let number = Int(page.dropFirst()) {
                if let last = transaction.signed.page, number <= last, !transaction.signed.paginationReported {
                    transaction.signed.paginationReported = true
                    self.deviation(
                        "meter.signedPagination", "signed value paginated \(page) after T\(last) in transaction \(transaction.id): the transaction counter must rise",
                        path: value.path, state: state, record: record, analyzer: analyzer, related: [transaction.startRef]
                    )
                }
                transaction.signed.page = max(transaction.signed.page ?? number, number)
            }

            // Signed kWh with three decimals against unsigned Wh: 1 Wh apart is the resolution.
            if let signed = readings.last(where: { $0.wh != nil })?.wh, let unsigned = value.unsignedWh, abs(signed - unsigned) > 1 {
                transaction.signed.mismatched += 1
                self.deviation(
                    "meter.signedMismatch", "the signed reading is \(Self.wh(signed)), the unsigned one of the same meter value \(Self.wh(unsigned))",
                    path: value.path, state: state, record: record, analyzer: analyzer
                )
            }
        }
    }

    /// At the stop: a transaction with signed values lacks a signed start or end.
    func signedEnds(_ transaction: Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        guard transaction.signed.count > 0, !transaction.signed.truncated, !(transaction.signed.sawBegin && transaction.signed.sawEnd) else { return }
        let missing = [transaction.signed.sawBegin ? nil : "its begin (TX B)", transaction.signed.sawEnd ? nil : "its end (TX E)"].compactMap { $0 }
        self.deviation(
            "meter.signedMissing", "transaction \(transaction.id) has \(transaction.signed.count) signed meter value(s) but none signs \(missing.joined(separator: " or "))",
            path: nil, state: state, record: record, analyzer: analyzer, related: [transaction.startRef]
        )
    }
}
