import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// Transactions started while the charger was offline, judged by what the capture shows the charger knew of
/// the identifier and by the site's declaration (docs/rules.md, `auth.offlineNotAllowed`; docs/witness-tests.md,
/// "Judged checks").
@Suite("Offline authorization and stop on an invalid identifier, through the proxy")
struct OfflineAuthorizationTests {
    /// The site allows no offline transactions for unknown identifiers and wants a transaction stopped whose
    /// identifier the backend turns out not to accept; the backend refuses BLOCKED-TAG, also in the start.
    static func policy(window: String) throws -> FaultPolicy {
        try PolicyLoader.parse(
            """
            site:
              offline: {unknownIdsOffline: false, stopOnInvalidId: true}
            rules:
              - name: blocked-tag
                match: {direction: toCSMS, action: Authorize, payload: [{path: /idTag, equals: BLOCKED-TAG}]}
                fault: {respond: {callResult: {idTagInfo: {status: Blocked}}}}
              - name: blocked-token
                match: {direction: toCSMS, action: Authorize, payload: [{path: /idToken/idToken, equals: BLOCKED-TAG}]}
                fault: {respond: {callResult: {idTokenInfo: {status: Blocked}}}}
              - name: blocked-start
                match: {direction: toCSMS, action: StartTransaction, payload: [{path: /idTag, equals: BLOCKED-TAG}]}
                fault: {respond: {callResult: {transactionId: 4242, idTagInfo: {status: Blocked}}}}
              - name: blocked-started-event
                match: {direction: toCSMS, action: TransactionEvent, payload: [{path: /idToken/idToken, equals: BLOCKED-TAG}]}
                fault: {respond: {callResult: {idTokenInfo: {status: Blocked}}}}
            checks:
              - name: offline-start-allowed
                area: authorization
                judge: offlineAuthorization
              - name: stops-on-invalid-id
                area: authorization
                judge: stopOnInvalidId
                within: \(window)
              - name: recovery
                area: communicationLoss
                judge: sessionRecovery
            """
        )
    }

