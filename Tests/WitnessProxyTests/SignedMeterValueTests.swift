import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// Signed meter values (OCMF) through the proxy, judged against an independent oracle: keys and signatures from the
/// Python `cryptography` package, verdicts from `pyocmf` (Tests/Interop/ocmf_samples.py; docs/billing.md).
@Suite("Signed meter values against pyocmf, through the proxy")
struct SignedMeterValueOracleTests {
    struct Sample: Decodable {
        var name: String
        var curve: String
        var ocmf: String
        var publicKey: String
        var kwh: Double
        var pyocmf: Bool?
    }

    @Test("every secp256r1 and brainpoolP256r1 sample, in 1.6 (SignedData, the key from the charger's configuration) and 2.0.1 (signedMeterValue with its key): OCPP Witness agrees with pyocmf", arguments: [OCPPVersion.v16, .v201])
    func oracle(version: OCPPVersion) async throws {
        let samples = try JSONDecoder().decode([Sample].self, from: Data(try await PythonPeers.run("ocmf_samples.py", []).utf8))
        #expect(samples.count == 11 && samples.contains { $0.curve == "brainpoolP256r1" && $0.pyocmf == true })
        try await ProxyHarness.start().run { harness in
            for sample in samples {
                let id = "OCMF-\(sample.name)"
                // 1.6 chargers publish the meter's key as a configuration key; 2.0.1 ones send it with the value.
                let charger = harness.charger(ChargerProfile(id: id, version: version, configuration: version == .v16 ? ["MeterPublicKey": sample.publicKey] : [:]))
                try await charger.connect()
                try await charger.boot()
                if version == .v16 { _ = try await harness.csms.connection(id).call("GetConfiguration", ["key": ["MeterPublicKey"]]) }
                let wh = Int((sample.kwh * 1000).rounded())
                let now = Timestamp.now().rfc3339
                if version == .v16 {
                    let started = try await charger.call("StartTransaction", ["connectorId": 1, "idTag": "ORACLE", "meterStart": .int(wh), "timestamp": .string(now)])
                    let transaction = started["transactionId"] ?? 1
                    let signed: JSONValue = [
                        "connectorId": 1, "transactionId": transaction,
                        "meterValue": [[
                            "timestamp": .string(now),
                            "sampledValue": [["value": .string(String(wh))], ["value": .string(sample.ocmf), "format": "SignedData"]],
                        ]],
                    ]
                    _ = try await charger.call("MeterValues", signed)
                    _ = try await charger.call("StopTransaction", ["transactionId": transaction, "meterStop": .int(wh), "timestamp": .string(Timestamp.now().rfc3339)])
                } else {
                    let publicKey = Base64.encode(OCMFKeys.bytes(hex: sample.publicKey))
                    func event(_ type: String, _ seqNo: Int, signed: Bool) -> JSONValue {
                        var value: JSONObject = ["value": .int(wh)]
                        if signed {
                            value["signedMeterValue"] = [
                                "signedMeterData": .string(Base64.encode(Array(sample.ocmf.utf8))), "signingMethod": "", "encodingMethod": "OCMF",
                                "publicKey": .string(publicKey),
                            ]
                        }
                        return [
                            "eventType": .string(type), "timestamp": .string(Timestamp.now().rfc3339), "triggerReason": "Authorized", "seqNo": .int(seqNo),
                            "transactionInfo": ["transactionId": .string("tx-" + sample.name)], "evse": ["id": 1, "connectorId": 1],
                            "meterValue": [["timestamp": .string(Timestamp.now().rfc3339), "sampledValue": [.object(value)]]],
                        ]
                    }
                    _ = try await charger.call("TransactionEvent", event("Started", 0, signed: true))
                    _ = try await charger.call("TransactionEvent", event("Ended", 1, signed: false))
                }
                await charger.disconnect()
            }
            await harness.waitForClosedPairs(samples.count)

            let report = try await harness.report(AnalyzerConfiguration())
            let rows = report.pairs.flatMap(\.statistics.billing)
            for sample in samples {
                let id = "OCMF-\(sample.name)"
                let invalid = report.deviations.contains { (d: Deviation) in d.chargePoint == id && d.rule == "meter.signatureInvalid" }
                let row = rows.first { (row: BillingRow) in row.chargePoint == id }
                #expect(row?.signed == true, "\(sample.name): \(String(describing: row))")
                if let verdict = sample.pyocmf {
                    #expect(invalid == !verdict && row?.signatureValid == verdict, "\(sample.name): pyocmf says \(verdict); \(report.deviations.filter { $0.chargePoint == id }.map(\.detail))")
                } else {
                    // pyocmf 0.6.0 does not take the algorithm's other name for a brainpool key; OCPP Witness does (docs/billing.md).
                    #expect(sample.name.hasSuffix("aliasName") && !invalid && row?.signatureValid == true, "\(sample.name)")
                }
            }
        }
    }
}

/// Hex to bytes, for keys the oracle writes as hex.
enum OCMFKeys {
    static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            if let byte = UInt8(hex[index..<next], radix: 16) { bytes.append(byte) }
            index = next
        }
        return bytes
    }
}
