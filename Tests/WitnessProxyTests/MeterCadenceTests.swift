import ChildProcesses
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

extension ProxyHarness {
    /// The report `ocpp-witness report --policy` gives: the policy's checks and site declarations.
    func report(policy: FaultPolicy) async throws -> AnalysisReport {
        var configuration = AnalyzerConfiguration()
        configuration.checks = policy.checks
        configuration.site = policy.site
        return try await self.report(configuration)
    }

    /// The backend asks the charger for its metering configuration, as a CSMS commissioning it does.
    func askConfiguration(_ chargePoint: String, version: OCPPVersion) async throws {
        let csms = await self.csms.connection(chargePoint)
        if version == .v16 {
            _ = try await csms.call("GetConfiguration", [:])
        } else {
            let variables: [(String, String)] = [("SampledDataCtrlr", "TxUpdatedInterval"), ("SampledDataCtrlr", "TxUpdatedMeasurands"), ("AlignedDataCtrlr", "Interval")]
            _ = try await csms.call(
                "GetVariables", ["getVariableData": .array(variables.map { ["component": ["name": .string($0.0)], "variable": ["name": .string($0.1)]] })]
            )
        }
    }
}

/// Meter cadence and format judged from real sessions through the proxy, by the configuration the backend read
/// from the charger (docs/rules.md, `meter.*`; docs/reports.md, "Meter cadence").
@Suite("Meter cadence and measurands, through the proxy")
struct MeterCadenceTests {
    static let metering = ["MeterValueSampleInterval": "10", "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import"]

    /// A good charger and one with `quirk`, both configured with `configuration`, asked for it by the backend, then
    /// one session of four periodic readings each.
    func run(_ version: OCPPVersion, quirk: ChargerQuirk, configuration: [String: String] = Self.metering, policy: FaultPolicy? = nil) async throws
        -> (report: AnalysisReport, good: [Deviation], bad: [Deviation], harness: ProxyHarness)
    {
        let harness = try await ProxyHarness.start(policy: policy ?? FaultPolicy(seed: 1, rules: []))
        let good = harness.charger(ChargerProfile(id: "METER-GOOD", vendor: "Good Co", version: version, configuration: configuration))
        let bad = harness.charger(ChargerProfile(id: "METER-BAD", vendor: "Bad Co", version: version, quirks: [quirk], configuration: configuration))
        for charger in [good, bad] {
            try await charger.connect()
            try await charger.boot()
            try await harness.askConfiguration(charger.profile.id, version: version)
            #expect(try await charger.chargingSession(meterSamples: 4) == .charged)
            await charger.disconnect()
        }
        await harness.waitForClosedPairs(2)
        let report = try await harness.report(policy: policy ?? FaultPolicy(seed: 1, rules: []))
        return (report, report.deviations.filter { $0.chargePoint == "METER-GOOD" }, report.deviations.filter { $0.chargePoint == "METER-BAD" }, harness)
    }

    func cadence(_ report: AnalysisReport, vendor: String) -> CadenceRow? {
        report.pairs.first { $0.key.charger.vendor == vendor }?.statistics.cadence.rows.first
    }

    @Test("readings every 30 s where 10 s is configured are found once per transaction, citing the configuration's line; readings at 10 s are not", arguments: [OCPPVersion.v16, .v201])
    func slowReadings(version: OCPPVersion) async throws {
        let (report, good, bad, harness) = try await self.run(version, quirk: .samplesSlowerThanConfigured)
        #expect(good.filter { $0.severity != .info }.map { "\($0.rule): \($0.detail)" } == [])
        #expect(bad.map(\.rule) == ["meter.interval"], "\(bad.map(\.detail))")
        let finding = try #require(bad.first)
        #expect(finding.detail.contains("every 30 s") && finding.detail.contains("10 s"), "\(finding.detail)")
        let reading = try #require(try await harness.record(at: finding.ref ?? ""))
        #expect(reading.action == (version == .v16 ? "MeterValues" : "TransactionEvent") && reading.chargePoint == "METER-BAD")
        let configuration = try #require(try await harness.record(at: finding.related.last ?? ""))
        #expect(configuration.action == (version == .v16 ? "GetConfiguration" : "GetVariables") && configuration.messageType == .callResult)
        #expect(cadence(report, vendor: "Good Co")?.medianInterval == 10)
        #expect(cadence(report, vendor: "Bad Co")?.medianInterval == 30)
        #expect(cadence(report, vendor: "Bad Co")?.configuredInterval == 10)
        #expect(cadence(report, vendor: "Good Co")?.periodicReadings == 4)
        // The buyer's view: the cadence table in every report format.
        #expect(report.render(.html).contains("<h3>Meter cadence</h3>") && report.render(.html).contains("30 s / 10 s"))
        #expect(report.render(.md).contains("## Meter cadence") && report.render(.md).contains("| 10 s / 10 s |"))
        let json = try JSONParser.parse(Array(report.render(.json).utf8))
        let rows = json["pairs"]?.arrayValue?.compactMap { $0["cadence"]?["rows"]?[0] } ?? []
        #expect(rows.compactMap { $0["medianIntervalS"]?.doubleValue }.sorted() == [10, 30])
        await harness.stop()
    }

