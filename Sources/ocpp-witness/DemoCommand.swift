import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessCLISupport
import WitnessProxy
import WitnessSim

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a short embedded pilot: a CSMS simulator, the proxy and three simulated chargers.",
        discussion: """
            Everything runs in this process on 127.0.0.1: no network and no set-up. Two well-behaved chargers (OCPP 1.6
            and 2.0.1) and one with buggy firmware boot, try a blocked tag (the proxy answers Blocked on the backend's
            behalf), charge, accept a remote start and a reset from the CSMS, and reboot. The capture is left in
            --capture; the summary says what crossed the proxy, and the witness test areas are judged with the checks
            of the sample policies in --policies.
            """
    )

    @Option(help: ArgumentHelp("Folder for the demo's capture.", valueName: "DIR"))
    var capture: String = "captures/demo"

    @Option(help: ArgumentHelp("Folder with the OCA schemas, for the demo's report (default: found as docs/setup.md says).", valueName: "DIR"))
    var schemas: String?

    @Option(help: ArgumentHelp("Folder of sample policies whose checks judge the demo's test areas (default: $OCPP_WITNESS_POLICIES, share/ocpp-witness/policies beside the binary, the checkout, ./policies).", valueName: "DIR"))
    var policies: String?

    /// The sample policies' folder: the first place that holds policy files.
    var policyFolder: String? {
        try? DataFolder.locate("policies", option: self.policies, variable: "OCPP_WITNESS_POLICIES") { path -> String in
            let files = try FileManager.default.contentsOfDirectory(atPath: path)
            guard files.contains(where: { $0.hasSuffix(".yaml") }) else { throw ValidationError("no .yaml files") }
            return path
        }
    }

    @Option(help: "Least severe log level shown.")
    var logLevel: Logger.Level = .warning

    /// The checks of every policy in `policies`, and the authorization policy's rules that answer the
    /// blocked tag; none when the folder is not there.
    func samplePolicies(in folder: String?) -> (checks: [WitnessCheck], rules: [FaultRule], site: SiteDeclaration) {
        guard let folder else { return ([], [], SiteDeclaration()) }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        var checks: [WitnessCheck] = []
        var rules: [FaultRule] = []
        var sites: [SiteDeclaration] = []
        for file in files {
            guard let policy = try? PolicyLoader.load(path: folder + "/" + file) else { continue }
            checks += policy.checks
            rules += policy.rules.filter { ["blocked-tag", "blocked-token"].contains($0.name) }
            sites.append(policy.site)
        }
        do {
            return (checks, rules, try SiteDeclaration.merged(sites))
        } catch {
            print("warning: the site declarations of \(folder)/ disagree, so none is used: \(error)")
            return (checks, rules, SiteDeclaration())
        }
    }

    func run() async throws {
        let logger = LoggingOptions.parseOrExit(["--log-level", self.logLevel.rawValue]).makeLogger("ocpp-witness.demo")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let csms = CSMSSimulator(configuration: .init(versions: [.v201, .v16]), group: group, logger: logger)
        let csmsAddress = try await csms.start()
        let upstream = try WebSocketURL(parsing: "ws://127.0.0.1:\(csmsAddress.port ?? 0)")
        let folder = self.policyFolder
        let samples = self.samplePolicies(in: folder)
        let policy = samples.rules.isEmpty ? nil : FaultPolicy(seed: 1, rules: samples.rules, source: (folder ?? "policies") + "/authorization.yaml")
        let recorder = try CaptureWriter(
            configuration: .init(directory: self.capture, fsync: .never),
            header: CaptureHeader(
                backendName: "Witness Demo CSMS", upstream: upstream.description, policy: policy?.source, seed: policy?.seed, extra: ["demo": true]
            )
        )
        var configuration = ProxyConfiguration(listenHost: "127.0.0.1", listenPort: 0, upstream: upstream, backendName: "Witness Demo CSMS")
        if let policy { configuration.faults = FaultInjection(ChaosEngine(policy: policy)) }
        let proxy = try WitnessProxyServer(configuration: configuration, recorder: recorder, logger: logger, group: group)
        let proxyAddress = try await proxy.start()
        let proxyURL = try WebSocketURL(parsing: "ws://127.0.0.1:\(proxyAddress.port ?? 0)/ocpp")
        print("OCPP Witness demo: CSMS simulator on \(upstream), proxy on \(proxyURL)")

        let profiles = [
            ChargerProfile(id: "CP-ALPHA-01", vendor: "Alpha Charge", model: "AC-22", firmware: "3.4.1", version: .v16, configuration: Self.metering),
            ChargerProfile(id: "CP-BETA-01", vendor: "Beta Power", model: "BP-150 DC", firmware: "2.0.7", version: .v201, configuration: Self.metering),
            ChargerProfile(
                id: "CP-GAMMA-01", vendor: "Gamma EV", model: "G-11", firmware: "0.9.9-beta", version: .v16,
                quirks: [.registerGoesBackwards, .timestampWithoutZone, .startsDespiteRefusal, .faultedAfterReset]
            ),
        ]
        let clock = ContinuousClock()
        let started = clock.now
        var failures: [String] = []
        await withTaskGroup(of: String?.self) { tasks in
            for profile in profiles {
                tasks.addTask {
                    let charger = ChargerSimulator(profile: profile, baseURL: proxyURL, group: group)
                    do {
                        try await Self.pilot(charger, csms: csms)
                        return nil
                    } catch {
                        return "\(profile.id): \(error)"
                    }
                }
            }
            for await failure in tasks {
                if let failure { failures.append(failure) }
            }
        }
        let elapsed = clock.now - started
        await proxy.shutdown(grace: .seconds(2))
        await csms.stop()
        recorder.close()
        try? await group.shutdownGracefully()

        let summary = try CaptureSummary(paths: recorder.filePaths)
        print("")
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("Pilot finished in \(String(format: "%.1f", seconds)) s.")
        print("Capture: \(recorder.filePaths.joined(separator: ", "))")
        print(
            "Connections: \(summary.connections) from \(summary.chargePoints.count) chargers, \(summary.refused) refused; "
                + "\(summary.records) records, \(recorder.statistics.recordsLost) lost"
        )
        print("")
        print("Messages per action and direction (CALLs and their answers):")
        print(summary.table)
        print("")
        print("Look inside:  jq -c 'select(.kind==\"frame\") | [.chargePoint, .dir, .action, .msgType]' \(recorder.filePaths.first ?? self.capture)")
        do {
            var analysis = AnalyzerConfiguration()
            analysis.checks = samples.checks
            analysis.site = samples.site
            let analyzer = Analyzer(schemas: try SchemaRegistry.load(forCommand: self.schemas), configuration: analysis)
            let reader = try CaptureReader(paths: recorder.filePaths)
            for record in reader { analyzer.consume(record) }
            let report = analyzer.finish(readIssues: reader.issues)
            let path = self.capture + "/report.html"
            try report.render(.html).write(toFile: path, atomically: true, encoding: .utf8)
            print("")
            print("Report: \(path) (\(report.count(.error)) errors, \(report.count(.warning)) warnings)")
            for pair in report.pairs {
                let rules = pair.statistics.deviations.keys.sorted().map { "\($0) ×\(pair.statistics.deviations[$0] ?? 0)" }
                print("  \(pair.verdict.uppercased().padding(toLength: 5, withPad: " ", startingAt: 0)) \(pair.key.charger.label) × \(pair.key.backend)\(rules.isEmpty ? "" : ": " + rules.joined(separator: ", "))")
            }
            print("")
            print(Self.areaTable(report, checks: samples.checks.count, policies: folder ?? "policies"))
        } catch {
            print("No report: \(error)")
        }
        if !failures.isEmpty {
            for failure in failures { print("charger failed: \(failure)") }
            throw ExitCode.failure
        }
    }

    /// The area verdicts of each pair, one column per area.
    static func areaTable(_ report: AnalysisReport, checks: Int, policies: String) -> String {
        guard checks > 0 else { return "Witness test areas: no checks (no policies in \(policies)/)." }
        let columns = WitnessArea.allCases.map(\.rawValue)
        let widths = columns.map { max($0.count, CheckVerdict.inconclusive.rawValue.count) }
        let labelWidth = max(10, report.pairs.map(\.key.charger.label.count).max() ?? 0)
        func row(_ label: String, _ cells: [String]) -> String {
            "  " + label.padding(toLength: labelWidth, withPad: " ", startingAt: 0) + "  "
                + zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " ")
        }
        var lines = ["Witness test areas (\(checks) checks from \(policies)/; notRun: the stimulus never happened in this pilot):"]
        lines.append(row("charger", columns))
        for pair in report.pairs {
            lines.append(row(pair.key.charger.label, pair.areas.map { $0.verdict == .fail ? "FAIL" : $0.verdict.rawValue }))
        }
        for pair in report.pairs {
            for check in pair.areas.flatMap(\.checks) where check.verdict == .fail {
                lines.append("  FAIL \(check.area.rawValue)/\(check.name): \(check.detail)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The good chargers' metering: a reading a minute, energy and power (their sessions are time-compressed).
    static let metering = ["MeterValueSampleInterval": "60", "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import"]

    /// What each simulated charger goes through during the pilot.
    static func pilot(_ charger: ChargerSimulator, csms: CSMSSimulator) async throws {
        let version = charger.profile.version
        try await charger.connect()
        try await charger.boot()
        // The operator reads the charger's metering configuration, as commissioning does.
        let configuration = await csms.connection(charger.profile.id)
        if version == .v16 {
            _ = try await configuration.call("GetConfiguration", [:])
        } else {
            let variables = [("SampledDataCtrlr", "TxUpdatedInterval"), ("SampledDataCtrlr", "TxUpdatedMeasurands")]
            _ = try await configuration.call(
                "GetVariables", ["getVariableData": .array(variables.map { ["component": ["name": .string($0.0)], "variable": ["name": .string($0.1)]] })]
            )
        }
        // A blocked card: a good charger starts nothing.
        try await charger.chargingSession(idTag: "BLOCKED-TAG", meterSamples: 1)
        try await charger.chargingSession(meterSamples: 3)

        // The operator starts a session remotely; the charger accepts and charges.
        let atCSMS = await csms.connection(charger.profile.id)
        let remoteStart: JSONValue =
            version == .v16
            ? ["connectorId": 1, "idTag": "REMOTE-0042"]
            : ["idToken": ["idToken": "REMOTE-0042", "type": "Central"], "remoteStartId": 42, "evseId": 1]
        let started = try await atCSMS.call(version == .v16 ? "RemoteStartTransaction" : "RequestStartTransaction", remoteStart)
        guard try started.payload()["status"] == "Accepted" else { throw OCPPEndpointError("remote start refused") }
        try await charger.chargingSession(idTag: "REMOTE-0042", meterSamples: 2)


        // The operator resets the charger; it reboots and comes back.
        let reset = try await atCSMS.call("Reset", version == .v16 ? ["type": "Soft"] : ["type": "Immediate"])
        guard try reset.payload()["status"] == "Accepted" else { throw OCPPEndpointError("reset refused") }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while charger.reboots == 0 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard charger.reboots > 0 else { throw OCPPEndpointError("did not come back after the reset") }
        // The network drops for a few seconds while a driver with a known card starts charging: the charger
        // authorizes offline, queues the session and delivers it on reconnecting.
        try await charger.offlineSession(outage: .seconds(4))
        await charger.disconnect(reason: "pilot over")
    }
}
