import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

/// The feature matrix against a vendor's declaration, on captures written line by line (docs/reports.md,
/// "Features"; docs/policies.md, "Vendor declaration").
@Suite("Features against a vendor's declaration")
struct FeatureMatrixTests {
    static let declaration = """
        declarations:
          - vendor: Acme
            model: AC-22
            firmware: "9.9.9"
            features:
              RemoteTrigger: unsupported
          - vendor: Acme
            model: AC-22
            ocppVersion: "1.6"
            features:
              SmartCharging: supported
              Reservation: optional
              LocalAuthListManagement: unsupported
        """

    /// A 1.6 charger of Acme AC-22 1.4.2 that refuses smart charging and reservations and takes a local list.
    func capture() -> OutageCapture {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.call(
            1, at: "08:00:01", "BootNotification", #"{"chargePointVendor":"Acme","chargePointModel":"AC-22","firmwareVersion":"1.4.2"}"#,
            answer: #"{"status":"Accepted","currentTime":"\#(OutageCapture.ts("08:00:01"))","interval":300}"#
        )
        func refused(_ time: String, _ action: String, _ payload: String, code: String = "NotSupported") {
            capture.lines.append(
                #"{"ts":"\#(OutageCapture.ts(time))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"x\#(time)","action":"\#(action)","enc":"json","payload":[2,"x\#(time)","\#(action)",\#(payload)]}"#
            )
            capture.lines.append(
                #"{"ts":"\#(OutageCapture.ts(time))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":4,"msgId":"x\#(time)","action":"\#(action)","enc":"json","payload":[4,"x\#(time)","\#(code)","",{}]}"#
            )
        }
        refused("08:00:02", "SetChargingProfile", #"{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Relative","chargingSchedule":{"chargingRateUnit":"W","chargingSchedulePeriod":[{"startPeriod":0,"limit":7000}]}}}"#)
        refused("08:00:03", "ReserveNow", #"{"connectorId":1,"expiryDate":"\#(OutageCapture.ts("09:00:00"))","idTag":"T","reservationId":1}"#, code: "NotImplemented")
        capture.call(1, at: "08:00:04", "SendLocalList", #"{"listVersion":2,"updateType":"Full","localAuthorizationList":[]}"#, answer: #"{"status":"Accepted"}"#, toCSMS: false)
        capture.call(1, at: "08:00:05", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:00:05"))"}"#)
        return capture
    }

    func report(declarations: [VendorDeclaration], checks: String? = nil) throws -> AnalysisReport {
        var configuration = AnalyzerConfiguration()
        configuration.declarations = declarations
        if let checks { configuration.checks = try PolicyLoader.parse(checks).checks }
        return try self.capture().analyse(configuration)
    }

    @Test("declared supported and refused is a finding citing the declaration; declared optional and refused is none; declared unsupported and working is a note")
    func againstDeclaration() throws {
        let declarations = try DeclarationLoader.parse(Self.declaration, file: "acme.yaml")
        #expect(declarations.count == 2 && declarations[1].source == "acme.yaml:7" && declarations[1].features["SmartCharging"] == .supported)
        let report = try self.report(declarations: declarations)
        let rows = try #require(report.pairs.first { $0.key.charger.vendor == "Acme" }?.statistics.features)
        func row(_ name: String) -> FeatureRow? { rows.first { (row: FeatureRow) in row.feature.name == name } }
        #expect(row("SmartCharging")?.verdict == .claimedButRefused && row("SmartCharging")?.declared == .supported)
        #expect(row("Reservation")?.verdict == .notSupported && row("Reservation")?.claim == .optional)
        #expect(row("LocalAuthListManagement")?.verdict == .usedButNotClaimed)
        // The first declaration is for another firmware: it does not apply, and RemoteTrigger stays unknown.
        #expect(row("RemoteTrigger")?.declared == nil && row("RemoteTrigger")?.verdict == .notClaimed)
        #expect(row("Core")?.verdict == .works && row("Core")?.claim == .required)

        let findings = report.deviations.filter { (d: Deviation) in d.rule.hasPrefix("feature.") }.map { (d: Deviation) in "\(d.rule) \(d.action ?? "")" }
        #expect(findings.sorted() == ["feature.claimedButRefused SetChargingProfile", "feature.usedNotClaimed "], "\(findings)")
        let refused = try #require(report.deviations.first { (d: Deviation) in d.rule == "feature.claimedButRefused" })
        #expect(refused.related == ["acme.yaml:7"] && refused.ref?.hasSuffix(":6") == true, "\(refused.related) \(refused.ref ?? "")")
        #expect(refused.detail.contains("declared supported in acme.yaml:7"), "\(refused.detail)")

        // The refusal is the charger's CALLERROR (line 6, after the header, the open, the boot and the CALL).
        // Without the declaration nothing claims these features: the refusals agree with that, no finding.
        let plain = try self.report(declarations: [])
        #expect(!plain.deviations.contains { (d: Deviation) in d.rule.hasPrefix("feature.") })
        let smart = plain.pairs.first?.statistics.features.first { (row: FeatureRow) in row.feature.name == "SmartCharging" }
        #expect(smart?.verdict == .notSupported && smart?.claim == .unknown)
    }

    @Test("featuresAsClaimed judges the features of its own area: smart charging fails on the charger's side, remote operations pass")
    func judged() throws {
        let checks = """
            checks:
              - name: smart-charging-as-claimed
                area: smartCharging
                judge: featuresAsClaimed
              - name: remote-features-as-claimed
                area: remoteOperations
                judge: featuresAsClaimed
            """
        let report = try self.report(declarations: try DeclarationLoader.parse(Self.declaration), checks: checks)
        let results = report.pairs.flatMap(\.areas).flatMap(\.checks)
        let smart = try #require(results.first { (check: CheckResult) in check.name == "smart-charging-as-claimed" })
        #expect(smart.verdict == .fail && smart.side == .charger && smart.detail.contains("SmartCharging is claimed"), "\(smart)")
        let remote = try #require(results.first { (check: CheckResult) in check.name == "remote-features-as-claimed" })
        // Reservation refused as its vendor declares it optional: consistent, a pass.
        #expect(remote.verdict == .pass && remote.counts[.pass] == 1, "\(remote)")
    }

    @Test("a declaration file with mistakes says what and where, every one of them")
    func declarationErrors() throws {
        let broken = """
            declarations:
              - vendor: Acme
                features:
                  SmartCharing: supported
                  Reservation: maybe
              - vendor: Acme
                model: AC-22
                ocppVersion: "3.0"
                features: {}
            """
        #expect {
            try DeclarationLoader.parse(broken, file: "broken.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("broken.yaml:2") && text.contains("needs 'model'") && text.contains("broken.yaml:4") && text.contains("unknown feature 'SmartCharing'")
                && text.contains("broken.yaml:5") && text.contains("must be one of: supported, implemented, optional, unsupported")
                && text.contains("broken.yaml:8") && text.contains("ocppVersion must be one of")
        }
    }
}

/// Firmware comparisons on captures written line by line (docs/reports.md, "Firmware regressions").
@Suite("Firmware comparisons")
struct FirmwareComparisonTests {
    /// A proxy run (its own header, `policy`) in which the charger boots with `firmware` and charges once with
    /// periodic readings `every` seconds apart.
    static func run(_ capture: inout OutageCapture, hour: String, policy: String?, firmware: String, every seconds: Int) {
        let policyField = policy.map { #""\#($0)""# } ?? "null"
        let started = OutageCapture.ts("\(hour):00:00")
        capture.lines.append(#"{"ts":"\#(started)","kind":"header","format":1,"started":"\#(started)","backend":"B","policy":\#(policyField)}"#)
        let conn = Int(hour) ?? 1
        capture.open(conn, at: "\(hour):00:00")
        capture.call(
            conn, at: "\(hour):00:01", "BootNotification", #"{"chargePointVendor":"Acme","chargePointModel":"AC-22","firmwareVersion":"\#(firmware)"}"#,
            answer: #"{"status":"Accepted","currentTime":"\#(OutageCapture.ts(hour + ":00:01"))","interval":300}"#
        )
        capture.start(conn, at: "\(hour):00:02", dated: "\(hour):00:02")
        for index in 1...5 {
            let time = String(format: "%@:%02d:%02d", hour, (2 + index * seconds) / 60, (2 + index * seconds) % 60)
            capture.meter(conn, at: time, dated: time, wh: 1000 + index * 100)
        }
        let end = String(format: "%@:%02d:%02d", hour, (3 + 5 * seconds) / 60, (3 + 5 * seconds) % 60)
        capture.stop(conn, at: end, dated: end, wh: 1600)
        capture.close(conn, at: end)
    }

    @Test("readings every 10 s with one firmware and every 30 s with the next, under the same policy, are a cadence regression citing both transactions")
    func cadence() throws {
        var capture = OutageCapture(.v16)
        Self.run(&capture, hour: "08", policy: "policies/metering-billing.yaml", firmware: "1.0", every: 10)
        Self.run(&capture, hour: "09", policy: "policies/metering-billing.yaml", firmware: "2.0", every: 30)
        let report = try capture.analyse(AnalyzerConfiguration())
        let comparison = try #require(report.firmware.first)
        #expect((comparison.before, comparison.after, comparison.notCompared == nil) == ("1.0", "2.0", true))
        let cadence = comparison.regressions.filter { (regression: FirmwareComparison.Regression) in regression.kind == .cadence }
        #expect(cadence.map(\.detail) == ["periodic readings every 10 s (median) with 1.0, every 30 s with 2.0"], "\(comparison.regressions.map(\.detail))")
        // The two StartTransaction lines (the capture's own header is line 1; each run begins with its header).
        #expect(cadence.first?.refs.count == 2 && cadence.first?.refs.allSatisfy { $0.hasSuffix(".jsonl:6") || $0.hasSuffix(".jsonl:25") } == true, "\(cadence.first?.refs ?? [])")
    }

    @Test("a feature refused by one firmware and working after the update is the earlier firmware's finding, not the later one's")
    func findingOnItsFirmware() throws {
        var capture = OutageCapture(.v16)
        func smartCharging(_ conn: Int, at time: String, refused: Bool) {
            capture.call(conn, at: time, "GetConfiguration", "{}", answer: #"{"configurationKey":[{"key":"SupportedFeatureProfiles","readonly":true,"value":"Core,SmartCharging"}]}"#, toCSMS: false)
            capture.call(
                conn, at: time, "ClearChargingProfile", "{}", answer: refused ? "{}" : #"{"status":"Accepted"}"#, toCSMS: false
            )
            if refused {
                // The answer becomes CALLERROR NotSupported.
                let last = capture.lines.count - 1
                capture.lines[last] = capture.lines[last].replacingOccurrences(of: #""msgType":3"#, with: #""msgType":4"#)
                    .replacingOccurrences(of: #"[3,"#, with: #"[4,"#).replacingOccurrences(of: #",{}]}"#, with: #","NotSupported","",{}]}"#)
            }
        }
        Self.run(&capture, hour: "08", policy: nil, firmware: "1.0", every: 10)
        capture.open(5, at: "08:30:00")
        smartCharging(5, at: "08:30:01", refused: true)
        capture.close(5, at: "08:30:02")
        Self.run(&capture, hour: "09", policy: nil, firmware: "2.0", every: 10)
        capture.open(6, at: "09:30:00")
        smartCharging(6, at: "09:30:01", refused: false)
        capture.close(6, at: "09:30:02")
        let report = try capture.analyse(AnalyzerConfiguration())
        func pair(_ firmware: String) -> PairReport? { report.pairs.first { (pair: PairReport) in pair.key.charger.firmware == firmware } }
        #expect(pair("1.0")?.statistics.deviations["feature.claimedButRefused"] == 1, "\(report.deviations.map(\.detail))")
        #expect(pair("2.0")?.statistics.deviations["feature.claimedButRefused"] == nil)
        #expect(pair("1.0")?.statistics.features.first { (row: FeatureRow) in row.feature.name == "SmartCharging" }?.verdict == .claimedButRefused)
        #expect(pair("2.0")?.statistics.features.first { (row: FeatureRow) in row.feature.name == "SmartCharging" }?.verdict == .works)
    }

    @Test("a command accepted by one firmware and not carried out before the update is that firmware's finding")
    func commandOnItsFirmware() throws {
        var capture = OutageCapture(.v16)
        Self.run(&capture, hour: "08", policy: nil, firmware: "1.0", every: 10)
        capture.open(5, at: "08:30:00")
        capture.call(5, at: "08:30:01", "TriggerMessage", #"{"requestedMessage":"MeterValues"}"#, answer: #"{"status":"Accepted"}"#, toCSMS: false)
        capture.close(5, at: "08:30:02")
        // The update: the charger boots with 2.0 within the 120 s window of the trigger it ignored.
        capture.open(6, at: "08:30:30")
        capture.call(6, at: "08:30:31", "BootNotification", #"{"chargePointVendor":"Acme","chargePointModel":"AC-22","firmwareVersion":"2.0"}"#, answer: #"{"status":"Accepted","currentTime":"\#(OutageCapture.ts("08:30:31"))","interval":300}"#)
        capture.call(6, at: "08:40:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:40:00"))"}"#)
        capture.close(6, at: "08:40:01")
        let report = try capture.analyse(AnalyzerConfiguration())
        func pair(_ firmware: String) -> PairReport? { report.pairs.first { (pair: PairReport) in pair.key.charger.firmware == firmware } }
        #expect(pair("1.0")?.statistics.deviations["command.notCarriedOut"] == 1, "\(report.deviations.map(\.detail))")
        #expect(pair("2.0")?.statistics.deviations["command.notCarriedOut"] == nil)
    }

    @Test("two firmware versions recorded under different policies are not compared, and say why")
    func differentPolicies() throws {
        var capture = OutageCapture(.v16)
        Self.run(&capture, hour: "08", policy: "policies/metering-billing.yaml", firmware: "1.0", every: 10)
        Self.run(&capture, hour: "09", policy: nil, firmware: "2.0", every: 30)
        let report = try capture.analyse(AnalyzerConfiguration())
        let comparison = try #require(report.firmware.first)
        #expect(comparison.regressions.isEmpty && !comparison.isRegression && report.regressions.isEmpty)
        #expect(comparison.notCompared == "recorded under different policies (policies/metering-billing.yaml before, no policy after): the test changed with the firmware")
    }
}
