import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

extension OutageCapture {
    /// A CALL from the backend and the charger's answer.
    mutating func backendCall(_ conn: Int, at time: String, _ action: String, _ payload: String, answer: String) {
        self.call(conn, at: time, action, payload, answer: answer, toCSMS: false)
    }

    /// 1.6: the backend reads the charger's sample interval.
    mutating func sampleInterval(_ conn: Int, at time: String, _ seconds: String) {
        self.backendCall(
            conn, at: time, "GetConfiguration", "{}", answer: #"{"configurationKey":[{"key":"MeterValueSampleInterval","readonly":false,"value":"\#(seconds)"}]}"#
        )
    }

    /// A 1.6 MeterValues of transaction 7 with the raw sampled values given (`[{"value":"..."}]`).
    mutating func readings(_ conn: Int, at time: String, dated: String, _ sampled: String) {
        self.call(conn, at: time, "MeterValues", #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(Self.ts(dated))","sampledValue":\#(sampled)}]}"#)
    }

    func analyse(_ configuration: AnalyzerConfiguration) throws -> AnalysisReport {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("meter-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try (self.lines.joined(separator: "\n") + "\n").write(toFile: directory + "/capture.jsonl", atomically: true, encoding: .utf8)
        let analyzer = Analyzer(schemas: nil, configuration: configuration)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        return analyzer.finish()
    }
}

/// Meter cadence and format rules on captures written line by line (docs/rules.md, `meter.*`).
@Suite("Meter cadence and format rules")
struct MeterRuleTests {
    /// A 1.6 transaction from 08:00:00 metered every minute, with a 7-minute hole after 08:03, stopped at 08:11:30.
    func gapSession(outage: Bool) -> OutageCapture {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.sampleInterval(1, at: "08:00:00", "60")
        capture.start(1, at: "08:00:00", dated: "08:00:00")
        for minute in 1...3 { capture.meter(1, at: "08:0\(minute):00", dated: "08:0\(minute):00", wh: 1000 + minute * 100) }
        if outage {
            capture.close(1, at: "08:04:00")
            capture.open(2, at: "08:09:00")
        }
        let conn = outage ? 2 : 1
        capture.meter(conn, at: "08:10:00", dated: "08:10:00", wh: 2000)
        capture.meter(conn, at: "08:11:00", dated: "08:11:00", wh: 2100)
        capture.stop(conn, at: "08:11:30", dated: "08:11:30", wh: 2150)
        capture.close(conn, at: "08:12:00")
        return capture
    }

    @Test("periodic readings that stop for more than two intervals while connected are one gap, citing both readings and the configuration")
    func gap() throws {
        let report = try self.gapSession(outage: false).analyse(AnalyzerConfiguration())
        #expect(report.deviations.map(\.rule) == ["meter.gap"], "\(report.deviations.map(\.detail))")
        let gap = try #require(report.deviations.first)
        #expect(gap.detail.contains("420 s") && gap.detail.contains("MeterValueSampleInterval = 60 s"), "\(gap.detail)")
        // The reading that ended the gap; the one before it and the GetConfiguration answer.
        #expect(gap.ref?.hasSuffix(":13") == true, "\(gap.ref ?? "")")
        #expect(gap.related.map { $0.split(separator: ":").last.map(String.init) ?? "" } == ["11", "4"], "\(gap.related)")
        let row = try #require(report.pairs.first?.statistics.cadence.rows.first)
        #expect(row.medianInterval == 60 && row.worstGap == 420 && row.periodicReadings == 5)
    }

    @Test("a gap that overlaps an outage is shown in the cadence table, not reported (queuing readings offline is a SHOULD)")
    func gapDuringOutage() throws {
        let report = try self.gapSession(outage: true).analyse(AnalyzerConfiguration())
        #expect(report.deviations.map(\.rule) == [], "\(report.deviations.map(\.detail))")
        #expect(report.pairs.first?.statistics.cadence.rows.first?.worstGap == 420)
    }

    @Test("a blackhole outage fault counts for gaps, but not as an outage the charger knew of (no offline flag expected)")
    func blackhole() throws {
        var capture = self.gapSession(outage: false)
        // The trigger of a 5-minute blackhole for this charger, recorded on a heartbeat at 08:03:30.
        capture.lines.insert(
            #"{"ts":"\#(OutageCapture.ts("08:03:30"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":2,"msgId":"hb","action":"Heartbeat","enc":"json","payload":[2,"hb","Heartbeat",{}],"fault":{"rule":"cut","kind":"outage","seconds":300,"mode":"blackhole","scope":"charger","hit":1}}"#,
            at: 12
        )
        // The blackholed heartbeat itself goes unanswered (rpc.timeout, as for any CALL the proxy kept back).
        let cut = try capture.analyse(AnalyzerConfiguration()).deviations
        #expect(cut.map(\.rule) == ["rpc.timeout"], "\(cut.map(\.detail))")

        var events = OutageCapture(.v201)
        events.open(1, at: "08:00:00")
        events.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01", wh: 1000)
        events.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:01:00"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":2,"msgId":"hb","action":"Heartbeat","enc":"json","payload":[2,"hb","Heartbeat",{}],"fault":{"rule":"cut","kind":"outage","seconds":300,"mode":"blackhole","scope":"charger","hit":1}}"#
        )
        // Sent live into the blackhole: the charger's connection stayed open, so it could not know it was cut off.
        events.event(1, at: "08:03:00", "Updated", seqNo: 1, dated: "08:03:00", wh: 1500)
        events.event(1, at: "08:07:00", "Ended", seqNo: 2, dated: "08:07:00", wh: 2000)
        events.close(1, at: "08:10:00")
        let live = try events.analyse(AnalyzerConfiguration()).deviations
        #expect(live.map(\.rule) == ["rpc.timeout"], "\(live.map(\.detail))")
    }