    @Test("an offline start with a tag the backend refused is found and fails; a charger that starts offline only with a tag it was given passes", arguments: [OCPPVersion.v16, .v201])
    func offlineStart(version: OCPPVersion) async throws {
        let policy = try Self.policy(window: "20s")
        try await ProxyHarness.start(policy: policy).run { harness in
            let configuration = ["StopTransactionOnInvalidId": "true", "AllowOfflineTxForUnknownId": "false"]
            let good = harness.charger(ChargerProfile(id: "OFFAUTH-GOOD", vendor: "Good Co", version: version, configuration: configuration))
            let bad = harness.charger(
                ChargerProfile(id: "OFFAUTH-BAD", vendor: "Bad Co", version: version, quirks: [.startsOfflineForRefusedTag], configuration: configuration)
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                for charger in [good, bad] {
                    group.addTask {
                        try await charger.connect()
                        try await charger.boot()
                        #expect(try await charger.chargingSession(idTag: "BLOCKED-TAG", meterSamples: 1) == .refused("Blocked"))
                        #expect(try await charger.chargingSession(idTag: "GOOD-TAG", meterSamples: 1) == .charged)
                        // Correct firmware starts nothing offline for the refused tag; the quirky one does.
                        #expect(try await charger.offlineSession(idTag: "BLOCKED-TAG", outage: .seconds(6)) == (charger === bad))
                        #expect(try await charger.offlineSession(idTag: "GOOD-TAG", outage: .seconds(6)))
                        await charger.disconnect()
                    }
                }
                try await group.waitForAll()
            }
            await harness.waitForClosedPairs(6)
            let report = try await harness.report(policy: policy)
            let goodFindings = report.deviations.filter { $0.chargePoint == "OFFAUTH-GOOD" && $0.severity != .info }
            let badFindings = report.deviations.filter { $0.chargePoint == "OFFAUTH-BAD" && $0.severity != .info }
            #expect(goodFindings.map { "\($0.rule): \($0.detail)" } == [])
            #expect(badFindings.map(\.rule) == ["auth.offlineNotAllowed"], "\(badFindings.map(\.detail))")
            let finding = try #require(badFindings.first)
            let start = try #require(try await harness.record(at: finding.ref ?? ""))
            #expect(start.action == (version == .v16 ? "StartTransaction" : "TransactionEvent") && start.messageType == .call)
            // It cites the reconnection after the outage and the backend's refusal of the tag.
            #expect(finding.related.count == 2, "\(finding.related)")
            let reconnection = try #require(try await harness.record(at: finding.related.first ?? ""))
            #expect(reconnection.kind == "open" && reconnection.chargePoint == "OFFAUTH-BAD")
            let refusal = try #require(try await harness.record(at: finding.related.last ?? ""))
            #expect(refusal.action == "Authorize" && refusal.messageType == .callResult && refusal.message?[2]?[version == .v16 ? "idTagInfo" : "idTokenInfo"]?["status"]?.stringValue == "Blocked")

            #expect(report.check("offline-start-allowed", vendor: "Good Co")?.verdict == .pass, "\(report.check("offline-start-allowed", vendor: "Good Co")?.detail ?? "")")
            let failed = try #require(report.check("offline-start-allowed", vendor: "Bad Co"))
            #expect(failed.verdict == .fail && failed.counts[.pass] == 1 && failed.counts[.fail] == 1, "\(failed.detail)")
            // The refused start was stopped at once (DeAuthorized), as the site wants.
            let stopped = try #require(report.check("stops-on-invalid-id", vendor: "Bad Co"))
            #expect(stopped.verdict == .pass, "\(stopped.detail)")
            #expect(report.check("stops-on-invalid-id", vendor: "Good Co")?.verdict == .notRun)
            // Both delivered their queues in order with the times things happened.
            #expect(report.check("recovery", vendor: "Good Co")?.verdict == .pass, "\(report.check("recovery", vendor: "Good Co")?.detail ?? "")")
            #expect(report.check("recovery", vendor: "Bad Co")?.verdict == .pass)
        }
    }

    @Test("a charger configured to stop on an invalid identifier that goes on charging fails stops-on-invalid-id once its window has passed", arguments: [OCPPVersion.v16, .v201])
    func keepsCharging(version: OCPPVersion) async throws {
        let policy = try Self.policy(window: "2s")
        try await ProxyHarness.start(policy: policy).run { harness in
            let charger = harness.charger(
                ChargerProfile(
                    id: "OFFAUTH-KEEPS", vendor: "Keeps Co", version: version, quirks: [.startsOfflineForRefusedTag, .keepsChargingOnInvalidId],
                    configuration: ["StopTransactionOnInvalidId": "true"]
                )
            )
            try await charger.connect()
            try await charger.boot()
            #expect(try await charger.offlineSession(idTag: "BLOCKED-TAG", outage: .seconds(6)))
            // Outlast the window, so that the stop that never comes is a failure and not the end of the capture.
            try await Task.sleep(for: .seconds(3))
            _ = try await charger.call("Heartbeat", [:])
            await charger.disconnect()
            await harness.waitForClosedPairs(2)
            let report = try await harness.report(policy: policy)
            let check = try #require(report.check("stops-on-invalid-id", vendor: "Keeps Co"))
            #expect(check.verdict == .fail, "\(check.detail)")
            #expect(check.detail.contains("not stopped within 2 s") && check.detail.contains("site's declaration"), "\(check.detail)")
            let answer = try #require(try await harness.record(at: check.ref(0)))
            #expect(answer.messageType == .callResult && answer.action == (version == .v16 ? "StartTransaction" : "TransactionEvent"))
            // No refusal seen online and unknown identifiers not allowed: whether the charger knew the tag is not shown.
            #expect(report.check("offline-start-allowed", vendor: "Keeps Co")?.verdict == .inconclusive)
            #expect(report.deviations.filter { $0.severity != .info }.map(\.rule) == [])
        }
    }
}
