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

/// A firmware update that drops behaviour the earlier firmware had, seen through the proxy (docs/reports.md,
/// "Firmware regressions").
@Suite("Firmware regressions")
struct RegressionTests {
    /// Boots `profile`, has the backend read its configuration, set a charging profile and trigger a status.
    static func exercise(_ harness: ProxyHarness, _ profile: ChargerProfile) async throws -> ChargerSimulator {
        let charger = harness.charger(profile)
        try await charger.connect()
        try await charger.boot()
        let csms = await harness.csms.connection(profile.id)
        _ = try await csms.call("GetConfiguration", ["key": ["SupportedFeatureProfiles"]])
        _ = try? await csms.call("SetChargingProfile", FeatureTests.chargingProfile(.v16))
        _ = try await csms.call("TriggerMessage", ["requestedMessage": "StatusNotification"])
        return charger
    }

    @Test("a charge point updated to a firmware that refuses smart charging and ignores triggers: the later firmware regresses, with its lines; a clean update does not; --fail-on regression fails")
    func update() async throws {
        try await ProxyHarness.start().run { harness in
            let claims = ["SupportedFeatureProfiles": "Core,SmartCharging,RemoteTrigger"]
            // One charge point across an update: firmware A, then B, which dropped smart charging and triggers.
            let a = try await Self.exercise(harness, ChargerProfile(id: "REG-1", vendor: "Witness Labs", firmware: "1.0.0", configuration: claims))
            try await Task.sleep(for: .milliseconds(300))
            await a.disconnect()
            let b = try await Self.exercise(
                harness,
                ChargerProfile(id: "REG-1", vendor: "Witness Labs", firmware: "2.0.0", quirks: [.refusesClaimedFeature, .ignoresTrigger], configuration: claims)
            )
            // Another model updated without a change in behaviour.
            let c = try await Self.exercise(harness, ChargerProfile(id: "STEADY-1", vendor: "Steady Co", firmware: "1.0.0", configuration: claims))
            try await Task.sleep(for: .milliseconds(300))
            await c.disconnect()
            let d = try await Self.exercise(harness, ChargerProfile(id: "STEADY-1", vendor: "Steady Co", firmware: "1.1.0", configuration: claims))
            // Outlast the 2 s command window on B, so that the trigger it ignored is not carried out.
            try await Task.sleep(for: .seconds(3))
            _ = try await b.call("Heartbeat", [:])
            await b.disconnect()
            await d.disconnect()
            await harness.waitForClosedPairs(4)

            var configuration = AnalyzerConfiguration()
            configuration.commandWindowSeconds = 2
            configuration.checks = try samplePolicy("smart-charging", rules: []).checks
            let report = try await harness.report(configuration)
            #expect(report.firmware.count == 2, "\(report.firmware.map { "\($0.vendor) \($0.before)→\($0.after)" })")
            let regressed = try #require(report.firmware.first { (comparison: FirmwareComparison) in comparison.vendor == "Witness Labs" })
            #expect((regressed.before, regressed.after, regressed.notCompared == nil) == ("1.0.0", "2.0.0", true))
            let kinds = regressed.regressions.map { (regression: FirmwareComparison.Regression) in "\(regression.kind.rawValue) \(regression.subject)" }
            #expect(
                // One trigger each is too few to compare its times or share (`Regressions.fewest`); its not being carried out is a new finding.
                Set(kinds) == ["check smart-charging-as-claimed", "finding feature.claimedButRefused", "finding command.notCarriedOut", "feature SmartCharging"],
                "\(kinds)"
            )
            // The feature's evidence: where it worked with A, where B refused it.
            let feature = try #require(regressed.regressions.first { (regression: FirmwareComparison.Regression) in regression.kind == .feature })
            #expect(feature.refs.count == 2)
            let worked = try #require(try await harness.record(at: feature.refs[0]))
            let refusedLine = try #require(try await harness.record(at: feature.refs[1]))
            #expect(worked.messageType == .callResult && worked.action == "SetChargingProfile")
            #expect(refusedLine.messageType == .callError && refusedLine.action == "SetChargingProfile")
            let steady = try #require(report.firmware.first { (comparison: FirmwareComparison) in comparison.vendor == "Steady Co" })
            #expect(steady.notCompared == nil && steady.regressions.isEmpty, "\(steady.regressions.map(\.detail))")
            #expect(report.regressions.count == 1)

            // Marked in every format.
            let json = try JSONParser.parse(report.render(.json))
            #expect(json["summary"]?["regressions"] == 1)
            let marked = (json["pairs"]?.arrayValue ?? []).filter { $0["regression"] == true }.map { $0["charger"]?["firmware"]?.stringValue ?? "" }
            #expect(marked == ["2.0.0"])
            #expect(report.render(.md).contains("## Firmware regressions") && report.render(.md).contains("· **regression** from 1.0.0"))
            let html = report.render(.html)
            #expect(html.contains("<h2 id=\"firmware\">Firmware regressions</h2>") && html.contains("REGRESSION from 1.0.0"))
            // One self-contained page: the regression view and the matrices need nothing from outside.
            for outside in ["<script", "<link", "<img", "@import", "url(", "src=", "href=\"http"] { #expect(!html.contains(outside), "\(outside)") }
            #expect(report.render(.junit).contains("<testsuite name=\"firmware regressions\" tests=\"2\" failures=\"1\">"))

            // The command line fails on it with --fail-on regression, and not without.
            let binary = Paths.root.appendingPathComponent(".build/debug/ocpp-witness").path
            let output = harness.captureDirectory + "/report.json"
            let passing = try await Program.run(binary, ["report", harness.captureDirectory, "--command-window", "2", "-o", output])
            #expect(passing.status == 0, "\(passing.errors)")
            let failing = try await Program.run(binary, ["report", harness.captureDirectory, "--command-window", "2", "--fail-on", "regression", "-o", output])
            #expect(failing.status == 1 && failing.errors.contains("regression: Witness Labs SimCharger 22 × SimCSMS, 1.0.0 → 2.0.0"), "\(failing.errors)")
        }
    }
}
