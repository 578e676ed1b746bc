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
            ocppVersion: "1.6"
            features:
              SmartCharging: supported
              Reservation: optional
              LocalAuthListManagement: unsupported
          - vendor: Acme
            model: AC-22
            firmware: "9.9.9"
            features:
              RemoteTrigger: unsupported
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
        #expect(declarations.count == 2 && declarations[0].source == "acme.yaml:2" && declarations[0].features["SmartCharging"] == .supported)
        let report = try self.report(declarations: declarations)
        let rows = try #require(report.pairs.first { $0.key.charger.vendor == "Acme" }?.statistics.features)
        func row(_ name: String) -> FeatureRow? { rows.first { (row: FeatureRow) in row.feature.name == name } }
        #expect(row("SmartCharging")?.verdict == .claimedButRefused && row("SmartCharging")?.declared == .supported)
        #expect(row("Reservation")?.verdict == .notSupported && row("Reservation")?.claim == .optional)
        #expect(row("LocalAuthListManagement")?.verdict == .usedButNotClaimed)
        // The second declaration is for another firmware: RemoteTrigger stays unknown.
        #expect(row("RemoteTrigger")?.declared == nil && row("RemoteTrigger")?.verdict == .notClaimed)
        #expect(row("Core")?.verdict == .works && row("Core")?.claim == .required)

        let findings = report.deviations.filter { (d: Deviation) in d.rule.hasPrefix("feature.") }.map { (d: Deviation) in "\(d.rule) \(d.action ?? "")" }
        #expect(findings.sorted() == ["feature.claimedButRefused SetChargingProfile", "feature.usedNotClaimed "], "\(findings)")
        let refused = try #require(report.deviations.first { (d: Deviation) in d.rule == "feature.claimedButRefused" })
        #expect(refused.related == ["acme.yaml:2"] && refused.ref?.hasSuffix(":6") == true, "\(refused.related) \(refused.ref ?? "")")
        #expect(refused.detail.contains("declared supported in acme.yaml:2"), "\(refused.detail)")

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
