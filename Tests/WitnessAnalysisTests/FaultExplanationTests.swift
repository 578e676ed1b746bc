import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

/// When the policy's own fault explains what a vendor did not do, the outcome counts against neither vendor
/// (docs/reports.md, "Whose side": the fault touched the stimulus, its answer or the awaited event, or cut the
/// connection inside the window).
@Suite("A fault that explains a failure takes it off both vendors")
struct FaultExplanationTests {
    /// Puts `fault` on the capture's line `index` (counted from the end: 1 is the last line).
    static func fault(_ capture: inout OutageCapture, fromEnd index: Int, _ fault: String) {
        let position = capture.lines.count - index
        capture.lines[position] = String(capture.lines[position].dropLast()) + #","fault":"# + fault + "}"
    }

    static let stopCheck = """
        checks:
          - name: stopped
            area: meteringBilling
            when: {direction: toCharger, type: CALLRESULT, action: StartTransaction}
            expect: {direction: toCSMS, type: CALL, action: StopTransaction}
            within: 60s
        """

    func stopped(_ build: (inout OutageCapture) -> Void) throws -> CheckResult {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        build(&capture)
        capture.call(1, at: "08:10:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:10:00"))"}"#)
        var configuration = AnalyzerConfiguration()
        configuration.checks = try PolicyLoader.parse(Self.stopCheck).checks
        let report = try capture.analyse(configuration)
        return try #require(report.pairs.flatMap(\.areas).flatMap(\.checks).first { $0.name == "stopped" })
    }

    @Test("a transaction never stopped fails on the charger's side; the same after the policy cut the connection is inconclusive, on the fault's")
    func windowCheck() throws {
        let plain = try self.stopped { capture in
            capture.start(1, at: "08:00:01", dated: "08:00:01")
            capture.meter(1, at: "08:00:10", dated: "08:00:10", wh: 1200)
        }
        #expect(plain.verdict == .fail && plain.side == .charger, "\(plain)")
        #expect(plain.sideReason == "the charger did not send what the check expects")

        let cut = try self.stopped { capture in
            capture.start(1, at: "08:00:01", dated: "08:00:01")
            capture.meter(1, at: "08:00:10", dated: "08:00:10", wh: 1200)
            // The policy closes the connection on this reading: nothing more could come within the window.
            Self.fault(&capture, fromEnd: 2, #"{"rule":"cut","kind":"disconnect","hit":1,"mode":"reset","side":"both"}"#)
        }
        #expect(cut.verdict == .inconclusive && cut.side == .fault, "\(cut)")
        #expect(cut.explainedByFault == 1 && cut.counts[.fail] == nil)
        #expect(cut.detail.contains("the policy's fault 'cut' (disconnect) touched") && cut.detail.contains("counts against neither vendor"), "\(cut.detail)")
        #expect(cut.refs.contains { $0.hasSuffix(":5") }, "the faulted line is evidence: \(cut.refs)")
        #expect(cut.json["side"] == "fault" && cut.json["stimuli"]?["explainedByFault"] == 1)
    }

    @Test("a stimulus the policy made (an answer on the backend's behalf) explains nothing: the test is the charger's reaction to it")
    func madeStimulus() throws {
        let result = try self.stopped { capture in
            capture.start(1, at: "08:00:01", dated: "08:00:01")
            // The charger's StartTransaction, answered by the proxy (the answer is the proxy's own message).
            Self.fault(&capture, fromEnd: 2, #"{"rule":"accept","kind":"respond","hit":1}"#)
            Self.fault(&capture, fromEnd: 1, #"{"rule":"accept","kind":"respond","hit":1},"injected":true"#)
        }
        #expect(result.verdict == .fail && result.side == .charger, "\(result)")
    }

    @Test("a command the proxy answered in the charger's place never reached it: its effect not coming is the fault's")
    func answeredInPlace() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.call(1, at: "08:00:01", "Reset", #"{"type":"Soft"}"#, answer: #"{"status":"Accepted"}"#, toCSMS: false)
        Self.fault(&capture, fromEnd: 2, #"{"rule":"fake-accept","kind":"respond","hit":1}"#)
        Self.fault(&capture, fromEnd: 1, #"{"rule":"fake-accept","kind":"respond","hit":1},"injected":true"#)
        capture.call(1, at: "08:05:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:05:00"))"}"#)
        let report = try capture.analyse(AnalyzerConfiguration())
        // The proxy's answer is not the charger's: nothing answered, nothing awaited, nothing against the charger.
        #expect(!report.deviations.contains { (d: Deviation) in d.rule == "command.notCarriedOut" && d.side != .fault }, "\(report.deviations.map(\.detail))")
    }

    @Test("a check whose stimulus is a blackhole outage is not explained by the frames that outage swallowed")
    func blackholeStimulus() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.call(1, at: "08:00:01", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:00:01"))"}"#)
        Self.fault(&capture, fromEnd: 2, #"{"rule":"bh","kind":"outage","hit":1,"mode":"blackhole","seconds":20,"scope":"charger"}"#)
        capture.call(1, at: "08:00:05", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:00:05"))"}"#)
        Self.fault(&capture, fromEnd: 2, #"{"kind":"outage","mode":"blackhole"}"#)
        capture.call(1, at: "08:05:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:05:00"))"}"#)
        var configuration = AnalyzerConfiguration()
        configuration.checks = try PolicyLoader.parse("""
            checks:
              - name: status-after-outage
                area: communicationLoss
                when: {fault: bh}
                expect: {direction: toCSMS, type: CALL, action: StatusNotification}
                within: 60s
            """).checks
        let report = try capture.analyse(configuration)
        let result = try #require(report.pairs.flatMap(\.areas).flatMap(\.checks).first)
        #expect(result.verdict == .fail && result.side == .charger, "\(result)")
    }

    @Test("a delay explains only what it held past the window: 10 ms on the stimulus leaves the failure the charger's")
    func shortDelay() throws {
        let result = try self.stopped { capture in
            capture.start(1, at: "08:00:01", dated: "08:00:01")
            Self.fault(&capture, fromEnd: 1, #"{"rule":"slow","kind":"delay","hit":1,"ms":10}"#)
        }
        #expect(result.verdict == .fail && result.side == .charger, "\(result)")
        let long = try self.stopped { capture in
            capture.start(1, at: "08:00:01", dated: "08:00:01")
            Self.fault(&capture, fromEnd: 1, #"{"rule":"slow","kind":"delay","hit":1,"ms":90000}"#)
        }
        #expect(long.verdict == .inconclusive && long.side == .fault, "\(long)")
    }

    @Test("a CALL the policy dropped is no vendor's timeout, and counts in no severity; one merely delayed 10 ms is the receiver's")
    func droppedCall() throws {
        var capture = OutageCapture(.v16)
        capture.open(1, at: "08:00:00")
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:01"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"b1","action":"GetConfiguration","enc":"json","payload":[2,"b1","GetConfiguration",{}],"fault":{"rule":"lose","kind":"drop","hit":1}}"#
        )
        capture.lines.append(
            #"{"ts":"\#(OutageCapture.ts("08:00:02"))","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":2,"msgId":"b2","action":"GetConfiguration","enc":"json","payload":[2,"b2","GetConfiguration",{}],"fault":{"rule":"slow","kind":"delay","hit":1,"ms":10}}"#
        )
        capture.call(1, at: "08:05:00", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:05:00"))"}"#)
        let report = try capture.analyse(AnalyzerConfiguration())
        let timeouts = report.deviations.filter { $0.rule == "rpc.timeout" }.map { "\($0.messageId ?? "") \($0.side.rawValue)" }
        #expect(timeouts == ["b1 fault", "b2 charger"], "\(timeouts)")
        #expect(report.deviations.first { $0.messageId == "b1" }?.sideReason.contains("'lose' (drop)") == true)
        let severity = try #require(RuleCatalog.byId["rpc.timeout"]?.severity)
        #expect(report.pairs.first?.statistics.severities[severity] == 1, "only the charger's own timeout counts")
    }

    @Test("an accepted Reset whose reboot an outage of the policy's kept off the wire is not observable, not 'not carried out'")
    func commandUnderOutage() throws {
        func reset(outage: Bool) throws -> (CommandStatistics, [Deviation]) {
            var capture = OutageCapture(.v16)
            capture.open(1, at: "08:00:00")
            capture.call(1, at: "08:00:01", "Reset", #"{"type":"Soft"}"#, answer: #"{"status":"Accepted"}"#, toCSMS: false)
            capture.call(1, at: "08:00:05", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:00:05"))"}"#)
            if outage { Self.fault(&capture, fromEnd: 2, #"{"rule":"backend-down","kind":"outage","hit":1,"seconds":600,"mode":"refuse","scope":"charger"}"#) }
            capture.close(1, at: "08:00:06")
            capture.open(2, at: "08:30:00")
            capture.call(2, at: "08:30:01", "Heartbeat", "{}", answer: #"{"currentTime":"\#(OutageCapture.ts("08:30:01"))"}"#)
            let report = try capture.analyse(AnalyzerConfiguration())
            let statistics = try #require(report.pairs.first?.statistics.commands["Reset"])
            return (statistics, report.deviations.filter { $0.rule == "command.notCarriedOut" })
        }
        let (plain, plainFindings) = try reset(outage: false)
        #expect((plain.notCarriedOut, plain.notObservable) == (1, 0) && plainFindings.map(\.side) == [.charger], "\(plain)")
        let (cut, cutFindings) = try reset(outage: true)
        #expect((cut.notCarriedOut, cut.notObservable) == (0, 1), "\(cut)")
        #expect(cutFindings.map(\.side) == [.fault] && cutFindings.first?.sideReason.contains("'backend-down' (outage)") == true, "\(cutFindings)")
    }
}
