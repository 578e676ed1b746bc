import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessProxy
import WitnessSim

/// A sample policy from `policies/`, as shipped: its checks, and those of its rules the test drives (the
/// others would only slow it down). `window` shortens every check's window so a test can outlast it.
func samplePolicy(_ name: String, rules keep: Set<String>, window: String? = nil, extraRules: String = "") throws -> FaultPolicy {
    let path = Paths.root.appendingPathComponent("policies/\(name).yaml").path
    var yaml = try String(contentsOfFile: path, encoding: .utf8)
    if let window {
        yaml = yaml.replacingOccurrences(of: #"(?m)^(\s+)within: \S+$"#, with: "$1within: \(window)", options: .regularExpression)
    }
    var policy = try PolicyLoader.parse(yaml, file: path)
    policy.rules = policy.rules.filter { keep.contains($0.name) }
    if !extraRules.isEmpty { policy.rules = try PolicyLoader.parse("rules:\n" + extraRules).rules + policy.rules }
    return policy
}

enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

extension ProxyHarness {
    static func start(policy: FaultPolicy) async throws -> ProxyHarness {
        try await ProxyHarness.start(configure: { $0.faults = FaultInjection(ChaosEngine(policy: policy)) })
    }

    /// The report `ocpp-witness report --policy` gives for everything captured so far.
    func report(checks: [WitnessCheck], scope: WitnessScope? = nil) async throws -> AnalysisReport {
        var configuration = AnalyzerConfiguration()
        configuration.checks = checks
        configuration.scope = scope
        let analyzer = Analyzer(schemas: try InstalledSchemas.registry.get(), configuration: configuration)
        for record in try await self.records() { analyzer.consume(record) }
        return analyzer.finish()
    }

    /// The capture record a `file:line` reference points at.
    func record(at reference: String) async throws -> CaptureRecord? {
        try await self.records().first { $0.reference == reference }
    }
}

extension AnalysisReport {
    func check(_ name: String, vendor: String) -> CheckResult? {
        self.pairs.first { $0.key.charger.vendor == vendor }?.areas.flatMap(\.checks).first { $0.name == name }
    }

    func area(_ area: WitnessArea, vendor: String) -> AreaResult? {
        self.pairs.first { $0.key.charger.vendor == vendor }?.area(area)
    }
}

/// A one-way signal between tasks.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { self.lock.withLock { self.value } }
    func set() { self.lock.withLock { self.value = true } }
}