    @Test("a 1.6 value that is not a decimal is found once per transaction and counted; signs and fractions are decimals")
    func notDecimal() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.start(1, at: "08:00:00", dated: "08:00:00")
        capture.readings(1, at: "08:01:00", dated: "08:01:00", #"[{"value":"1100"},{"value":"-3.5","measurand":"Current.Export","unit":"A"},{"value":"+7","measurand":"Temperature","unit":"Celsius"}]"#)
        capture.readings(1, at: "08:02:00", dated: "08:02:00", #"[{"value":"1200"},{"value":"12,5","measurand":"Current.Import","unit":"A"}]"#)
        capture.readings(1, at: "08:03:00", dated: "08:03:00", #"[{"value":"1300"},{"value":"12-3","measurand":"Current.Import","unit":"A"}]"#)
        capture.readings(1, at: "08:04:00", dated: "08:04:00", #"[{"value":"A1B2","format":"SignedData"}]"#)
        capture.stop(1, at: "08:05:00", dated: "08:05:00", wh: 1400)
        capture.close(1, at: "08:06:00")
        let report = try capture.analyse(AnalyzerConfiguration())
        #expect(report.deviations.map(\.rule) == ["meter.notDecimal"], "\(report.deviations.map(\.detail))")
        #expect(report.deviations.first?.path == "/meterValue/0/sampledValue/1/value" && report.deviations.first?.detail.contains("12,5") == true)
        #expect(report.pairs.first?.statistics.cadence.rows.first?.notDecimal == 2)
    }

    @Test("clock-aligned readings off their grid from midnight are found once per transaction; a hostile interval is no crash")
    func offGrid() throws {
        func session(interval: String) -> OutageCapture {
            var capture = OutageCapture(.v201)
            capture.open(1, at: "08:00:00")
            // Unprompted, the charger reports its aligned-data interval.
            capture.call(
                1, at: "08:00:00", "NotifyReport",
                #"{"requestId":1,"generatedAt":"\#(OutageCapture.ts("08:00:00"))","seqNo":0,"reportData":[{"component":{"name":"AlignedDataCtrlr"},"variable":{"name":"Interval"},"variableAttribute":[{"value":"\#(interval)"}]}]}"#
            )
            capture.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01", wh: 1000)
            for (seqNo, time) in ["08:15:00", "08:22:30", "08:30:00"].enumerated() {
                capture.call(
                    1, at: time, "TransactionEvent",
                    #"{"eventType":"Updated","timestamp":"\#(OutageCapture.ts(time))","triggerReason":"MeterValueClock","seqNo":\#(seqNo + 1),"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[{"value":\#(1100 + seqNo * 100),"context":"Sample.Clock"}]}]}"#
                )
            }
            capture.event(1, at: "08:31:00", "Ended", seqNo: 4, dated: "08:31:00", wh: 1500)
            capture.close(1, at: "08:32:00")
            return capture
        }
        let report = try session(interval: "900").analyse(AnalyzerConfiguration())
        #expect(report.deviations.map(\.rule) == ["meter.offGrid"], "\(report.deviations.map(\.detail))")
        #expect(report.deviations.first?.detail.contains("08:22:30") == true)
        #expect(report.pairs.first?.statistics.cadence.rows.first.map { ($0.clockAligned, $0.offGrid) } ?? (0, 0) == (3, 1))
        // 10^13 seconds is no interval a charger has: not used, and nothing traps.
        #expect(try session(interval: "1e13").analyse(AnalyzerConfiguration()).deviations.map(\.rule) == [])
    }

    @Test("a setting the charger reports unprompted that differs from the site's declaration is one conflict per value")
    func conflict() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        let report = #"{"requestId":1,"generatedAt":"\#(OutageCapture.ts("08:00:00"))","seqNo":0,"reportData":[{"component":{"name":"AuthCtrlr"},"variable":{"name":"OfflineTxForUnknownIdEnabled"},"variableAttribute":[{"value":"true"}]},{"component":{"name":"AuthCtrlr","evse":{"id":1}},"variable":{"name":"OfflineTxForUnknownIdEnabled"},"variableAttribute":[{"value":"true"}]}]}"#
        capture.call(1, at: "08:00:00", "NotifyReport", report)
        capture.call(1, at: "08:05:00", "NotifyReport", report)
        capture.close(1, at: "08:10:00")
        var configuration = AnalyzerConfiguration()
        configuration.site = try PolicyLoader.parse("site:\n  offline: {unknownIdsOffline: false}\n").site
        let found = try capture.analyse(configuration).deviations
        #expect(found.map(\.rule) == ["site.configurationConflict"], "\(found.map(\.detail))")
        #expect(found.first?.path == "/reportData/0/variableAttribute/0/value")
        #expect(found.first?.detail.contains("AuthCtrlr.OfflineTxForUnknownIdEnabled is true") == true, "\(found.first?.detail ?? "")")
    }

    @Test("a charger that splits one reading time over several events is one reading with all its measurands")
    func splitReadings() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.call(
            1, at: "08:00:00", "NotifyReport",
            #"{"requestId":1,"generatedAt":"\#(OutageCapture.ts("08:00:00"))","seqNo":0,"reportData":[{"component":{"name":"SampledDataCtrlr"},"variable":{"name":"TxUpdatedInterval"},"variableAttribute":[{"value":"60"}]},{"component":{"name":"SampledDataCtrlr"},"variable":{"name":"TxUpdatedMeasurands"},"variableAttribute":[{"value":"Energy.Active.Import.Register,Power.Active.Import"}]}]}"#
        )
        capture.event(1, at: "08:00:00", "Started", seqNo: 0, dated: "08:00:00")
        var seqNo = 1
        for minute in 1...4 {
            let time = "08:0\(minute):00"
            for sampled in [#"{"value":\#(1000 + minute * 100)}"#, #"{"value":7000,"measurand":"Power.Active.Import"}"#] {
                capture.call(
                    1, at: time, "TransactionEvent",
                    #"{"eventType":"Updated","timestamp":"\#(OutageCapture.ts(time))","triggerReason":"MeterValuePeriodic","seqNo":\#(seqNo),"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[\#(sampled)]}]}"#
                )
                seqNo += 1
            }
        }
        capture.event(1, at: "08:05:00", "Ended", seqNo: seqNo, dated: "08:05:00", wh: 1500)
        capture.close(1, at: "08:06:00")
        let report = try capture.analyse(AnalyzerConfiguration())
        #expect(report.deviations.map(\.rule) == [], "\(report.deviations.map(\.detail))")
        let row = try #require(report.pairs.first?.statistics.cadence.rows.first)
        #expect(row.periodicReadings == 4 && row.medianInterval == 60 && row.missingMeasurands.isEmpty, "\(row)")
    }

    @Test("stopOnInvalidId: a start answered Invalid whose window the proxy's restart cut short is inconclusive, not a failure")
    func invalidStartAcrossRestart() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.backendCall(
            1, at: "08:00:00", "GetConfiguration", "{}", answer: #"{"configurationKey":[{"key":"StopTransactionOnInvalidId","readonly":false,"value":"true"}]}"#
        )
        capture.call(
            1, at: "08:00:10", "StartTransaction", #"{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"\#(OutageCapture.ts("08:00:10"))"}"#,
            answer: #"{"transactionId":7,"idTagInfo":{"status":"Invalid"}}"#
        )
        capture.close(1, at: "08:00:20")
        var restarted = capture
        // The proxy restarts an hour later: the window (60 s) ended while nobody watched.
        restarted.lines.append(#"{"ts":"2026-12-04T09:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T09:00:00.000000Z","backend":"B"}"#)
        restarted.open(1, at: "09:00:01")
        restarted.close(1, at: "09:00:05")
        // Watched throughout instead, the charger keeps the connection up past the window without stopping.
        var watched = capture
        watched.lines.removeLast()
        watched.call(1, at: "08:02:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:02:00"))"}"#)
        watched.close(1, at: "08:02:10")
        var configuration = AnalyzerConfiguration()
        configuration.checks = try PolicyLoader.parse("checks:\n  - name: stops\n    area: communicationLoss\n    judge: stopOnInvalidId\n    within: 60s\n").checks
        let cut = try #require(try restarted.analyse(configuration).pairs.flatMap(\.areas).flatMap(\.checks).first { $0.name == "stops" })
        #expect(cut.verdict == .inconclusive, "\(cut.detail)")
        let failed = try #require(try watched.analyse(configuration).pairs.flatMap(\.areas).flatMap(\.checks).first { $0.name == "stops" })
        #expect(failed.verdict == .fail, "\(failed.detail)")
    }
}

