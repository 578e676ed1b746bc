import Crypto
import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

/// Signed meter values (OCMF) on captures written line by line, signed for real with keys made here
/// (docs/billing.md, "Signed meter values").
@Suite("Signed meter values (OCMF)")
struct SignedMeterValueTests {
    static let key = P256.Signing.PrivateKey()
    static let otherKey = P256.Signing.PrivateKey()

    static func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02X", $0) }.joined() }

    /// An OCMF text signed with `key` over its payload; `tamper` changes the payload after signing.
    static func ocmf(kwh: Double, marker: String, key: P256.Signing.PrivateKey = Self.key, algorithm: String? = nil, tamper: Bool = false, page: Int? = nil) throws -> String {
        let payload = #"{"FV":"1.0","GI":"SIM","GS":"SN-1","PG":"T\#(page ?? (marker == "B" ? 1 : 2))","MS":"M-1","IS":true,"IT":"ISO14443","ID":"04A2","RD":[{"TM":"2026-12-04T08:00:00,000+0000 S","TX":"\#(marker)","RV":\#(kwh),"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}"#
        let signature = try key.signature(for: Data(payload.utf8))
        let signed = tamper ? payload.replacingOccurrences(of: "\(kwh)", with: "\(kwh + 1)") : payload
        let sa = algorithm.map { #""SA":"\#($0)","# } ?? ""
        return #"OCMF|\#(signed)|{\#(sa)"SD":"\#(Self.hex(signature.derRepresentation))"}"#
    }

    static func escaped(_ text: String) -> String { text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }

    /// A 1.6 session: the backend reads the meter's public key, readings at start and stop carry signed values.
    func session16(begin: String?, end: String?, unsignedEndWh: Int = 1500, publicKey: P256.Signing.PublicKey = Self.key.publicKey) throws -> AnalysisReport {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.call(
            1, at: "08:00:00", "GetConfiguration", "{}",
            answer: #"{"configurationKey":[{"key":"MeterPublicKey","readonly":true,"value":"\#(Self.hex(publicKey.derRepresentation))"}]}"#, toCSMS: false
        )
        capture.start(1, at: "08:00:01", dated: "08:00:01")
        func signed(_ time: String, _ text: String, wh: Int, context: String) {
            capture.call(
                1, at: time, "MeterValues",
                #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[{"value":"\#(wh)","context":"\#(context)"},{"value":"\#(Self.escaped(text))","format":"SignedData","context":"\#(context)"}]}]}"#
            )
        }
        if let begin { signed("08:00:02", begin, wh: 1000, context: "Transaction.Begin") }
        if let end { signed("08:30:00", end, wh: unsignedEndWh, context: "Transaction.End") }
        capture.stop(1, at: "08:30:01", dated: "08:30:01", wh: unsignedEndWh)
        return try capture.analyse(AnalyzerConfiguration())
    }

    func findings(_ report: AnalysisReport) -> [String] {
        report.deviations.filter { (d: Deviation) in d.rule.hasPrefix("meter.sign") || d.rule == "meter.keyChanged" }.map(\.rule)
    }

    @Test("1.6: begin and end signed with the meter's configured key verify; the billing row says signed and valid")
    func valid16() throws {
        let report = try self.session16(begin: try Self.ocmf(kwh: 1.0, marker: "B"), end: try Self.ocmf(kwh: 1.5, marker: "E"))
        #expect(self.findings(report) == [], "\(report.deviations.map(\.detail))")
        let row = try #require(report.pairs.first?.statistics.billing.first)
        #expect(row.signed && row.signatureValid == true, "\(row)")
    }

    @Test("1.6: a payload changed after signing, a wrong key, a signed reading that differs from the unsigned one, a missing signed end")
    func broken16() throws {
        let tampered = try self.session16(begin: try Self.ocmf(kwh: 1.0, marker: "B"), end: try Self.ocmf(kwh: 1.5, marker: "E", tamper: true), unsignedEndWh: 2500)
        #expect(self.findings(tampered) == ["meter.signatureInvalid"], "\(tampered.deviations.map(\.detail))")
        #expect(tampered.pairs.first?.statistics.billing.first?.signatureValid == false)

        let wrongKey = try self.session16(
            begin: try Self.ocmf(kwh: 1.0, marker: "B"), end: try Self.ocmf(kwh: 1.5, marker: "E"), publicKey: Self.otherKey.publicKey
        )
        #expect(self.findings(wrongKey) == ["meter.signatureInvalid", "meter.signatureInvalid"], "\(wrongKey.deviations.map(\.detail))")

        let mismatch = try self.session16(begin: try Self.ocmf(kwh: 1.0, marker: "B"), end: try Self.ocmf(kwh: 1.5, marker: "E"), unsignedEndWh: 1600)
        #expect(self.findings(mismatch) == ["meter.signedMismatch"], "\(mismatch.deviations.map(\.detail))")
        #expect(mismatch.deviations.first { (d: Deviation) in d.rule == "meter.signedMismatch" }?.path == "/meterValue/0/sampledValue/1/value")

        // The end paginated T1 like the begin: repeated.
        let repeated = try self.session16(begin: try Self.ocmf(kwh: 1.0, marker: "B"), end: try Self.ocmf(kwh: 1.5, marker: "E", page: 1))
        #expect(self.findings(repeated) == ["meter.signedPagination"], "\(repeated.deviations.map(\.detail))")

        let noEnd = try self.session16(begin: try Self.ocmf(kwh: 1.0, marker: "B"), end: nil)
        #expect(self.findings(noEnd) == ["meter.signedMissing"], "\(noEnd.deviations.map(\.detail))")
    }

    @Test("1.6: the OCMF text hex-encoded, as chargers in the field send it, verifies too; a signature that names brainpool made with a P-256 key does not")
    func encodings16() throws {
        let hexBegin = Self.hex(Array(try Self.ocmf(kwh: 1.0, marker: "B").utf8))
        let report = try self.session16(begin: hexBegin, end: try Self.ocmf(kwh: 1.5, marker: "E"))
        #expect(self.findings(report) == [], "\(report.deviations.map(\.detail))")
        let brainpool = try self.session16(
            begin: try Self.ocmf(kwh: 1.0, marker: "B", algorithm: "ECDSA-brainpool256r1-SHA256"), end: try Self.ocmf(kwh: 1.5, marker: "E")
        )
        #expect(self.findings(brainpool) == ["meter.signatureInvalid"])
        #expect(brainpool.pairs.first?.statistics.billing.first?.signatureValid == false)
    }

    @Test("the OCA application note's forms: 1.6 SignedData as JSON with signedMeterData and an oca:base16:asn1 key, per-connector MeterPublicKey<n>, a cable-loss reading beside the energy")
    func applicationNote() throws {
        func oca(_ key: P256.Signing.PublicKey) -> String { Base64.encode(Array("oca:base16:asn1:\(Self.hex(key.derRepresentation))".utf8)) }
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        // Connector 1's key and connector 2's, each base64 of oca:base16:asn1:<hex DER>.
        capture.call(
            1, at: "08:00:00", "GetConfiguration", "{}",
            answer: #"{"configurationKey":[{"key":"MeterPublicKey1","readonly":true,"value":"\#(oca(Self.key.publicKey))"},{"key":"MeterPublicKey2","readonly":true,"value":"\#(oca(Self.otherKey.publicKey))"}]}"#,
            toCSMS: false
        )
        capture.start(1, at: "08:00:01", dated: "08:00:01")
        // The begin as the note's JSON (no key in it: connector 1's configured key applies).
        let begin = Base64.encode(Array(try Self.ocmf(kwh: 1.0, marker: "B").utf8))
        let note = #"{"signedMeterData":"\#(begin)","signingMethod":"","encodingMethod":"OCMF","publicKey":""}"#
        capture.call(
            1, at: "08:00:02", "MeterValues",
            #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(OutageCapture.ts("08:00:02"))","sampledValue":[{"value":"1000","context":"Transaction.Begin"},{"value":"\#(Self.escaped(note))","format":"SignedData","context":"Transaction.Begin"}]}]}"#
        )
        // The end with a cable-loss reading after the energy: only the energy is held against the register.
        let payload = #"{"FV":"1.0","PG":"T2","MS":"M-1","IS":true,"IT":"ISO14443","RD":[{"TM":"2026-12-04T08:30:00,000+0000 S","TX":"E","RV":1.5,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"},{"RV":25,"RU":"mOhm","ST":"G"}]}"#
        let end = #"OCMF|\#(payload)|{"SD":"\#(Self.hex(try Self.key.signature(for: Data(payload.utf8)).derRepresentation))"}"#
        capture.call(
            1, at: "08:30:00", "MeterValues",
            #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(OutageCapture.ts("08:30:00"))","sampledValue":[{"value":"1500","context":"Transaction.End"},{"value":"\#(Self.escaped(end))","format":"SignedData","context":"Transaction.End"}]}]}"#
        )
        capture.stop(1, at: "08:30:01", dated: "08:30:01", wh: 1500)
        let report = try capture.analyse(AnalyzerConfiguration())
        #expect(self.findings(report) == [], "\(report.deviations.map(\.detail))")
        let row = try #require(report.pairs.first?.statistics.billing.first)
        #expect(row.signed && row.signatureValid == true, "\(row)")
    }

    @Test("a stop that repeats the signed begin beside the end is no replay; a raw key point (04…) in the configuration is a key; one that is no key leaves the value unjudged")
    func repeatsAndKeys() throws {
        func session(configuredKey: String) throws -> AnalysisReport {
            var capture = OutageCapture(.v16)
            capture.open(1, at: "08:00:00")
            capture.call(1, at: "08:00:00", "GetConfiguration", "{}", answer: #"{"configurationKey":[{"key":"MeterPublicKey","readonly":true,"value":"\#(configuredKey)"}]}"#, toCSMS: false)
            capture.start(1, at: "08:00:01", dated: "08:00:01")
            let begin = try Self.ocmf(kwh: 1.0, marker: "B")
            let end = try Self.ocmf(kwh: 1.5, marker: "E")
            capture.call(
                1, at: "08:00:02", "MeterValues",
                #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(OutageCapture.ts("08:00:02"))","sampledValue":[{"value":"1000","context":"Transaction.Begin"},{"value":"\#(Self.escaped(begin))","format":"SignedData","context":"Transaction.Begin"}]}]}"#
            )
            // The stop's transactionData repeats the begin and adds the end, as chargers following StopTxnSampledData do.
            capture.call(
                1, at: "08:30:00", "StopTransaction",
                #"{"transactionId":7,"meterStop":1500,"timestamp":"\#(OutageCapture.ts("08:30:00"))","transactionData":[{"timestamp":"\#(OutageCapture.ts("08:00:02"))","sampledValue":[{"value":"1000","context":"Transaction.Begin"},{"value":"\#(Self.escaped(begin))","format":"SignedData","context":"Transaction.Begin"}]},{"timestamp":"\#(OutageCapture.ts("08:30:00"))","sampledValue":[{"value":"1500","context":"Transaction.End"},{"value":"\#(Self.escaped(end))","format":"SignedData","context":"Transaction.End"}]}]}"#,
                answer: #"{"idTagInfo":{"status":"Accepted"}}"#
            )
            return try capture.analyse(AnalyzerConfiguration())
        }
        let raw = try session(configuredKey: Self.hex(Self.key.publicKey.x963Representation))
        #expect(self.findings(raw) == [], "\(raw.deviations.map(\.detail))")
        #expect(raw.pairs.first?.statistics.billing.first?.signatureValid == true)
        let notAKey = try session(configuredKey: "0A0B0C")
        #expect(self.findings(notAKey) == [], "\(notAKey.deviations.map(\.detail))")
        #expect(notAKey.pairs.first?.statistics.billing.first.map { $0.signed && $0.signatureValid == nil } == true)
    }

    @Test("2.0.1: signedMeterValue with the key it carries verifies; a value signed with another key is a key change")
    func values201() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        func event(_ time: String, _ type: String, seqNo: Int, kwh: Double, marker: String, key: P256.Signing.PrivateKey, context: String) throws {
            let data = Base64.encode(Array(try Self.ocmf(kwh: kwh, marker: marker, key: key).utf8))
            let publicKey = Base64.encode(Array(key.publicKey.derRepresentation))
            capture.call(
                1, at: time, "TransactionEvent",
                #"{"eventType":"\#(type)","timestamp":"\#(OutageCapture.ts(time))","triggerReason":"Authorized","seqNo":\#(seqNo),"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1},"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[{"value":\#(Int(kwh * 1000)),"context":"\#(context)","signedMeterValue":{"signedMeterData":"\#(data)","signingMethod":"ECDSA-secp256r1-SHA256","encodingMethod":"OCMF","publicKey":"\#(publicKey)"}}]}]}"#
            )
        }
        try event("08:00:00", "Started", seqNo: 0, kwh: 1.0, marker: "B", key: Self.key, context: "Transaction.Begin")
        try event("08:30:00", "Ended", seqNo: 1, kwh: 1.5, marker: "E", key: Self.otherKey, context: "Transaction.End")
        let report = try capture.analyse(AnalyzerConfiguration())
        #expect(self.findings(report) == ["meter.keyChanged"], "\(report.deviations.map(\.detail))")
        let row = try #require(report.pairs.first?.statistics.billing.first)
        #expect(row.signed && row.signatureValid == true)
    }
}
