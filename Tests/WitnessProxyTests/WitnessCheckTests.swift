import Foundation
import NIOCore
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// A sample policy from `policies/`, as shipped: its checks, and those of its rules the test drives (the
/// others would only slow it down). `window` shortens every check's window so a test can outlast it, and
/// `transactionFor` every rule's wait for a running transaction.
func samplePolicy(
    _ name: String, rules keep: Set<String>, window: String? = nil, transactionFor: String? = nil, extraRules: String = ""
) throws -> FaultPolicy {
    let path = Paths.root.appendingPathComponent("policies/\(name).yaml").path
    var yaml = try String(contentsOfFile: path, encoding: .utf8)
    if let window {
        yaml = yaml.replacingOccurrences(of: #"(?m)^(\s+)within: \S+$"#, with: "$1within: \(window)", options: .regularExpression)
    }
    if let transactionFor {
        yaml = yaml.replacingOccurrences(of: #"transactionFor: \w+"#, with: "transactionFor: \(transactionFor)", options: .regularExpression)
    }
    var policy = try PolicyLoader.parse(yaml, file: path)
    policy.rules = policy.rules.filter { keep.contains($0.name) }
    if !extraRules.isEmpty { policy.rules = try PolicyLoader.parse("rules:\n" + extraRules).rules + policy.rules }
    return policy
}

/// The window the tests give every check: long enough for an answer on a machine running the whole suite at
/// once, short enough to outlast (`judge` waits a second longer) so that what never came fails.
let checkWindow = "8s"

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

extension CheckResult {
    /// Evidence line `index`, or "" (a record no capture has) when the check points at fewer lines: a wrong
    /// verdict then fails the expectation that reads the record instead of ending the whole run.
    func ref(_ index: Int) -> String { self.refs.indices.contains(index) ? self.refs[index] : "" }
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
        try await ProxyHarness.start(policy: policy).run { harness in
            let good = harness.charger(ChargerProfile(id: "AUTH-GOOD", vendor: "Good Co", version: version))
            let bad = harness.charger(ChargerProfile(id: "AUTH-BAD", vendor: "Bad Co", version: version, quirks: [.startsDespiteRefusal]))
            for charger in [good, bad] {
                try await charger.connect()
                try await charger.boot()
                let refused = try await charger.chargingSession(idTag: "BLOCKED-TAG", meterSamples: 1)
                #expect(refused == (charger === good ? .refused("Blocked") : .charged))
                #expect(try await charger.chargingSession(idTag: "GOOD-TAG", meterSamples: 1) == .charged)
                // The network drops while the accepted tag starts a session: the charger authorizes it offline.
                #expect(try await charger.offlineSession(idTag: "GOOD-TAG", outage: .seconds(4)))
                await charger.disconnect()
            }
            await harness.waitForClosedPairs(4)
            let report = try await harness.report(checks: policy.checks)
            #expect(report.check("offline-start-allowed", vendor: "Good Co")?.verdict == .pass, "\(report.check("offline-start-allowed", vendor: "Good Co")?.detail ?? "")")
            let refusedCheck = version == .v16 ? "refused-tag-never-starts" : "refused-token-never-starts"
            let startsCheck = version == .v16 ? "accepted-tag-starts" : "accepted-token-starts"

            let kept = try #require(report.check(refusedCheck, vendor: "Good Co"))
            #expect(kept.verdict == .pass, "\(kept.detail)")
            #expect(kept.detail.contains("closed"))
            #expect(report.check(startsCheck, vendor: "Good Co")?.verdict == .pass)
            #expect(report.area(.authorization, vendor: "Good Co")?.verdict == .pass)
            // The other version's checks are not listed for a pair that never spoke it.
            #expect(report.area(.authorization, vendor: "Good Co")?.checks.count == 3)

            let broken = try #require(report.check(refusedCheck, vendor: "Bad Co"))
            #expect(broken.verdict == .fail)
            #expect(broken.refs.count == 2)
            let answer = try #require(try await harness.record(at: broken.ref(0)))
            #expect(answer.action == "Authorize" && answer.messageType == .callResult && answer.fields["injected"]?.boolValue == true)
            let start = try #require(try await harness.record(at: broken.ref(1)))
            #expect(start.action == (version == .v16 ? "StartTransaction" : "TransactionEvent") && start.chargePoint == "AUTH-BAD")
            #expect(report.area(.authorization, vendor: "Bad Co")?.verdict == .fail)
            #expect(report.pairs.first { $0.key.charger.vendor == "Bad Co" }?.verdict == "fail")
            // No stimulus of the other areas happened: they are notRun, not pass.
            #expect(report.area(.remoteOperations, vendor: "Good Co")?.verdict == .notRun)
        }
    }

    @Test("remote operations: an accepted Reset is followed by a reboot and an Available connector", arguments: [OCPPVersion.v16, .v201])
    func remoteOperations(version: OCPPVersion) async throws {
        let policy = try samplePolicy("remote-operations", rules: ["reset-16", "reset-201"], window: checkWindow)
        try await ProxyHarness.start(policy: policy).run { harness in
            let chargers = [
                harness.charger(ChargerProfile(id: "RESET-GOOD", vendor: "Good Co", version: version)),
                harness.charger(ChargerProfile(id: "RESET-FAULTED", vendor: "Faulted Co", version: version, quirks: [.faultedAfterReset])),
                harness.charger(ChargerProfile(id: "RESET-DEAF", vendor: "Deaf Co", version: version, quirks: [.ignoresReset])),
                // Two connectors (EVSEs): connector 1 comes back Faulted while the charger (connector 0) and connector 2 are Available.
                harness.charger(ChargerProfile(id: "RESET-TWO-GOOD", vendor: "Good Two Co", version: version, connectors: 2)),
                harness.charger(ChargerProfile(id: "RESET-TWO-FAULTED", vendor: "Faulted Two Co", version: version, quirks: [.faultedAfterReset], connectors: 2)),
            ]
            for charger in chargers {
                try await charger.connect()
                // The Reset arrives while the boot sequence is still running; its reboot may cut the sequence short.
                try? await charger.boot()
            }
            #expect(await eventually { chargers[0].reboots == 1 && chargers[1].reboots == 1 && chargers[3].reboots == 1 && chargers[4].reboots == 1 })
            // Outlast the windows, so that what never came is a failure rather than inconclusive.
            try await Task.sleep(for: .seconds(9))
            for charger in chargers {
                _ = try? await charger.call("Heartbeat", [:])
                await charger.disconnect()
            }
            await harness.waitForClosedPairs(9)
            let report = try await harness.report(policy: policy)
            let available = version == .v16 ? "available-after-reset" : "available-after-reset-201"

            let twoGood = try #require(report.check(available, vendor: "Good Two Co"))
            #expect(twoGood.verdict == .pass, "\(twoGood.detail)")
            let twoFaulted = try #require(report.check(available, vendor: "Faulted Two Co"))
            #expect(twoFaulted.verdict == .fail, "\(twoFaulted.detail)")
            #expect(twoFaulted.detail.contains(version == .v16 ? "for connector 1 " : "for EVSE 1 "), "\(twoFaulted.detail)")

            // The last, remote-features-as-claimed, judges features of this area used in the test: none (Reset is Core).
            #expect(report.area(.remoteOperations, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .pass, .notRun, .notRun, .notRun, .pass, .notRun])
            // The policy's own Reset met the site's requirements for commands (site.commands), judged like any other.
            #expect(report.check("commands-as-required", vendor: "Good Co")?.verdict == .pass, "\(report.check("commands-as-required", vendor: "Good Co")?.detail ?? "")")
            #expect(report.area(.remoteOperations, vendor: "Good Co")?.verdict == .inconclusive)
            let good = try #require(report.check(available, vendor: "Good Co"))
            #expect(good.verdict == .pass)
            let status = try #require(try await harness.record(at: good.ref(1)))
            #expect(status.action == "StatusNotification" && status.chargePoint == "RESET-GOOD")

            let faulted = try #require(report.check(available, vendor: "Faulted Co"))
            #expect(faulted.verdict == .fail, "\(faulted.detail)")
            #expect(faulted.detail.contains("within 8 s"))
            let reset = try #require(try await harness.record(at: faulted.ref(0)))
            #expect(reset.action == "Reset" && reset.messageType == .callResult)
            #expect(report.check("reboots-after-reset", vendor: "Faulted Co")?.verdict == .pass)

            #expect(report.check("reset-answered", vendor: "Deaf Co")?.verdict == .pass)
            #expect(report.check("reboots-after-reset", vendor: "Deaf Co")?.verdict == .fail)
            #expect(report.area(.remoteOperations, vendor: "Deaf Co")?.verdict == .fail)
            // remote-start-answered never had a stimulus.
            #expect(report.check("remote-start-answered", vendor: "Deaf Co")?.verdict == .notRun)
        }
    }

    @Test("communication loss: after an outage the charger reconnects and reports status; one that stays away fails", arguments: [OCPPVersion.v16, .v201])
    func communicationLoss(version: OCPPVersion) async throws {
        // The sample's outage starts five minutes in; here the third heartbeat of each charger starts a 1 s one.
        let policy = try samplePolicy(
            "comm-loss", rules: [], window: "8s",
            extraRules: "  - name: backend-outage\n    match: {direction: toCSMS, action: Heartbeat, nth: 3}\n    fault: {outage: {duration: 1s, mode: refuse, scope: charger}}\n"
        )
        try await ProxyHarness.start(policy: policy).run { harness in
            let good = harness.charger(ChargerProfile(id: "LOSS-GOOD", vendor: "Good Co", version: version))
            let gone = harness.charger(ChargerProfile(id: "LOSS-GONE", vendor: "Gone Co", version: version, quirks: [.neverReconnects]))
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
        }
    }

    @Test("data handover: the configuration the proxy asks for on the backend's behalf comes back, and is exported", arguments: [OCPPVersion.v16, .v201])
    func dataHandover(version: OCPPVersion) async throws {
        let policy = try samplePolicy("data-handover", rules: ["get-configuration", "get-base-report"])
        try await ProxyHarness.start(policy: policy).run { harness in
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
            #expect(try await harness.record(at: check.ref(0))?.fields["injected"]?.boolValue == true)
            #expect(try await harness.record(at: check.ref(1))?.action == (version == .v16 ? "GetConfiguration" : "NotifyReport"))
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
        }
    }

    @Test("a check whose stimulus never happened is notRun, and one whose window outlives the capture is inconclusive")
    func notRunAndInconclusive() async throws {
        // The Reset is injected, but the charger ignores it and the capture ends long before the 2 min window.
        let policy = try samplePolicy("remote-operations", rules: ["reset-16"])
        try await ProxyHarness.start(policy: policy).run { harness in
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
        }
    }

    /// Runs `scenario` on a good charger and on one with `quirk`, side by side through the proxy, then keeps
    /// both connected past the checks' windows (so that what never came fails), and reports.
    static func judge(
        _ policy: FaultPolicy, version: OCPPVersion, quirk: ChargerQuirk, outlast: Duration = .seconds(9),
        _ scenario: @escaping @Sendable (ChargerSimulator) async throws -> Void
    ) async throws -> (AnalysisReport, ProxyHarness) {
        try await self.judge(policy, version: version, quirk: quirk, outlast: outlast) { charger, _ in try await scenario(charger) }
    }

    /// The same, for scenarios in which the backend acts too (`harness.csms`).
    static func judge(
        _ policy: FaultPolicy, version: OCPPVersion, quirk: ChargerQuirk, outlast: Duration = .seconds(9),
        _ scenario: @escaping @Sendable (ChargerSimulator, ProxyHarness) async throws -> Void
    ) async throws -> (AnalysisReport, ProxyHarness) {
        let harness = try await ProxyHarness.start(policy: policy)
        let chargers = [
            harness.charger(ChargerProfile(id: "GOOD-\(version.rawValue)", vendor: "Good Co", version: version)),
            harness.charger(ChargerProfile(id: "BAD-\(version.rawValue)", vendor: "Bad Co", version: version, quirks: [quirk])),
        ]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for charger in chargers { group.addTask { try await scenario(charger, harness) } }
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
        let failedChecks = good?.areas.flatMap(\.checks).filter { $0.verdict == .fail }.map { "\($0.name): \($0.detail)" } ?? []
        #expect(
            good?.verdict == "pass",
            "\(report.deviations.filter { $0.chargePoint?.hasPrefix("GOOD") == true }.map { "\($0.rule) \($0.path ?? "") \($0.detail)" }) \(failedChecks)"
        )
        return (report, harness)
    }

    @Test("commissioning: a charger accepted at boot reports status and does not boot again; one that does fails", arguments: [OCPPVersion.v16, .v201])
    func commissioning(version: OCPPVersion) async throws {
        let policy = try samplePolicy("commissioning", rules: [], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .bootsTwice) { charger in
            try await charger.connect()
            try await charger.boot()
        }
        #expect(report.area(.commissioning, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .pass])
        let loop = try #require(report.check("no-boot-loop", vendor: "Bad Co"))
        #expect(loop.verdict == .fail, "\(loop.detail)")
        let second = try #require(try await harness.record(at: loop.ref(1)))
        #expect(second.action == "BootNotification" && second.messageType == .call && second.chargePoint == "BAD-\(version.rawValue)")
        #expect(report.check("boot-accepted", vendor: "Bad Co")?.verdict == .pass)
        await harness.stop()
    }

    @Test("commissioning: a charger booted just before the operator stops the proxy is inconclusive, not judged by the proxy's own close", arguments: [OCPPVersion.v16, .v201])
    func stoppedRightAfterBoot(version: OCPPVersion) async throws {
        // The sample's windows (60 s, 5 min): the proxy is stopped long before either closes.
        let policy = try samplePolicy("commissioning", rules: [])
        let harness = try await ProxyHarness.start(policy: policy)
        let profile = ChargerProfile(id: "STOP-\(version.rawValue)", vendor: "Good Co", version: version)
        let charger = harness.charger(profile)
        try await charger.connect()
        // Accepted; its status would follow, but the proxy is stopped first.
        let boot: JSONValue = version == .v16
            ? ["chargePointVendor": "Good Co", "chargePointModel": "M"]
            : ["reason": "PowerUp", "chargingStation": ["vendorName": "Good Co", "model": "M"]]
        _ = try await charger.call("BootNotification", boot)
        await harness.proxy.shutdown(grace: .seconds(1))
        await harness.waitForClosedPairs(1)
        let report = try await harness.report(checks: policy.checks)
        let closeRef = try #require(try await harness.records().first { $0.kind == "close" }?.reference)
        for name in ["status-after-boot", "no-boot-loop"] {
            let check = try #require(report.check(name, vendor: "Good Co"))
            #expect(check.verdict == .inconclusive, "\(name): \(check.detail)")
            #expect(check.refs.contains(closeRef) && check.detail.contains("the proxy was stopped"), "\(name): \(check.detail)")
        }
        await harness.stop()
    }

    @Test("smart charging: the injected 4 kW limit is accepted and enforced in the meter values; a charger that ignores it fails", arguments: [OCPPVersion.v16, .v201])
    func smartCharging(version: OCPPVersion) async throws {
        let policy = try samplePolicy("smart-charging", rules: ["apply-limit", "apply-limit-201"], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .ignoresChargingLimit) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 4, sampleInterval: .milliseconds(300))
        }
        let name = version == .v16 ? "limit-enforced" : "limit-enforced-201"
        #expect(report.check("limit-accepted", vendor: "Good Co")?.verdict == .pass)
        let enforced = try #require(report.check(name, vendor: "Good Co"))
        #expect(enforced.verdict == .pass, "\(enforced.detail)")
        let reading = try #require(try await harness.record(at: enforced.ref(1)))
        let power = reading.message?[3]?["meterValue"]?[0]?["sampledValue"]?[0]?["value"]
        #expect(power == "4000" || power == 4000)
        #expect(report.check("limit-accepted", vendor: "Bad Co")?.verdict == .pass)
        #expect(report.check(name, vendor: "Bad Co")?.verdict == .fail)
        #expect(report.area(.smartCharging, vendor: "Bad Co")?.verdict == .fail)
        // The other version's checks are not listed; without a loss or a clear, those checks did not run.
        // smart-charging-as-claimed last: the profile the charger accepted is smart charging that works.
        #expect(report.area(.smartCharging, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .notRun, .notRun, .pass])
        await harness.stop()
    }

    @Test("smart charging: when the profile is cleared the power goes back above the limit; a charger that stays limited fails", arguments: [OCPPVersion.v16, .v201])
    func smartChargingReverts(version: OCPPVersion) async throws {
        let policy = try samplePolicy(
            "smart-charging", rules: ["apply-limit", "apply-limit-201", "clear-limit-16", "clear-limit-201"], window: checkWindow, transactionFor: "900ms"
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
        let reading = try #require(try await harness.record(at: good.ref(1)))
        let power = reading.message?[3]?["meterValue"]?[0]?["sampledValue"]?[0]?["value"]
        #expect(power == "11000" || power == 11000)
        // Nothing cut the connection: the limit-kept-after-loss check did not run.
        #expect(report.area(.smartCharging, vendor: "Good Co")?.checks.map(\.verdict) == [.pass, .pass, .notRun, .pass, .pass])
        // The one that stays limited enforces the limit, and fails to revert.
        #expect(report.check(enforced, vendor: "Bad Co")?.verdict == .pass)
        #expect(report.check(reverts, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("remote operations: a triggered StatusNotification follows its TriggerMessage; a charger that ignores it fails", arguments: [OCPPVersion.v16, .v201])
    func triggerMessage(version: OCPPVersion) async throws {
        let policy = try samplePolicy("remote-operations", rules: ["trigger-status"], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .ignoresTrigger) { charger in
            try await charger.connect()
            try await charger.boot()
        }
        let good = try #require(report.check("trigger-executed", vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let answer = try #require(try await harness.record(at: good.ref(0)))
        #expect(answer.action == "TriggerMessage" && answer.messageType == .callResult)
        #expect(report.check("trigger-executed", vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("metering and billing: every transaction ends with its own id and a final reading; a wrong id fails", arguments: [OCPPVersion.v16, .v201])
    func meteringBilling(version: OCPPVersion) async throws {
        let policy = try samplePolicy("metering-billing", rules: [], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .stopsWithWrongTransactionId) { charger, harness in
            try await charger.connect()
            try await charger.boot()
            // The backend sets a reading a minute (meter-cadence judges the session by it).
            let csms = await harness.csms.connection(charger.profile.id)
            if version == .v16 {
                _ = try await csms.call("ChangeConfiguration", ["key": "MeterValueSampleInterval", "value": "60"])
            } else {
                _ = try await csms.call(
                    "SetVariables",
                    ["setVariableData": [["attributeValue": "60", "component": ["name": "SampledDataCtrlr"], "variable": ["name": "TxUpdatedInterval"]]]]
                )
            }
            try await charger.chargingSession(meterSamples: 3)
        }
        let name = version == .v16 ? "transaction-stopped-with-reading" : "transaction-ended-with-reading"
        let good = try #require(report.check(name, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        #expect(report.area(.meteringBilling, vendor: "Good Co")?.verdict == .pass)
        #expect(report.check("meter-cadence", vendor: "Good Co")?.verdict == .pass, "\(report.check("meter-cadence", vendor: "Good Co")?.detail ?? "")")
        let bad = try #require(report.check(name, vendor: "Bad Co"))
        #expect(bad.verdict == .fail, "\(bad.detail)")
        #expect(report.area(.meteringBilling, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("fault handling: a Faulted connector becomes Available again; one that stays Faulted fails", arguments: [OCPPVersion.v16, .v201])
    func faultHandling(version: OCPPVersion) async throws {
        let policy = try samplePolicy("fault-handling", rules: [], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .staysFaulted) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.fault(errorCode: "GroundFailure")
        }
        let name = version == .v16 ? "recovers-from-fault" : "recovers-from-fault-201"
        let good = try #require(report.check(name, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let faulted = try #require(try await harness.record(at: good.ref(0)))
        #expect(faulted.action == "StatusNotification" && faulted.messageType == .call)
        #expect(report.check(name, vendor: "Bad Co")?.verdict == .fail)
        // Nothing sent invalid JSON: that check did not run.
        #expect(report.check("session-survives-invalid-json", vendor: "Good Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("firmware update: Downloading, Downloaded, Installing, then a reboot; skipping Downloaded fails", arguments: [OCPPVersion.v16, .v201])
    func firmwareUpdate(version: OCPPVersion) async throws {
        let policy = try samplePolicy("firmware-update", rules: ["update-firmware-16", "update-firmware-201"], window: checkWindow)
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

    @Test("communication loss: a transaction cut off mid-session goes on with its id after reconnecting; one restarted in its place fails", arguments: [OCPPVersion.v16, .v201])
    func transactionSurvivesLoss(version: OCPPVersion) async throws {
        // Reconnecting and resending take a moment on a loaded machine: a window of 10 s, outlasted.
        let policy = try samplePolicy("comm-loss", rules: ["drop-mid-session"], window: "10s", transactionFor: "500ms")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .restartsTransactionAfterReconnect, outlast: .seconds(11)) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 5, sampleInterval: .milliseconds(300))
        }
        let continued = version == .v16 ? "stop-delivered-after-loss" : "transaction-ended-after-loss-201"
        let noSecond = version == .v16 ? "no-new-transaction-after-loss" : "no-new-transaction-after-loss-201"
        let good = try #require(report.check(continued, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let cut = try #require(try await harness.record(at: good.ref(0)))
        #expect(cut.fields["fault"]?["rule"]?.stringValue == "drop-mid-session")
        let end = try #require(try await harness.record(at: good.ref(1)))
        #expect(end.action == (version == .v16 ? "StopTransaction" : "TransactionEvent") && end.connection != cut.connection)
        #expect(report.check(noSecond, vendor: "Good Co")?.verdict == .pass)
        #expect(report.check("reconnects-after-drop", vendor: "Good Co")?.verdict == .pass)
        // The outage checks did not run, so the area is not complete.
        #expect(report.area(.communicationLoss, vendor: "Good Co")?.verdict == .inconclusive)

        // The restarted charger reconnects too, but its first transaction never ends and a second one starts.
        #expect(report.check("reconnects-after-drop", vendor: "Bad Co")?.verdict == .pass)
        #expect(report.check(continued, vendor: "Bad Co")?.verdict == .fail)
        let second = try #require(report.check(noSecond, vendor: "Bad Co"))
        #expect(second.verdict == .fail, "\(second.detail)")
        let start = try #require(try await harness.record(at: second.ref(1)))
        #expect(start.action == (version == .v16 ? "StartTransaction" : "TransactionEvent") && start.chargePoint == "BAD-\(version.rawValue)")
        #expect(report.area(.communicationLoss, vendor: "Bad Co")?.verdict == .fail)
        // No outage in this run.
        #expect(report.check("reconnects-after-outage", vendor: "Good Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("communication loss: a connection dropped mid-session and never reopened fails reconnects-after-drop")
    func neverBackAfterDrop() async throws {
        let policy = try samplePolicy("comm-loss", rules: ["drop-mid-session"], window: "10s", transactionFor: "300ms")
        let (report, harness) = try await Self.judge(policy, version: .v16, quirk: .neverReconnects, outlast: .seconds(11)) { charger in
            try await charger.connect()
            try await charger.boot()
            do {
                try await charger.chargingSession(meterSamples: 4, sampleInterval: .milliseconds(300))
            } catch where charger.profile.quirks.contains(.neverReconnects) {
                // Its session ends with the connection.
            }
        }
        #expect(report.check("reconnects-after-drop", vendor: "Good Co")?.verdict == .pass)
        let gone = try #require(report.check("reconnects-after-drop", vendor: "Bad Co"))
        #expect(gone.verdict == .fail, "\(gone.detail)")
        #expect(gone.refs.count == 1)
        #expect(report.check("stop-delivered-after-loss", vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("smart charging: the limit stays in force after the connection drops; a charger that forgets it fails", arguments: [OCPPVersion.v16, .v201])
    func limitKeptAfterLoss(version: OCPPVersion) async throws {
        let policy = try samplePolicy(
            "smart-charging", rules: ["apply-limit", "apply-limit-201", "loss-while-limited"], window: "10s", transactionFor: "700ms"
        )
        // Reconnecting and resending take a moment on a loaded machine: a window of 10 s, outlasted.
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .forgetsLimitAfterReconnect, outlast: .seconds(11)) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 8, sampleInterval: .milliseconds(300))
        }
        let kept = version == .v16 ? "limit-kept-after-loss" : "limit-kept-after-loss-201"
        let good = try #require(report.check(kept, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        #expect(try await harness.record(at: good.ref(0))?.fields["fault"]?["rule"]?.stringValue == "loss-while-limited")
        let bad = try #require(report.check(kept, vendor: "Bad Co"))
        #expect(bad.verdict == .fail, "\(bad.detail)")
        let reading = try #require(try await harness.record(at: bad.ref(1)))
        let power = reading.message?[3]?["meterValue"]?[0]?["sampledValue"]?[0]?["value"]
        #expect(power == "11000" || power == 11000)
        // Before the loss it did enforce the limit.
        #expect(report.check(version == .v16 ? "limit-enforced" : "limit-enforced-201", vendor: "Bad Co")?.verdict == .pass)
        #expect(report.area(.smartCharging, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("remote operations: a transaction running for a while is stopped on the backend's behalf, with its own id; a charger that keeps charging fails", arguments: [OCPPVersion.v16, .v201])
    func remoteStop(version: OCPPVersion) async throws {
        let policy = try samplePolicy("remote-operations", rules: ["remote-stop-16", "remote-stop-201"], window: checkWindow, transactionFor: "500ms")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .ignoresRemoteStop) { charger in
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 10, sampleInterval: .milliseconds(300))
        }
        let name = version == .v16 ? "stops-on-remote-stop" : "stops-on-remote-stop-201"
        let good = try #require(report.check(name, vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let stop = try #require(try await harness.record(at: good.ref(1)))
        let payload = stop.message?[3]
        #expect(version == .v16 ? payload?["reason"] == "Remote" : payload?["transactionInfo"]?["stoppedReason"] == "Remote")
        // The injected CALL carried the id of the transaction that was running.
        let frames = try await harness.frames("GOOD-\(version.rawValue)")
        let asked = try #require(frames.first { $0.action == (version == .v16 ? "RemoteStopTransaction" : "RequestStopTransaction") && $0.messageType == .call })
        let started = version == .v16
            ? frames.first { $0.action == "StartTransaction" && $0.messageType == .callResult }?.message?[2]?["transactionId"]
            : frames.first { $0.action == "TransactionEvent" }?.message?[3]?["transactionInfo"]?["transactionId"]
        #expect(asked.message?[3]?["transactionId"] == started && started != nil)
        #expect(asked.fields["injected"]?.boolValue == true)
        // Stopped early: fewer meter readings than the ten the session would have sent.
        let readings = frames.filter { $0.messageType == .call && ($0.action == "MeterValues" || $0.message?[3]?["eventType"] == "Updated") }
        #expect(readings.count < 10)

        // It stops when its session ends, for a local reason, not because it was asked to.
        let bad = try #require(report.check(name, vendor: "Bad Co"))
        #expect(bad.verdict == .fail, "\(bad.detail)")
        #expect(report.area(.remoteOperations, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("data handover: a charger that withholds its configuration fails the retrieval check", arguments: [OCPPVersion.v16, .v201])
    func dataWithheld(version: OCPPVersion) async throws {
        let policy = try samplePolicy("data-handover", rules: ["get-configuration", "get-base-report"], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .withholdsConfiguration) { charger in
            try await charger.connect()
            try await charger.boot()
        }
        let name = version == .v16 ? "configuration-retrievable" : "base-report-retrievable"
        #expect(report.check(name, vendor: "Good Co")?.verdict == .pass)
        let bad = try #require(report.check(name, vendor: "Bad Co"))
        #expect(bad.verdict == .fail, "\(bad.detail)")
        let asked = try #require(try await harness.record(at: bad.ref(0)))
        #expect(asked.action == (version == .v16 ? "GetConfiguration" : "GetBaseReport") && asked.fields["injected"]?.boolValue == true)
        #expect(report.area(.dataHandover, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("a refused Reset fails reset-answered; a refused charging profile fails limit-accepted", arguments: [OCPPVersion.v16, .v201])
    func refusedCommands(version: OCPPVersion) async throws {
        var policy = try samplePolicy("smart-charging", rules: ["apply-limit", "apply-limit-201"], window: checkWindow)
        let reset = try samplePolicy("remote-operations", rules: ["reset-16", "reset-201"], window: checkWindow)
        policy.rules += reset.rules
        policy.checks = policy.checks.filter { $0.name == "limit-accepted" } + reset.checks.filter { $0.name == "reset-answered" }
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .refusesCommands) { charger in
            try await charger.connect()
            // The Reset arrives while the boot sequence is still running; its reboot may cut the sequence short.
            try? await charger.boot()
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while charger.profile.quirks.isEmpty && charger.reboots == 0 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try await charger.chargingSession(meterSamples: 2)
        }
        #expect(report.check("reset-answered", vendor: "Good Co")?.verdict == .pass)
        #expect(report.check("limit-accepted", vendor: "Good Co")?.verdict == .pass)
        let refusedReset = try #require(report.check("reset-answered", vendor: "Bad Co"))
        #expect(refusedReset.verdict == .fail, "\(refusedReset.detail)")
        #expect(try await harness.record(at: refusedReset.ref(0))?.action == "Reset")
        let refusedProfile = try #require(report.check("limit-accepted", vendor: "Bad Co"))
        #expect(refusedProfile.verdict == .fail, "\(refusedProfile.detail)")
        #expect(report.area(.smartCharging, vendor: "Bad Co")?.verdict == .fail)
        await harness.stop()
    }

    @Test("commissioning: a charger that boots without reporting its status fails status-after-boot", arguments: [OCPPVersion.v16, .v201])
    func noStatusAfterBoot(version: OCPPVersion) async throws {
        let policy = try samplePolicy("commissioning", rules: [], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .noStatusAfterBoot) { charger in
            try await charger.connect()
            try await charger.boot()
        }
        let good = try #require(report.check("status-after-boot", vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        #expect(try await harness.record(at: good.ref(1))?.action == "StatusNotification")
        let silent = try #require(report.check("status-after-boot", vendor: "Bad Co"))
        #expect(silent.verdict == .fail, "\(silent.detail)")
        let boot = try #require(try await harness.record(at: silent.ref(0)))
        #expect(boot.action == "BootNotification" && boot.messageType == .callResult)
        #expect(report.check("boot-accepted", vendor: "Bad Co")?.verdict == .pass)
        await harness.stop()
    }

    @Test("authorization: an accepted tag that never starts a transaction fails accepted-tag-starts", arguments: [OCPPVersion.v16, .v201])
    func acceptedNeverStarts(version: OCPPVersion) async throws {
        let policy = try samplePolicy("authorization", rules: [], window: checkWindow)
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .neverStartsAfterAuthorize) { charger in
            try await charger.connect()
            try await charger.boot()
            let outcome = try await charger.chargingSession(idTag: "GOOD-TAG", meterSamples: 1)
            #expect(outcome == (charger.profile.quirks.isEmpty ? .charged : .notStarted))
        }
        let name = version == .v16 ? "accepted-tag-starts" : "accepted-token-starts"
        #expect(report.check(name, vendor: "Good Co")?.verdict == .pass)
        let stuck = try #require(report.check(name, vendor: "Bad Co"))
        #expect(stuck.verdict == .fail, "\(stuck.detail)")
        #expect(try await harness.record(at: stuck.ref(0))?.action == "Authorize")
        // Nothing was refused: the refused-tag check did not run.
        #expect(report.check(version == .v16 ? "refused-tag-never-starts" : "refused-token-never-starts", vendor: "Bad Co")?.verdict == .notRun)
        await harness.stop()
    }

    @Test("metering and billing: a transaction without meter values fails meter-values-during-transaction")
    func noMeterValues() async throws {
        // A StopTransaction would answer the check too: the silent charger's stop has to come after the window.
        var policy = try samplePolicy("metering-billing", rules: [], window: "5s")
        // The stop comes after the meter-values window, and within the stop's.
        for index in policy.checks.indices where policy.checks[index].name == "transaction-stopped-with-reading" { policy.checks[index].within = 30 }
        let (report, harness) = try await Self.judge(policy, version: .v16, quirk: .sendsNoMeterValues) { charger in
            try await charger.connect()
            try await charger.boot()
            // Three readings 3 s apart: the silent charger's stop comes 6 s after its start, after the 5 s window.
            try await charger.chargingSession(meterSamples: 3, sampleInterval: .milliseconds(3000))
        }
        let good = try #require(report.check("meter-values-during-transaction", vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        #expect(try await harness.record(at: good.ref(1))?.action == "MeterValues")
        let silent = try #require(report.check("meter-values-during-transaction", vendor: "Bad Co"))
        #expect(silent.verdict == .fail, "\(silent.detail)")
        // It does stop its transaction properly, later.
        #expect(report.check("transaction-stopped-with-reading", vendor: "Bad Co")?.verdict == .pass)
        await harness.stop()
    }

    @Test("remote operations: a remote start from the backend, delayed by the policy, is answered; one left unanswered fails", arguments: [OCPPVersion.v16, .v201])
    func remoteStartAnswered(version: OCPPVersion) async throws {
        let policy = try samplePolicy("remote-operations", rules: ["remote-start-slow"], window: "10s")
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .ignoresRemoteStart) { charger, harness in
            try await charger.connect()
            try await charger.boot()
            let backend = await harness.csms.connection(charger.profile.id)
            let payload: JSONValue = version == .v16
                ? ["connectorId": 1, "idTag": "APP-USER"] : ["idToken": ["idToken": "APP-USER", "type": "Central"], "remoteStartId": 7]
            let answer = try? await backend.call(version == .v16 ? "RemoteStartTransaction" : "RequestStartTransaction", payload, timeout: .seconds(12))
            #expect((answer != nil) == charger.profile.quirks.isEmpty)
        }
        let good = try #require(report.check("remote-start-answered", vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let delayed = try #require(try await harness.record(at: good.ref(0)))
        #expect(delayed.fields["fault"]?["rule"]?.stringValue == "remote-start-slow")
        let unanswered = try #require(report.check("remote-start-answered", vendor: "Bad Co"))
        #expect(unanswered.verdict == .fail, "\(unanswered.detail)")
        await harness.stop()
    }

    @Test("fault handling: invalid JSON from the backend leaves the connection up; a charger that drops it fails", arguments: [OCPPVersion.v16, .v201])
    func invalidJSONFromBackend(version: OCPPVersion) async throws {
        let policy = try samplePolicy(
            "fault-handling", rules: [], window: checkWindow,
            extraRules: "  - name: invalid-json\n    match: {direction: toCharger, type: CALL, first: 1}\n    fault: {malformed: {kind: invalidJSON}}\n"
        )
        let (report, harness) = try await Self.judge(policy, version: version, quirk: .dropsConnectionOnInvalidJSON) { charger, harness in
            try await charger.connect()
            try await charger.boot()
            let backend = await harness.csms.connection(charger.profile.id)
            // The charger cannot read it, so there is no answer to wait for.
            _ = try? await backend.call(version == .v16 ? "GetConfiguration" : "GetBaseReport", version == .v16 ? [:] : ["requestId": 1, "reportBase": "FullInventory"], timeout: .seconds(1))
            if charger.profile.quirks.isEmpty { #expect(charger.endpoint?.isActive == true) }
        }
        let good = try #require(report.check("session-survives-invalid-json", vendor: "Good Co"))
        #expect(good.verdict == .pass, "\(good.detail)")
        let cut = try #require(try await harness.record(at: good.ref(0)))
        #expect(cut.fields["fault"]?["malformation"]?.stringValue == "invalidJSON")
        let dropped = try #require(report.check("session-survives-invalid-json", vendor: "Bad Co"))
        #expect(dropped.verdict == .fail, "\(dropped.detail)")
        #expect(try await harness.record(at: dropped.ref(1))?.kind == "close")
        await harness.stop()
    }
}