/// Remote commands on written captures: effects the wire shows, and those it cannot (docs/reports.md, "Remote commands").
@Suite("Remote commands on written captures")
struct CommandCaptureTests {
    @Test("2.0.1: a remote stop carried out by the Ended event, and commands whose effect the wire cannot show, give no finding")
    func effectsAndNotObservable() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.call(1, at: "08:00:01", "StatusNotification", #"{"timestamp":"\#(OutageCapture.ts("08:00:01"))","connectorStatus":"Available","evseId":1,"connectorId":1}"#)
        // The whole charger is already operative: nothing changes, no status need come (1.6 5.2, G04.FR.04).
        capture.backendCall(1, at: "08:00:02", "ChangeAvailability", #"{"operationalStatus":"Operative"}"#, answer: #"{"status":"Accepted"}"#)
        // One EVSE's reset is no reboot (B11.FR.08); an unlock shows nothing after its answer.
        capture.backendCall(1, at: "08:00:03", "Reset", #"{"type":"Immediate","evseId":1}"#, answer: #"{"status":"Accepted"}"#)
        capture.backendCall(1, at: "08:00:04", "UnlockConnector", #"{"evseId":1,"connectorId":1}"#, answer: #"{"status":"Unlocked"}"#)
        capture.event(1, at: "08:01:00", "Started", seqNo: 0, dated: "08:01:00", wh: 1000)
        capture.backendCall(1, at: "08:02:00", "RequestStopTransaction", #"{"transactionId":"tx1"}"#, answer: #"{"status":"Accepted"}"#)
        capture.event(1, at: "08:02:05", "Ended", seqNo: 1, dated: "08:02:05", wh: 1200)
        capture.call(1, at: "08:10:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:10:00"))"}"#)
        capture.close(1, at: "08:10:01")
        let report = try capture.analyse(AnalyzerConfiguration())
        #expect(report.deviations.map(\.rule) == [], "\(report.deviations.map(\.detail))")
        let commands = try #require(report.pairs.first?.statistics.commands)
        #expect(commands["RequestStopTransaction"]?.carriedOut == 1)
        #expect(commands["RequestStopTransaction"]?.toEffect.maximum == 5000)
        #expect(["ChangeAvailability", "Reset", "UnlockConnector"].map { commands[$0]?.notObservable } == [1, 1, 1])
    }
}

extension CommandCaptureTests {
    @Test("a remote start whose transaction begins before the charger answers it is carried out, not a finding")
    func effectBeforeAnswer() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.call(1, at: "08:00:01", "StatusNotification", #"{"connectorId":1,"errorCode":"NoError","status":"Preparing"}"#)
        // The backend's RemoteStartTransaction; the charger starts the transaction first, then answers Accepted.
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:02"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"rs1","action":"RemoteStartTransaction","enc":"json","payload":[2,"rs1","RemoteStartTransaction",{"connectorId":1,"idTag":"T"}]}"#
        )
        capture.start(1, at: "08:00:03", dated: "08:00:03")
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:04"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":3,"msgId":"rs1","action":"RemoteStartTransaction","enc":"json","payload":[3,"rs1",{"status":"Accepted"}]}"#
        )
        capture.stop(1, at: "08:01:00", dated: "08:01:00", wh: 1500)
        capture.call(1, at: "08:10:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:10:00"))"}"#)
        let report = try capture.analyse(AnalyzerConfiguration())
        #expect(!report.deviations.contains { (d: Deviation) in d.rule == "command.notCarriedOut" }, "\(report.deviations.map(\.detail))")
        let start = try #require(report.pairs.first?.statistics.commands["RemoteStartTransaction"])
        #expect((start.accepted, start.carriedOut, start.notCarriedOut) == (1, 1, 0), "\(start)")
        #expect(start.toEffect.maximum == 1000)
    }

    @Test("a status sent before a TriggerMessage is answered is not the message it asked for; a command the policy dropped is not observable")
    func notEarlyTrigger() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:01"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"t1","action":"TriggerMessage","enc":"json","payload":[2,"t1","TriggerMessage",{"requestedMessage":"StatusNotification"}]}"#
        )
        // A routine status, before the answer: 1.6 5.17 has the triggered message follow the answer.
        capture.call(1, at: "08:00:02", "StatusNotification", #"{"connectorId":1,"errorCode":"NoError","status":"Available"}"#)
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:03"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":3,"msgId":"t1","action":"TriggerMessage","enc":"json","payload":[3,"t1",{"status":"Accepted"}]}"#
        )
        // A Reset the policy dropped on its way: the charger never got it.
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:04"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"r1","action":"Reset","enc":"json","payload":[2,"r1","Reset",{"type":"Soft"}],"fault":{"rule":"lose","kind":"drop","hit":1}}"#
        )
        capture.call(1, at: "08:10:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:10:00"))"}"#)
        let report = try capture.analyse(AnalyzerConfiguration())
        let commands = try #require(report.pairs.first?.statistics.commands)
        #expect(commands["TriggerMessage"]?.carriedOut == 0 && commands["TriggerMessage"]?.notCarriedOut == 1, "\(String(describing: commands["TriggerMessage"]))")
        #expect(commands["Reset"]?.sent == 1 && commands["Reset"]?.notObservable == 1, "\(String(describing: commands["Reset"]))")
    }

    @Test("a charging limit is carried out by a power reading under it; a charger that keeps drawing more has not; an EV already below, no transaction or a later start show nothing")
    func chargingLimit() throws {
        func limit(
            powerBefore: Int?, powerAfter: [Int], transaction: Bool = true, startSchedule: String? = nil, purpose: String = "TxProfile", unit: String = "W"
        ) throws -> (CommandStatistics, [Deviation]) {
            var capture = OutageCapture(.v16)
            capture.open(1, at: "08:00:00")
            if transaction { capture.start(1, at: "08:00:01", dated: "08:00:01") }
            func power(_ time: String, _ watts: Int) {
                capture.call(1, at: time, "MeterValues", #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(OutageCapture.ts(time))","sampledValue":[{"value":"\#(watts)","measurand":"Power.Active.Import","unit":"W"}]}]}"#)
            }
            if let powerBefore { power("08:00:30", powerBefore) }
            let schedule = startSchedule.map { #","startSchedule":"\#($0)""# } ?? ""
            capture.call(
                1, at: "08:01:00", "SetChargingProfile",
                #"{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"\#(purpose)","transactionId":7,"chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"\#(unit)","chargingSchedulePeriod":[{"startPeriod":0,"limit":4000}]\#(schedule)}}}"#,
                answer: #"{"status":"Accepted"}"#, toCSMS: false
            )
            for (index, watts) in powerAfter.enumerated() { power("08:01:\(10 + index * 10)", watts) }
            capture.call(1, at: "08:10:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:10:00"))"}"#)
            let report = try capture.analyse(AnalyzerConfiguration())
            let statistics = try #require(report.pairs.first?.statistics.commands["SetChargingProfile"])
            return (statistics, report.deviations.filter { (d: Deviation) in d.rule == "command.notCarriedOut" })
        }
        let (kept, keptFindings) = try limit(powerBefore: 11000, powerAfter: [3950])
        #expect((kept.carriedOut, kept.notCarriedOut) == (1, 0) && keptFindings.isEmpty && kept.toEffect.maximum == 10000, "\(kept)")
        let (ignored, ignoredFindings) = try limit(powerBefore: 11000, powerAfter: [11000, 11000, 11000])
        #expect((ignored.carriedOut, ignored.notCarriedOut) == (0, 1), "\(ignored)")
        #expect(ignoredFindings.first?.detail.contains("a power reading at or below the 4000 W limit on connector 1") == true, "\(ignoredFindings.map(\.detail))")
        let (below, _) = try limit(powerBefore: 3000, powerAfter: [3000])
        #expect(below.notObservable == 1 && below.notCarriedOut == 0, "the EV draws less than the limit: \(below)")
        let (idle, _) = try limit(powerBefore: nil, powerAfter: [11000], transaction: false)
        #expect(idle.notObservable == 1, "for the next transaction: \(idle)")
        let (later, _) = try limit(powerBefore: 11000, powerAfter: [11000], startSchedule: OutageCapture.ts("09:00:00"))
        #expect(later.notObservable == 1, "starts later: \(later)")
        // A default profile may be overruled by a TxProfile, a limit in A depends on the voltage: neither is judged.
        let (fallback, _) = try limit(powerBefore: 11000, powerAfter: [11000], purpose: "TxDefaultProfile")
        #expect(fallback.notObservable == 1 && fallback.notCarriedOut == 0, "\(fallback)")
        let (amperes, _) = try limit(powerBefore: 11000, powerAfter: [11000], unit: "A")
        #expect(amperes.notObservable == 1 && amperes.notCarriedOut == 0, "\(amperes)")
        let (silent, _) = try limit(powerBefore: 11000, powerAfter: [])
        #expect(silent.notObservable == 1 && silent.notCarriedOut == 0, "no power reading after: \(silent)")
    }

    @Test("a charge point released while a command waits for its effect leaves the command undecided, not dropped")
    func releasedWhileWaiting() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.backendCall(1, at: "08:00:01", "Reset", #"{"type":"Soft"}"#, answer: #"{"status":"Accepted"}"#)
        capture.close(1, at: "08:00:05")
        // Another charger's record, 25 s later: past a state retention of 0 s, within the Reset's window.
        capture.lines.append(#"{"ts":"\#(OutageCapture.ts("08:00:30"))","kind":"open","conn":2,"chargePoint":"CP-2","chosen":"ocpp1.6","version":"1.6"}"#)
        var configuration = AnalyzerConfiguration()
        configuration.stateRetentionSeconds = 0
        let report = try capture.analyse(configuration)
        let reset = try #require(report.pairs.flatMap { $0.statistics.commands.compactMap { $0.key == "Reset" ? $0.value : nil } }.first)
        #expect((reset.accepted, reset.undecided, reset.notCarriedOut) == (1, 1, 0), "\(reset)")
    }
}

/// Whose side each finding is on (docs/reports.md, "Whose side").
@Suite("Findings name the side responsible")
struct SideTests {
    @Test("a message's form is its sender's, an unanswered CALL the receiver's, a message the policy's fault touched the fault's")
    func sides() throws {
        let long = String(repeating: "x", count: 40)
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        func frame(_ time: String, _ direction: String, _ id: String, fault: String = "") -> String {
            #"{"ts":"\#(OutageCapture.ts(time))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"\#(direction)","opcode":"text","msgType":2,"msgId":"\#(id)","action":"Heartbeat","enc":"json","payload":[2,"\#(id)","Heartbeat",{}]\#(fault)}"#
        }
        // The charger's CALL with an id over 36 characters, answered.
        capture.lines.append(frame("08:00:01", "toCSMS", long))
        capture.lines.append(#"{"ts":"\#(OutageCapture.ts("08:00:01"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":3,"msgId":"\#(long)","action":"Heartbeat","enc":"json","payload":[3,"\#(long)",{"currentTime":"\#(OutageCapture.ts("08:00:01"))"}]}"#)
        // The backend's CALL with such an id, which the charger never answers.
        capture.lines.append(frame("08:00:02", "toCharger", long + "b"))
        // A charger CALL the policy's fault touched, with such an id too.
        capture.lines.append(frame("08:00:03", "toCSMS", long + "c", fault: #","fault":{"rule":"slow","kind":"delay","hit":1,"ms":10}"#))
        capture.lines.append(#"{"ts":"\#(OutageCapture.ts("08:00:03"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":3,"msgId":"\#(long)c","action":"Heartbeat","enc":"json","payload":[3,"\#(long)c",{"currentTime":"\#(OutageCapture.ts("08:00:03"))"}]}"#)
        // One the policy malformed on its way: the capture holds it as the charger wrote it, so it stays the charger's.
        capture.lines.append(frame("08:00:04", "toCSMS", long + "d", fault: #","fault":{"rule":"mangle","kind":"malformed","hit":1,"malformation":"wrongType"}"#))
        capture.lines.append(#"{"ts":"\#(OutageCapture.ts("08:00:04"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":3,"msgId":"\#(long)d","action":"Heartbeat","enc":"json","payload":[3,"\#(long)d",{"currentTime":"\#(OutageCapture.ts("08:00:04"))"}]}"#)
        // One the proxy itself sent to the backend for the policy (an injected message): the fault's.
        capture.lines.append(frame("08:00:04", "toCSMS", long + "e", fault: #","injected":true,"fault":{"rule":"poke","kind":"inject","hit":1}"#))
        capture.lines.append(#"{"ts":"\#(OutageCapture.ts("08:00:04"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":3,"msgId":"\#(long)e","action":"Heartbeat","enc":"json","payload":[3,"\#(long)e",{"currentTime":"\#(OutageCapture.ts("08:00:04"))"}]}"#)
        capture.call(1, at: "08:05:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:05:00"))"}"#)
        capture.close(1, at: "08:05:01")
        let report = try capture.analyse(AnalyzerConfiguration())
        let sides = report.deviations.map { "\($0.rule) \($0.direction?.rawValue ?? "") \($0.side.rawValue)" }
        // The capture holds what the charger wrote, before a delay or a malformation: the too-long ids stay the
        // charger's. Only the message the proxy made is the fault's.
        #expect(sides == [
            "rpc.messageIdTooLong toCSMS charger", "rpc.messageIdTooLong toCharger backend", "rpc.messageIdTooLong toCSMS charger",
            "rpc.messageIdTooLong toCSMS charger", "rpc.messageIdTooLong toCSMS fault", "rpc.timeout toCharger charger",
        ], "\(sides)")
        #expect(report.deviations[4].sideReason.contains("the proxy sent this message for the policy's fault 'poke' (inject)"), "\(report.deviations[4].sideReason)")
        #expect(report.countsBySide == [.charger: 4, .backend: 1, .fault: 1])
        // The fault's finding counts in no severity of the pair: 5 vendor errors, not 6.
        #expect(report.pairs.first?.statistics.severities[.error] == 5, "\(report.pairs.first?.statistics.severities ?? [:])")
        let json = try JSONParser.parse(report.render(.json))
        #expect(json["reportFormat"] == 2 && json["summary"]?["bySide"]?["fault"] == 1 && json["deviations"]?[5]?["side"] == "charger")
        #expect(json["pairs"]?[0]?["bySide"]?["fault"] == 1)
        #expect(report.render(.md).contains("## Findings by side"))
    }
}