    @Test("a configured measurand missing from the periodic readings is found once per transaction; a charger that reports it is not", arguments: [OCPPVersion.v16, .v201])
    func missingMeasurand(version: OCPPVersion) async throws {
        let (report, good, bad, harness) = try await self.run(version, quirk: .omitsConfiguredMeasurand)
        #expect(good.filter { $0.severity != .info }.map { "\($0.rule): \($0.detail)" } == [])
        #expect(bad.map(\.rule) == ["meter.measurandMissing"], "\(bad.map(\.detail))")
        #expect(bad.first?.detail.contains("Power.Active.Import") == true)
        #expect(cadence(report, vendor: "Good Co")?.measurands.keys.sorted() == ["Energy.Active.Import.Register", "Power.Active.Import"])
        #expect(cadence(report, vendor: "Bad Co")?.missingMeasurands == ["Power.Active.Import"])
        await harness.stop()
    }

    @Test("a charger configured otherwise than the site declares is a conflict on the answer that shows it, and is judged by its own configuration")
    func siteConflict() async throws {
        let policy = try PolicyLoader.parse("site:\n  metering:\n    sampleInterval: 10s\n    measurands: [Energy.Active.Import.Register]\n")
        // Both chargers sample every 60 s, where the site declares 10 s.
        let (report, good, bad, harness) = try await self.run(
            .v16, quirk: .omitsConfiguredMeasurand, configuration: ["MeterValueSampleInterval": "60", "MeterValuesSampledData": "Energy.Active.Import.Register"],
            policy: policy
        )
        #expect(good.map(\.rule) == ["site.configurationConflict"], "\(good.map(\.detail))")
        #expect(good.first?.path == "/configurationKey/1/value" && good.first?.detail.contains("MeterValueSampleInterval is 60 s") == true, "\(good.first?.detail ?? "")")
        #expect(bad.map(\.rule) == ["site.configurationConflict"])
        // Judged by the 60 s the charger has, not the site's 10 s.
        #expect(cadence(report, vendor: "Good Co")?.configuredInterval == 60 && cadence(report, vendor: "Good Co")?.medianInterval == 60)
        await harness.stop()
    }

    @Test("the meterCadence check passes a transaction metered as configured, fails one that is not, and is inconclusive where nothing is configured")
    func judgedCheck() async throws {
        let policy = try PolicyLoader.parse("checks:\n  - name: cadence\n    area: meteringBilling\n    judge: meterCadence\n")
        let (report, _, _, harness) = try await self.run(.v201, quirk: .samplesSlowerThanConfigured, policy: policy)
        #expect(report.check("cadence", vendor: "Good Co")?.verdict == .pass, "\(report.check("cadence", vendor: "Good Co")?.detail ?? "")")
        let failed = try #require(report.check("cadence", vendor: "Bad Co"))
        #expect(failed.verdict == .fail && failed.detail.contains("meter.interval"), "\(failed.detail)")
        await harness.stop()

        let plain = try await ProxyHarness.start(policy: policy)
        let charger = plain.charger(ChargerProfile(id: "METER-PLAIN", vendor: "Plain Co", version: .v16))
        try await charger.connect()
        try await charger.boot()
        #expect(try await charger.chargingSession(meterSamples: 2) == .charged)
        await charger.disconnect()
        await plain.waitForClosedPairs(1)
        let unjudged = try #require(try await plain.report(policy: policy).check("cadence", vendor: "Plain Co"))
        #expect(unjudged.verdict == .inconclusive, "\(unjudged.detail)")
        await plain.stop()
    }

    /// The Python `ocpp` library (Tests/Interop/metered_session.py): a charger asked for its configuration by the
    /// Python central system, then metering a transaction every 2 s with both configured measurands.
    @Test("the Python ocpp library metering exactly as configured gives no warning or error, and its cadence is in the report", arguments: [OCPPVersion.v16, .v201])
    func pythonMetered(version: OCPPVersion) async throws {
        let (centralSystem, port) = try await PythonPeers.startCentralSystem(askConfiguration: true)
        defer { centralSystem.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let summary = try await PythonPeers.run("metered_session.py", ["ws://127.0.0.1:\(harness.proxyURL.port)", "PY-METERED", version.rawValue, "2"])
            #expect(summary.contains(#""configurationRequests": ["\#(version == .v16 ? "GetConfiguration" : "GetVariables")"]"#), "\(summary)")
            await harness.waitForClosedPairs(1)
            let policy = try PolicyLoader.parse("checks:\n  - name: cadence\n    area: meteringBilling\n    judge: meterCadence\n")
            let report = try await harness.report(policy: policy)
            #expect(report.deviations.filter { $0.severity != .info }.map { "\($0.rule) \($0.detail)" } == [])
            let row = try #require(report.pairs.first?.statistics.cadence.rows.first)
            #expect(row.configuredInterval == 2 && row.medianInterval == 2 && row.periodicReadings == 4, "\(row)")
            #expect(row.measurands.keys.sorted() == ["Energy.Active.Import.Register", "Power.Active.Import"] && row.missingMeasurands.isEmpty)
            #expect(report.pairs.first?.areas.flatMap(\.checks).first?.verdict == .pass)
        }
    }
}
