import ChildProcesses
import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

enum InstalledSchemas {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas").path
    static let registry: Result<SchemaRegistry, any Error> = Result { try SchemaRegistry(root: root) }
}

extension ProxyHarness {
    /// Analyses everything captured so far, as `ocpp-witness report` would.
    func report(profile: ValidationProfile = .strict) async throws -> AnalysisReport {
        let analyzer = Analyzer(schemas: try InstalledSchemas.registry.get(), configuration: AnalyzerConfiguration(profile: profile))
        for record in try await self.records() { analyzer.consume(record) }
        return analyzer.finish()
    }
}

@Suite("Deviations found in real traffic through the proxy")
struct AnalysisTests {
    @Test("a clean session between the simulators reports zero deviations", arguments: [OCPPVersion.v16, .v201])
    func cleanSession(version: OCPPVersion) async throws {
        try await ProxyHarness.start().run { harness in
            let charger = harness.charger(ChargerProfile(id: "CLEAN-\(version.rawValue)", vendor: "Clean Co", model: "C1", firmware: "9.9", version: version))
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 3)
            await charger.disconnect()
            await harness.waitForClosedPairs(1)
            let report = try await harness.report()
            #expect(report.deviations.map(\.rule) == [])
            // The simulators connect without credentials: the security review sees profile 0.
            #expect(report.pairs.first?.statistics.securityProfiles == [0: 1])
            #expect(report.pairs.count == 1)
            #expect(report.pairs.first?.key.charger == ChargerIdentity(vendor: "Clean Co", model: "C1", firmware: "9.9"))
            #expect(report.pairs.first?.key.backend == "SimCSMS")
            #expect(report.pairs.first?.verdict == "pass")
            #expect(report.pairs.first?.statistics.latencies["BootNotification"]?.count == 1)
        }
    }

    /// The Python peers stamp every message and reading with their own clock (the 2.0.1 Ended event's
    /// reading a few microseconds after the event): nothing of that is a deviation.
    @Test("the Python ocpp library's charge point and central system produce zero deviations", arguments: [OCPPVersion.v16, .v201])
    func pythonPairClean(version: OCPPVersion) async throws {
        let (centralSystem, port) = try await PythonPeers.startCentralSystem()
        defer { centralSystem.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let summary = try await PythonPeers.runChargePoint(url: "ws://127.0.0.1:\(harness.proxyURL.port)", id: "PY-CLEAN", version: version)
            #expect(summary.contains(#""subprotocol": "\#(version.subprotocol)""#))
            await harness.waitForClosedPairs(1)
            let report = try await harness.report()
            #expect(report.deviations.map { "\($0.rule) \($0.path ?? "") \($0.detail)" } == [])
            #expect(report.pairs.first?.key.charger.vendor == "PyVendor")
            #expect(report.pairs.first?.verdict == "pass")
            let calls = try await harness.frames("PY-CLEAN").filter { $0.messageType == .call }.compactMap(\.action)
            #expect(calls.filter { $0 == "TransactionEvent" || $0 == "StopTransaction" }.isEmpty == false)
        }
    }

    @Test("planted problems are each reported with the right rule and path, and nothing else")
    func plantedProblems() async throws {
        var csmsConfiguration = CSMSSimulator.Configuration(versions: [.v16])
        // Heartbeats are answered slowly, so that two sent back to back are in flight together.
        csmsConfiguration.handler = { _, version, action, payload in
            if action == "Heartbeat" { try await Task.sleep(for: .milliseconds(300)) }
            var next = 2000
            return try CSMSAnswers.answer(action, payload, version: version) {
                next += 1
                return next
            }
        }
        try await ProxyHarness.start(csms: csmsConfiguration).run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-PLANT"
            let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
            // The charger answers the CSMS's Reset with 2.0.1's spelling of the format error.
            charger.onCall { _, _ in throw CallErrorReply(code: "FormatViolation", description: "wrong spelling for 1.6") }
            let csms = await harness.csms.connection("CP-PLANT")
            let now = Timestamp.now().rfc3339

            _ = try await charger.call("BootNotification", ["chargePointVendor": "Plant", "chargePointModel": "P1", "firmwareVersion": "1.0"])
            // A number where 1.6 wants a string.
            _ = try await charger.call("MeterValues", ["connectorId": 1, "meterValue": [["timestamp": .string(now), "sampledValue": [["value": 1500]]]]])
            // A missing required field.
            _ = try await charger.call("StatusNotification", ["connectorId": 1, "status": "Available"])
            // An enum outside its set.
            _ = try await charger.call("StatusNotification", ["connectorId": 1, "errorCode": "NoError", "status": "Plugged"])
            // A string too long.
            _ = try await charger.call("BootNotification", ["chargePointVendor": "Plant", "chargePointModel": "ModelNameThatIsTooLong", "firmwareVersion": "1.0"])
            // A date-time without a zone.
            _ = try await charger.call("StatusNotification", ["connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "2026-11-24T10:00:00"])
            // An unknown property.
            _ = try await charger.call("Heartbeat", ["note": "hello"])
            // An answer to an id nobody asked about.
            csms.sendText(#"[3,"nobody-asked",{}]"#)
            // A wrong-version error code (the charger's handler answers the Reset).
            _ = try await csms.call("Reset", ["type": "Soft"])
            // Two CALLs in flight.
            async let first = charger.call("Heartbeat", [:])
            try await Task.sleep(for: .milliseconds(20))
            async let second = charger.call("Heartbeat", [:])
            _ = try await (first, second)
            // A register going backwards inside a transaction.
            let started = try await charger.call("StartTransaction", ["connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": .string(now)]).payload()
            let transactionId = try #require(started["transactionId"])
            for wh in ["1500", "1400"] {
                _ = try await charger.call(
                    "MeterValues",
                    ["connectorId": 1, "transactionId": transactionId, "meterValue": [["timestamp": .string(Timestamp.now().rfc3339), "sampledValue": [["value": .string(wh)]]]]]
                )
            }
            _ = try await charger.call("StopTransaction", ["transactionId": transactionId, "meterStop": 2000, "timestamp": .string(Timestamp.now().rfc3339)])
            await charger.close()
            await harness.waitForClosedPairs(1)

            let report = try await harness.report()
            let found = report.deviations.map { "\($0.rule) \($0.path ?? "-")" }
            #expect(
                found.sorted() == [
                    "rpc.concurrentCall -",
                    "rpc.unknownErrorCode -",
                    "rpc.unknownMessageId -",
                    "schema.additionalProperties /note",
                    "schema.enum /status",
                    "schema.format /timestamp",
                    "schema.maxLength /chargePointModel",
                    "schema.required /errorCode",
                    "schema.type /meterValue/0/sampledValue/0/value",
                    "tx.registerBackwards /meterValue/0/sampledValue/0/value",
                ]
            )
            let byRule = Dictionary(report.deviations.map { ($0.rule, $0) }, uniquingKeysWith: { first, _ in first })
            #expect(byRule["rpc.unknownErrorCode"]?.detail == "'FormatViolation' is not an OCPP 1.6 error code (did you mean 'FormationViolation'?)")
            #expect(byRule["rpc.unknownErrorCode"]?.direction == .toCSMS)
            #expect(byRule["rpc.unknownMessageId"]?.direction == .toCharger)
            #expect(byRule["rpc.unknownMessageId"]?.messageId == "nobody-asked")
            #expect(byRule["tx.registerBackwards"]?.detail == "register went from 1500 Wh to 1400 Wh")
            #expect(byRule["schema.type"]?.detail == "expected string, found number 1500")
            #expect(byRule["schema.maxLength"]?.detail == "expected at most 20 characters, found 22 characters")
            #expect(byRule["schema.enum"]?.evidence?.contains("Plugged") == true)
            #expect(report.deviations.allSatisfy { $0.chargePoint == "CP-PLANT" && $0.ref?.contains(".jsonl:") == true })
            #expect(report.pairs.first?.verdict == "fail")

            // The lenient profile keeps the quirks but as warnings.
            let lenient = try await harness.report(profile: .lenient)
            #expect(lenient.deviations.filter { $0.severity == .warning }.map(\.rule).sorted() == ["rpc.concurrentCall", "schema.format", "schema.maxLength"])
        }
    }
}
