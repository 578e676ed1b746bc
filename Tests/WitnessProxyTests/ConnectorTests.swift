import Foundation
import ChildProcesses
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// The charger model judged from real sessions through the proxy: connectors (1.6) and EVSEs (2.0.1) followed
/// apart, by simulated chargers with connector misbehaviour and by the Python `ocpp` library.
@Suite("Connectors and EVSEs judged from real sessions through the proxy")
struct ConnectorTests {
    @Test("a connector double-booked or meter values naming the wrong connector are found on the message that shows them; two connectors used in turn give nothing", arguments: [OCPPVersion.v16, .v201])
    func connectorMisbehaviour(version: OCPPVersion) async throws {
        try await ProxyHarness.start().run { harness in
            let good = harness.charger(ChargerProfile(id: "TWO-GOOD", vendor: "Good Co", version: version, connectors: 2))
            let double = harness.charger(ChargerProfile(id: "TWO-DOUBLE", vendor: "Double Co", version: version, quirks: [.doubleBooksConnector], connectors: 2))
            let wrong = harness.charger(ChargerProfile(id: "TWO-WRONG", vendor: "Wrong Co", version: version, quirks: [.metersWrongConnector], connectors: 2))
            for charger in [good, double, wrong] {
                try await charger.connect()
                try await charger.boot()
            }
            try await good.chargingSession(meterSamples: 2, connector: 1)
            try await good.chargingSession(meterSamples: 2, connector: 2)
            try await double.chargingSession(meterSamples: 2, connector: 1)
            try await wrong.chargingSession(meterSamples: 2, connector: 1)
            for charger in [good, double, wrong] { await charger.disconnect() }
            await harness.waitForClosedPairs(3)
            let report = try await harness.report()
            func found(_ chargePoint: String) -> [Deviation] { report.deviations.filter { $0.chargePoint == chargePoint } }

            #expect(found("TWO-GOOD").map { "\($0.rule): \($0.detail)" } == [])

            // One finding, on the second start, naming the first; the first transaction, never stopped, is not reported again.
            let busy = found("TWO-DOUBLE")
            #expect(busy.map(\.rule) == ["connector.transactionBusy"], "\(busy.map(\.detail))")
            let second = try #require(try await harness.record(at: busy.first?.ref ?? ""))
            let first = try #require(try await harness.record(at: busy.first?.related.first ?? ""))
            let startAction = version == .v16 ? "StartTransaction" : "TransactionEvent"
            #expect(second.action == startAction && second.messageType == .call && second.chargePoint == "TWO-DOUBLE")
            #expect(first.action == startAction && first.messageType == .call && first.line < second.line)
            #expect(busy.first?.detail.contains(version == .v16 ? "connector 1" : "EVSE 1") == true)
            #expect(busy.first?.severity == .error)

            // Each message that names connector (EVSE) 2 for connector 1's transaction, and nothing else: the two
            // meter messages, and in 2.0.1 the Ended event (a 1.6 stop names no connector).
            let mismatches = found("TWO-WRONG")
            #expect(mismatches.map(\.rule) == Array(repeating: "connector.mismatch", count: version == .v16 ? 2 : 3), "\(mismatches.map(\.detail))")
            for mismatch in mismatches {
                let message = try #require(try await harness.record(at: mismatch.ref ?? ""))
                #expect(message.action == (version == .v16 ? "MeterValues" : "TransactionEvent"))
                #expect(mismatch.detail.contains(version == .v16 ? "connector 2" : "EVSE 2"))
                #expect(mismatch.related.first.map { $0 != mismatch.ref } == true)
            }
            if version != .v16 {
                #expect(mismatches.last?.detail.contains("TransactionEvent Ended") == true)
            }
            #expect(report.deviations.allSatisfy { $0.chargePoint != nil })
        }
    }

    /// The Python peer charges on two connectors (EVSEs) at once, interleaving their meter values: the
    /// transactions are judged apart, and nothing is a finding.
    @Test("the Python ocpp library charging on two connectors at once gives no finding", arguments: [OCPPVersion.v16, .v201])
    func pythonTwoConnectors(version: OCPPVersion) async throws {
        let (centralSystem, port) = try await PythonPeers.startCentralSystem()
        defer { centralSystem.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let url = "ws://127.0.0.1:\(harness.proxyURL.port)"
            let summary = try await PythonPeers.run("two_connectors.py", [url, "PY-TWO", version.rawValue])
            #expect(summary.contains(#""transactions": 2"#))
            await harness.waitForClosedPairs(1)
            let report = try await harness.report()
            #expect(report.deviations.map { "\($0.rule) \($0.path ?? "") \($0.detail)" } == [])
            let starts = try await harness.frames("PY-TWO").filter { $0.messageType == .call && ($0.action == "StartTransaction" || $0.action == "TransactionEvent") }
            // 1.6: two StartTransaction; 2.0.1: Started, two Updated and Ended for each of the two transactions.
            #expect(starts.count == (version == .v16 ? 2 : 8))
        }
    }

    /// The hole the sample checks had: connector 0 (or another connector) Available passed a check about the
    /// connector that was Faulted.
    @Test("fault handling follows the faulted connector: another connector's Available does not recover it", arguments: [OCPPVersion.v16, .v201])
    func faultFollowsConnector(version: OCPPVersion) async throws {
        let policy = try samplePolicy("fault-handling", rules: [], window: checkWindow)
        try await ProxyHarness.start(policy: policy).run { harness in
            let good = harness.charger(ChargerProfile(id: "FAULT-GOOD", vendor: "Good Co", version: version, connectors: 2))
            let stuck = harness.charger(ChargerProfile(id: "FAULT-STUCK", vendor: "Stuck Co", version: version, quirks: [.staysFaulted], connectors: 2))
            for charger in [good, stuck] {
                try await charger.connect()
                try await charger.boot()
                try await charger.fault(errorCode: "GroundFailure")
                // Connector 2 charges and ends Available while connector 1 stays as it is.
                try await charger.chargingSession(meterSamples: 1, connector: 2)
            }
            try await Task.sleep(for: .seconds(9))
            for charger in [good, stuck] {
                _ = try? await charger.call("Heartbeat", [:])
                await charger.disconnect()
            }
            await harness.waitForClosedPairs(2)
            let report = try await harness.report(checks: policy.checks)
            let name = version == .v16 ? "recovers-from-fault" : "recovers-from-fault-201"
            let passed = try #require(report.check(name, vendor: "Good Co"))
            #expect(passed.verdict == .pass, "\(passed.detail)")
            let recovery = try #require(try await harness.record(at: passed.ref(1)))
            let connectorField = version == .v16 ? "connectorId" : "evseId"
            #expect(recovery.message?[3]?[connectorField]?.intValue == 1)
            let failed = try #require(report.check(name, vendor: "Stuck Co"))
            #expect(failed.verdict == .fail, "\(failed.detail)")
            #expect(failed.detail.contains(version == .v16 ? "for connector 1" : "for EVSE 1"), "\(failed.detail)")
        }
    }
}