@Suite("Witness checks judged from real traffic through the proxy")
struct WitnessCheckTests {
    @Test("authorization: a refused tag never starts energy delivery; a charger that starts anyway fails", arguments: [OCPPVersion.v16, .v201])
    func authorization(version: OCPPVersion) async throws {
        let policy = try samplePolicy("authorization", rules: ["blocked-tag", "blocked-token"])
        let harness = try await ProxyHarness.start(policy: policy)
        let good = harness.charger(ChargerProfile(id: "AUTH-GOOD", vendor: "Good Co", version: version))
        let bad = harness.charger(ChargerProfile(id: "AUTH-BAD", vendor: "Bad Co", version: version, quirks: [.startsDespiteRefusal]))
        for charger in [good, bad] {
            try await charger.connect()
            try await charger.boot()
            let refused = try await charger.chargingSession(idTag: "BLOCKED-TAG", meterSamples: 1)
            #expect(refused == (charger === good ? .refused("Blocked") : .charged))
            #expect(try await charger.chargingSession(idTag: "GOOD-TAG", meterSamples: 1) == .charged)
            await charger.disconnect()
        }
        await harness.waitForClosedPairs(2)
        let report = try await harness.report(checks: policy.checks)
        let refusedCheck = version == .v16 ? "refused-tag-never-starts" : "refused-token-never-starts"
        let startsCheck = version == .v16 ? "accepted-tag-starts" : "accepted-token-starts"

        let kept = try #require(report.check(refusedCheck, vendor: "Good Co"))
        #expect(kept.verdict == .pass, "\(kept.detail)")
        #expect(kept.detail.contains("closed"))
        #expect(report.check(startsCheck, vendor: "Good Co")?.verdict == .pass)
        #expect(report.area(.authorization, vendor: "Good Co")?.verdict == .pass)
        // The other version's checks are not listed for a pair that never spoke it.
        #expect(report.area(.authorization, vendor: "Good Co")?.checks.count == 2)

        let broken = try #require(report.check(refusedCheck, vendor: "Bad Co"))
        #expect(broken.verdict == .fail)
        #expect(broken.refs.count == 2)
        let answer = try #require(try await harness.record(at: broken.refs[0]))
        #expect(answer.action == "Authorize" && answer.messageType == .callResult && answer.fields["injected"]?.boolValue == true)
        let start = try #require(try await harness.record(at: broken.refs[1]))
        #expect(start.action == (version == .v16 ? "StartTransaction" : "TransactionEvent") && start.chargePoint == "AUTH-BAD")
        #expect(report.area(.authorization, vendor: "Bad Co")?.verdict == .fail)
        #expect(report.pairs.first { $0.key.charger.vendor == "Bad Co" }?.verdict == "fail")
        // No stimulus of the other areas happened: they are notRun, not pass.
        #expect(report.area(.remoteOperations, vendor: "Good Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("remote operations: an accepted Reset is followed by a reboot and an Available connector", arguments: [OCPPVersion.v16, .v201])
    func remoteOperations(version: OCPPVersion) async throws {
        let policy = try samplePolicy("remote-operations", rules: ["reset-16", "reset-201"], window: "6s")
        let harness = try await ProxyHarness.start(policy: policy)
        let chargers = [
            harness.charger(ChargerProfile(id: "RESET-GOOD", vendor: "Good Co", version: version)),
            harness.charger(ChargerProfile(id: "RESET-FAULTED", vendor: "Faulted Co", version: version, quirks: [.faultedAfterReset])),
            harness.charger(ChargerProfile(id: "RESET-DEAF", vendor: "Deaf Co", version: version, quirks: [.ignoresReset])),
        ]
        for charger in chargers {
            try await charger.connect()
            // The Reset arrives while the boot sequence is still running; its reboot may cut the sequence short.
            try? await charger.boot()
        }
        #expect(await eventually { chargers[0].reboots == 1 && chargers[1].reboots == 1 })
        // Outlast the windows, so that what never came is a failure rather than inconclusive.
        try await Task.sleep(for: .seconds(7))
        for charger in chargers {
            _ = try? await charger.call("Heartbeat", [:])
            await charger.disconnect()
        }
        await harness.waitForClosedPairs(5)
        let report = try await harness.report(checks: policy.checks)
        let available = version == .v16 ? "available-after-reset" : "available-after-reset-201"

        #expect(report.area(.remoteOperations, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .pass, .notRun, .notRun])
        #expect(report.area(.remoteOperations, vendor: "Good Co")?.verdict == .inconclusive)
        let good = try #require(report.check(available, vendor: "Good Co"))
        #expect(good.verdict == .pass)
        let status = try #require(try await harness.record(at: good.refs[1]))
        #expect(status.action == "StatusNotification" && status.chargePoint == "RESET-GOOD")

        let faulted = try #require(report.check(available, vendor: "Faulted Co"))
        #expect(faulted.verdict == .fail, "\(faulted.detail)")
        #expect(faulted.detail.contains("within 6 s"))
        let reset = try #require(try await harness.record(at: faulted.refs[0]))
        #expect(reset.action == "Reset" && reset.messageType == .callResult)
        #expect(report.check("reboots-after-reset", vendor: "Faulted Co")?.verdict == .pass)

        #expect(report.check("reset-answered", vendor: "Deaf Co")?.verdict == .pass)
        #expect(report.check("reboots-after-reset", vendor: "Deaf Co")?.verdict == .fail)
        #expect(report.area(.remoteOperations, vendor: "Deaf Co")?.verdict == .fail)
        // remote-start-answered never had a stimulus.
        #expect(report.check("remote-start-answered", vendor: "Deaf Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("communication loss: after an outage the charger reconnects and reports status; one that stays away fails")
    func communicationLoss() async throws {
        // The sample's outage starts five minutes in; here the third heartbeat of each charger starts a 1 s one.
        let policy = try samplePolicy(
            "comm-loss", rules: [], window: "8s",
            extraRules: "  - name: backend-outage\n    match: {direction: toCSMS, action: Heartbeat, nth: 3}\n    fault: {outage: {duration: 1s, mode: refuse, scope: charger}}\n"
        )
        let harness = try await ProxyHarness.start(policy: policy)
        let good = harness.charger(ChargerProfile(id: "LOSS-GOOD", vendor: "Good Co"))
        let gone = harness.charger(ChargerProfile(id: "LOSS-GONE", vendor: "Gone Co", quirks: [.neverReconnects]))
        // The good charger keeps the capture going until the gone one's window has surely closed, so that
        // its absence is a failure and not the end of the capture.
        let lostDone = Flag()
        let deadline = ContinuousClock.now + .seconds(60)
        async let kept = good.keepAlive(until: deadline, interval: .milliseconds(200), retry: .milliseconds(300)) { outcome in
            outcome.connections >= 2 && lostDone.isSet
        }
        let lostOutcome = await gone.keepAlive(until: deadline, interval: .milliseconds(200), retry: .milliseconds(300))
        try await Task.sleep(for: .seconds(9))
        lostDone.set()
        let keptOutcome = await kept
        #expect(keptOutcome.connections >= 2, "\(keptOutcome)")
        #expect(lostOutcome.connections == 1, "\(lostOutcome)")
        await harness.waitForClosedPairs(3)
        let report = try await harness.report(checks: policy.checks)

        let reconnected = try #require(report.check("reconnects-after-outage", vendor: "Good Co"))
        #expect(reconnected.verdict == .pass, "\(reconnected.detail)")
        let refs = reconnected.refs
        try #require(refs.count == 2)
        let outage = try #require(try await harness.record(at: refs[0]))
        #expect(outage.fields["fault"]?["rule"]?.stringValue == "backend-outage")
        #expect(try await harness.record(at: refs[1])?.kind == "open")
        #expect(report.check("status-after-reconnect", vendor: "Good Co")?.verdict == .pass)

        #expect(report.check("reconnects-after-outage", vendor: "Gone Co")?.verdict == .fail)
        #expect(report.check("status-after-reconnect", vendor: "Gone Co")?.verdict == .fail)
        #expect(report.area(.communicationLoss, vendor: "Gone Co")?.verdict == .fail)
        // Nothing dropped a connection mid-session: that check did not run.
        #expect(report.check("reconnects-after-drop", vendor: "Good Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("data handover: the configuration the proxy asks for on the backend's behalf comes back, and is exported", arguments: [OCPPVersion.v16, .v201])
    func dataHandover(version: OCPPVersion) async throws {
        let policy = try samplePolicy("data-handover", rules: ["get-configuration", "get-base-report"])
        let harness = try await ProxyHarness.start(policy: policy)
        let charger = harness.charger(ChargerProfile(id: "DATA-1", vendor: "Good Co", version: version))
        try await charger.connect()
        try await charger.boot()
        let answered = version == .v16 ? "GetConfiguration" : "NotifyReport"
        #expect(try await eventually { try await harness.frames("DATA-1").contains { $0.action == answered && $0.messageType == .callResult } })
        try await charger.chargingSession(idTag: "CARD-0001", meterSamples: 2, whPerSample: 1500)
        await charger.disconnect()
        await harness.waitForClosedPairs(1)
        let report = try await harness.report(checks: policy.checks)
        let check = try #require(report.check(version == .v16 ? "configuration-retrievable" : "base-report-retrievable", vendor: "Good Co"))
        #expect(check.verdict == .pass, "\(check.detail)")
        #expect(try await harness.record(at: check.refs[0])?.fields["injected"]?.boolValue == true)
        #expect(try await harness.record(at: check.refs[1])?.action == (version == .v16 ? "GetConfiguration" : "NotifyReport"))
        #expect(report.area(.dataHandover, vendor: "Good Co")?.checks.count == 1)

        // What was retrievable is exported: inventory, the configuration answered, the transaction.
        let export = HandoverExport.read(try await harness.records())
        #expect(export.chargerRows.first?.prefix(5) == ["DATA-1", "Good Co", "SimCharger 22", "SN-DATA-1", "1.0.0"])
        let configuration = export.configurationRows.map { Array($0.prefix(6)) }
        if version == .v16 {
            #expect(configuration == [["DATA-1", "GetConfiguration", "HeartbeatInterval", "", "300", "false"]])
        } else {
            #expect(configuration.contains(["DATA-1", "NotifyReport", "OCPPCommCtrlr/HeartbeatInterval", "Actual", "300", "ReadWrite"]))
            #expect(configuration.contains(["DATA-1", "NotifyReport", "ChargingStation/VendorName", "Actual", "Good Co", "ReadOnly"]))
        }
        let transaction = try #require(export.transactions.first)
        #expect(export.transactions.count == 1)
        #expect(transaction.connector == "1" && transaction.stopReason == "Local")
        #expect(transaction.meterStartWh == 10_000 && transaction.energyWh == 3_100)
        #expect(transaction.idTag.hasPrefix("tag-") && transaction.idTag != "CARD-0001")
        #expect(HandoverExport.read(try await harness.records(), includeIdTags: true).transactions.first?.idTag == "CARD-0001")
        await harness.stop()
    }

    @Test("a check whose stimulus never happened is notRun, and one whose window outlives the capture is inconclusive")
    func notRunAndInconclusive() async throws {
        // The Reset is injected, but the charger ignores it and the capture ends long before the 2 min window.
        let policy = try samplePolicy("remote-operations", rules: ["reset-16"])
        let harness = try await ProxyHarness.start(policy: policy)
        let charger = harness.charger(ChargerProfile(id: "SHORT-1", vendor: "Deaf Co", quirks: [.ignoresReset]))
        try await charger.connect()
        try await charger.boot()
        try await charger.chargingSession(meterSamples: 1)
        await charger.disconnect()
        await harness.waitForClosedPairs(1)
        let all = try PolicyLoader.load(path: Paths.root.appendingPathComponent("policies/smart-charging.yaml").path).checks + policy.checks
        let report = try await harness.report(checks: all, scope: WitnessScope.named("workplace"))
        let reboot = try #require(report.check("reboots-after-reset", vendor: "Deaf Co"))
        #expect(reboot.verdict == .inconclusive)
        #expect(reboot.detail.contains("the capture of this proxy run ends"))
        #expect(report.check("reset-answered", vendor: "Deaf Co")?.verdict == .pass)
        for name in ["limit-accepted", "limit-enforced", "remote-start-answered"] {
            #expect(report.check(name, vendor: "Deaf Co")?.verdict == .notRun)
            #expect(report.check(name, vendor: "Deaf Co")?.refs == [])
        }
        #expect(report.area(.smartCharging, vendor: "Deaf Co")?.verdict == .notRun)
        #expect(report.area(.commissioning, vendor: "Deaf Co")?.verdict == .notRun)
        let pair = try #require(report.pairs.first)
        #expect(pair.missingAreas == [.commissioning, .authorization, .communicationLoss])
        let json = JSONWriter.string(report.json)
        #expect(json.contains(#""scope":{"name":"workplace","complete":false"#))
        #expect(json.contains(#""area":"smartCharging","verdict":"notRun""#))
        await harness.stop()
    }

    /// Runs `scenario` on a good charger and on one with `quirk`, side by side through the proxy, then keeps
    /// both connected past the checks' windows (so that what never came fails), and reports.
    static func judge(
        _ policy: FaultPolicy, version: OCPPVersion, quirk: ChargerQuirk, outlast: Duration = .seconds(4),
        _ scenario: @escaping @Sendable (ChargerSimulator) async throws -> Void
    ) async throws -> (AnalysisReport, ProxyHarness) {
        let harness = try await ProxyHarness.start(policy: policy)
        let chargers = [
            harness.charger(ChargerProfile(id: "GOOD-\(version.rawValue)", vendor: "Good Co", version: version)),
            harness.charger(ChargerProfile(id: "BAD-\(version.rawValue)", vendor: "Bad Co", version: version, quirks: [quirk])),
        ]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for charger in chargers { group.addTask { try await scenario(charger) } }
            try await group.waitForAll()
        }
        try await Task.sleep(for: outlast)
        for charger in chargers {
            _ = try? await charger.call("Heartbeat", [:])
            await charger.disconnect()
        }
        await harness.waitForClosedPairs(chargers.count)
        let report = try await harness.report(checks: policy.checks)
        // The good charger passes everything, so the policy's injected CALLs are valid OCPP of that version too.
        let good = report.pairs.first { $0.key.charger.vendor == "Good Co" }
        #expect(good?.verdict == "pass", "\(report.deviations.filter { $0.chargePoint?.hasPrefix("GOOD") == true }.map { "\($0.rule) \($0.path ?? "") \($0.detail)" })")
        return (report, harness)
    }

    @Test("commissioning: a charger accepted at boot reports status and does not boot again; one that does fails", arguments: [OCPPVersion.v16, .v201])
    func commissioning(version: OCPPVersion) async throws {
        let policy = try samplePolicy("commissioning", rules: [], window: "3s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .bootsTwice) { charger in
            try await charger.connect()
            try await charger.boot()
        }
        #expect(report.area(.commissioning, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .pass])
        let loop = try #require(report.check("no-boot-loop", vendor: "Bad Co"))
        #expect(loop.verdict == .fail, "\(loop.detail)")
        let second = try #require(try await harness.record(at: loop.refs[1]))
        #expect(second.action == "BootNotification" && second.messageType == .call && second.chargePoint == "BAD-\(version.rawValue)")
        #expect(report.check("boot-accepted", vendor: "Bad Co")?.verdict == .pass)
        await harness.stop()
    }

    @Test("smart charging: the injected 4 kW limit is accepted and enforced in the meter values; a charger that ignores it fails", arguments: [OCPPVersion.v16, .v201])
    func smartCharging(version: OCPPVersion) async throws {
        let policy = try samplePolicy("smart-charging", rules: ["apply-limit", "apply-limit-201"], window: "3s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .ignoresChargingLimit) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 4, sampleInterval: .milliseconds(300))
        }
        let name = version == .v16 ? "limit-enforced" : "limit-enforced-201"
        #expect(report.check("limit-accepted", vendor: "Good Co")?.verdict == .pass)
        let enforced = try #require(report.check(name, vendor: "Good Co"))
        #expect(enforced.verdict == .pass, "\(enforced.detail)")
        let reading = try #require(try await harness.record(at: enforced.refs[1]))
        let power = reading.message?[3]?["meterValue"]?[0]?["sampledValue"]?[0]?["value"]
        #expect(power == "4000" || power == 4000)
        #expect(report.check("limit-accepted", vendor: "Bad Co")?.verdict == .pass)
        #expect(report.check(name, vendor: "Bad Co")?.verdict == .fail)
        #expect(report.area(.smartCharging, vendor: "Bad Co")?.verdict == .fail)
        // The other version's checks are not listed; without a clear, the revert check did not run.
        #expect(report.area(.smartCharging, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .notRun])
        await harness.stop()
    }

    @Test("smart charging: when the profile is cleared the power goes back above the limit; a charger that stays limited fails", arguments: [OCPPVersion.v16, .v201])
    func smartChargingReverts(version: OCPPVersion) async throws {
        let policy = try samplePolicy(
            "smart-charging", rules: ["apply-limit", "apply-limit-201", "clear-limit-16", "clear-limit-201"], window: "3s"
        )
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .keepsLimitAfterClear) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 6, sampleInterval: .milliseconds(300))
        }
        let reverts = version == .v16 ? "limit-reverts" : "limit-reverts-201"
        let enforced = version == .v16 ? "limit-enforced" : "limit-enforced-201"
        let good = try #require(report.check(reverts, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let reading = try #require(try await harness.record(at: good.refs[1]))
        let power = reading.message?[3]?["meterValue"]?[0]?["sampledValue"]?[0]?["value"]
        #expect(power == "11000" || power == 11000)
        #expect(report.area(.smartCharging, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .pass])
        // The one that stays limited enforces the limit, and fails to revert.
        #expect(report.check(enforced, vendor: "Bad Co")?.verdict == .pass)
        #expect(report.check(reverts, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("remote operations: a triggered StatusNotification follows its TriggerMessage; a charger that ignores it fails", arguments: [OCPPVersion.v16, .v201])
    func triggerMessage(version: OCPPVersion) async throws {
        let policy = try samplePolicy("remote-operations", rules: ["trigger-status"], window: "3s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .ignoresTrigger) { charger in
            try await charger.connect()
            try await charger.boot()
        }
        let good = try #require(report.check("trigger-executed", vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let answer = try #require(try await harness.record(at: good.refs[0]))
        #expect(answer.action == "TriggerMessage" && answer.messageType == .callResult)
        #expect(report.check("trigger-executed", vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("metering and billing: every transaction ends with its own id and a final reading; a wrong id fails", arguments: [OCPPVersion.v16, .v201])
    func meteringBilling(version: OCPPVersion) async throws {
        let policy = try samplePolicy("metering-billing", rules: [], window: "3s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .stopsWithWrongTransactionId) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 2)
        }
        let name = version == .v16 ? "transaction-stopped-with-reading" : "transaction-ended-with-reading"
        let good = try #require(report.check(name, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        #expect(report.area(.meteringBilling, vendor: "Good Co")?.verdict == .pass)
        let bad = try #require(report.check(name, vendor: "Bad Co"))
        #expect(bad.verdict == .fail, "\(bad.detail)")
        #expect(report.area(.meteringBilling, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("fault handling: a Faulted connector becomes Available again; one that stays Faulted fails", arguments: [OCPPVersion.v16, .v201])
    func faultHandling(version: OCPPVersion) async throws {
        let policy = try samplePolicy("fault-handling", rules: [], window: "3s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .staysFaulted) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.fault(errorCode: "GroundFailure")
        }
        let name = version == .v16 ? "recovers-from-fault" : "recovers-from-fault-201"
        let good = try #require(report.check(name, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let faulted = try #require(try await harness.record(at: good.refs[0]))
        #expect(faulted.action == "StatusNotification" && faulted.messageType == .call)
        #expect(report.check(name, vendor: "Bad Co")?.verdict == .fail)
        // Nothing sent invalid JSON: that check did not run.
        #expect(report.check("session-survives-invalid-json", vendor: "Good Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("firmware update: Downloading, Downloaded, Installing, then a reboot; skipping Downloaded fails", arguments: [OCPPVersion.v16, .v201])
    func firmwareUpdate(version: OCPPVersion) async throws {
        let policy = try samplePolicy("firmware-update", rules: ["update-firmware-16", "update-firmware-201"], window: "3s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .skipsDownloaded) { charger in
            try await charger.connect()
            // The update starts while the boot sequence is still running; its reboot may cut the sequence short.
            try? await charger.boot()
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            while charger.firmwareUpdates == 0 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(report.check("download-completes", vendor: "Good Co")?.verdict == .pass)
        #expect(report.check("boots-after-install", vendor: "Good Co")?.verdict == .pass)
        #expect(report.area(.firmwareUpdate, vendor: "Good Co")?.verdict == .pass)
        let skipped = try #require(report.check("download-completes", vendor: "Bad Co"))
        #expect(skipped.verdict == .fail, "\(skipped.detail)")
        #expect(report.check("boots-after-install", vendor: "Bad Co")?.verdict == .pass)
        await harness.stop()
    }
}
