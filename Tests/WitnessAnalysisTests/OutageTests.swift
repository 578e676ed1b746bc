import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture

/// A capture of one charger written line by line, with its connections opening and closing, so that the
/// analyzer sees outages (docs/rules.md: tx.seqNoGap, tx.seqNoTimeOrder, tx.offlineNotFlagged, tx.stampedAtDelivery).
struct OutageCapture {
    var version: OCPPVersion
    var lines: [String] = [#"{"ts":"2026-12-04T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#]
    var number = 0

    init(_ version: OCPPVersion) { self.version = version }

    /// `time` is HH:MM:SS(.ffffff) on 2026-12-04, when the proxy saw the record.
    static func ts(_ time: String) -> String { "2026-12-04T\(time.count == 8 ? time + ".000000" : time)Z" }

    /// A rotated part of the same proxy run: its header repeats the run's start.
    mutating func rotate(at time: String) {
        self.lines.append(#"{"ts":"\#(Self.ts(time))","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#)
    }

    mutating func open(_ conn: Int, at time: String) {
        let version = self.version.rawValue
        self.lines.append(#"{"ts":"\#(Self.ts(time))","kind":"open","conn":\#(conn),"chargePoint":"CP-1","chosen":"\#(self.version.subprotocol)","version":"\#(version)"}"#)
    }

    mutating func close(_ conn: Int, at time: String) {
        self.lines.append(#"{"ts":"\#(Self.ts(time))","kind":"close","conn":\#(conn),"chargePoint":"CP-1","by":"charger","code":1006}"#)
    }

    /// A CALL to the CSMS and its answer.
    /// `toCSMS`: a CALL of the charger's (else of the backend's) and the other side's answer.
    mutating func call(_ conn: Int, at time: String, _ action: String, _ payload: String, answer: String = "{}", toCSMS: Bool = true) {
        self.number += 1
        let id = (toCSMS ? "m" : "b") + "\(self.number)"
        let (request, response) = toCSMS ? ("toCSMS", "toCharger") : ("toCharger", "toCSMS")
        self.lines.append(
            #"{"ts":"\#(Self.ts(time))","kind":"frame","conn":\#(conn),"chargePoint":"CP-1","dir":"\#(request)","opcode":"text","msgType":2,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[2,"\#(id)","\#(action)",\#(payload)]}"#
        )
        self.lines.append(
            #"{"ts":"\#(Self.ts(time))","kind":"frame","conn":\#(conn),"chargePoint":"CP-1","dir":"\#(response)","opcode":"text","msgType":3,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[3,"\#(id)",\#(answer)]}"#
        )
    }

    /// A 2.0.1 TransactionEvent of transaction tx1 on EVSE 1.
    mutating func event(
        _ conn: Int, at time: String, _ type: String, seqNo: Int, dated: String, offline: Bool = false, wh: Int? = nil, transaction: String = "tx1", evse: Int = 1
    ) {
        let offlineField = offline ? #","offline":true"# : ""
        let meter = wh.map { #","meterValue":[{"timestamp":"\#(Self.ts(dated))","sampledValue":[{"value":\#($0)}]}]"# } ?? ""
        self.call(
            conn, at: time, "TransactionEvent",
            #"{"eventType":"\#(type)","timestamp":"\#(Self.ts(dated))","triggerReason":"MeterValuePeriodic","seqNo":\#(seqNo),"transactionInfo":{"transactionId":"\#(transaction)"},"evse":{"id":\#(evse),"connectorId":1}\#(offlineField)\#(meter)}"#
        )
    }

    /// A 1.6 MeterValues of transaction 7 on connector 1.
    mutating func meter(_ conn: Int, at time: String, dated: String, wh: Int) {
        self.call(conn, at: time, "MeterValues", #"{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(Self.ts(dated))","sampledValue":[{"value":"\#(wh)"}]}]}"#)
    }

    mutating func start(_ conn: Int, at time: String, dated: String) {
        self.call(
            conn, at: time, "StartTransaction", #"{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"\#(Self.ts(dated))"}"#,
            answer: #"{"transactionId":7,"idTagInfo":{"status":"Accepted"}}"#
        )
    }

    mutating func stop(_ conn: Int, at time: String, dated: String, wh: Int) {
        self.call(conn, at: time, "StopTransaction", #"{"transactionId":7,"meterStop":\#(wh),"timestamp":"\#(Self.ts(dated))"}"#, answer: #"{"idTagInfo":{"status":"Accepted"}}"#)
    }

    func analyse() throws -> [Deviation] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outage-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try (self.lines.joined(separator: "\n") + "\n").write(toFile: directory + "/capture.jsonl", atomically: true, encoding: .utf8)
        let analyzer = Analyzer(schemas: nil)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        return analyzer.finish().deviations
    }
}

@Suite("Outages, queued delivery and 2.0.1 event numbering")
struct OutageTests {
    @Test("a seqNo missing when the capture ends is a gap; one delivered after the Ended event fills it")
    func seqNoGap() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01")
        capture.event(1, at: "08:01:00", "Updated", seqNo: 1, dated: "08:01:00")
        capture.event(1, at: "08:03:00", "Updated", seqNo: 3, dated: "08:03:00")
        capture.event(1, at: "08:04:00", "Ended", seqNo: 5, dated: "08:04:00")
        var late = capture
        late.event(1, at: "08:05:00", "Updated", seqNo: 2, dated: "08:02:00")
        capture.close(1, at: "08:10:00")
        late.close(1, at: "08:10:00")

        let gaps = try capture.analyse().filter { $0.rule == "tx.seqNoGap" }
        #expect(gaps.count == 1)
        #expect(gaps.first?.detail.contains("seqNo 2, 4") == true, "\(gaps.first?.detail ?? "")")
        #expect(gaps.first?.ref?.hasSuffix(":9") == true)
        // Event 2, delivered after the end (allowed reordering), leaves event 4 missing alone.
        let after = try late.analyse()
        #expect(after.filter { $0.rule == "tx.seqNoGap" }.first?.detail.contains("seqNo 4 ") == true)
        #expect(after.map(\.rule).sorted() == ["tx.deliveredAfterStop", "tx.seqNoGap"])
    }

    @Test("queued events of one transaction do not teach the charger's clock lag: a second transaction's queued event of the same outage is still found")
    func queuedEventsAreNoClockReading() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.close(1, at: "08:10:00")
        capture.open(2, at: "08:30:00")
        // Both transactions happened in the outage; the queue comes out at the reconnection, none flagged offline.
        capture.event(2, at: "08:30:01", "Started", seqNo: 0, dated: "08:12:00", wh: 1000)
        capture.event(2, at: "08:30:02", "Updated", seqNo: 1, dated: "08:15:00", wh: 1200)
        capture.event(2, at: "08:30:03", "Ended", seqNo: 2, dated: "08:18:00", wh: 1300)
        capture.event(2, at: "08:30:04", "Started", seqNo: 0, dated: "08:20:00", wh: 1300, transaction: "tx2", evse: 2)
        capture.event(2, at: "08:31:00", "Ended", seqNo: 1, dated: "08:31:00", wh: 1400, transaction: "tx2", evse: 2)
        capture.close(2, at: "08:40:00")
        let found = try capture.analyse().filter { $0.rule == "tx.offlineNotFlagged" }
        // Before, the delay of tx1's Updated event (15 minutes) was taken for the clock's lag, and tx2's Started event,
        // read 15 minutes later on the proxy's clock, fell after the outage.
        #expect(found.map { $0.detail.contains("transaction tx2") } == [false, true], "\(found.map(\.detail))")
    }

    @Test("an event numbered after another but dated before it is out of order")
    func seqNoTimeOrder() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01")
        capture.event(1, at: "08:05:00", "Updated", seqNo: 1, dated: "08:05:00")
        capture.event(1, at: "08:06:00", "Updated", seqNo: 2, dated: "08:03:00")
        capture.event(1, at: "08:07:00", "Ended", seqNo: 3, dated: "08:07:00")
        capture.close(1, at: "08:10:00")
        #expect(try capture.analyse().map(\.rule) == ["tx.seqNoTimeOrder"])
    }

    @Test("2.0.1 events that happened while the charger had no connection say offline: true; one that does not is a finding")
    func offlineFlag() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01", wh: 1000)
        capture.close(1, at: "08:10:00")
        capture.open(2, at: "08:30:00")
        capture.event(2, at: "08:30:01", "Updated", seqNo: 1, dated: "08:20:00", offline: true, wh: 1500)
        capture.event(2, at: "08:30:02", "Updated", seqNo: 2, dated: "08:25:00", wh: 1800)
        capture.event(2, at: "08:31:00", "Ended", seqNo: 3, dated: "08:31:00", wh: 2000)
        capture.close(2, at: "08:40:00")
        let found = try capture.analyse()
        #expect(found.map(\.rule) == ["tx.offlineNotFlagged"])

        // One finding per transaction and outage: the events after the first are the same defect.
        var unflagged = OutageCapture(.v201)
        unflagged.open(1, at: "08:00:00")
        unflagged.close(1, at: "08:10:00")
        unflagged.open(2, at: "08:30:00")
        unflagged.event(2, at: "08:30:01", "Started", seqNo: 0, dated: "08:12:00", wh: 1000)
        unflagged.event(2, at: "08:30:02", "Updated", seqNo: 1, dated: "08:12:00", wh: 1200)
        unflagged.event(2, at: "08:30:03", "Updated", seqNo: 2, dated: "08:15:00", wh: 1500)
        unflagged.event(2, at: "08:31:00", "Ended", seqNo: 3, dated: "08:31:00", wh: 2000)
        unflagged.close(2, at: "08:40:00")
        let once = try unflagged.analyse()
        #expect(once.map(\.rule) == ["tx.offlineNotFlagged"])
        #expect(once.first?.detail.contains("Started event") == true)
        // The event of 08:25 (seqNo 2), with the open record that ended the outage.
        #expect(found.first?.ref?.hasSuffix(":9") == true)
        #expect(found.first?.related == [found.first?.ref.map { $0.replacingOccurrences(of: ":9", with: ":6") } ?? ""])
    }

    @Test("a 1.6 start stamped after the outage during which its readings were taken; a session that began at the reconnection is no finding")
    func startStampedAtDelivery() throws {
        var queued = OutageCapture(.v16)
        queued.open(1, at: "08:00:00")
        queued.close(1, at: "08:10:00")
        queued.open(2, at: "08:30:00")
        queued.start(2, at: "08:30:01", dated: "08:30:01")
        queued.meter(2, at: "08:30:02", dated: "08:15:00", wh: 1500)
        queued.meter(2, at: "08:30:03", dated: "08:20:00", wh: 1800)
        queued.stop(2, at: "08:40:00", dated: "08:40:00", wh: 2500)
        queued.close(2, at: "08:45:00")
        let found = try queued.analyse()
        #expect(found.map(\.rule) == ["tx.stampedAtDelivery"])
        #expect(found.first?.severity == .error)

        var fresh = OutageCapture(.v16)
        fresh.open(1, at: "08:00:00")
        fresh.close(1, at: "08:10:00")
        fresh.open(2, at: "08:30:00")
        fresh.start(2, at: "08:30:05", dated: "08:30:05")
        fresh.meter(2, at: "08:31:00", dated: "08:31:00", wh: 1500)
        fresh.meter(2, at: "08:32:00", dated: "08:32:00", wh: 1800)
        fresh.stop(2, at: "08:40:00", dated: "08:40:00", wh: 2500)
        fresh.close(2, at: "08:45:00")
        #expect(try fresh.analyse().map(\.rule) == [])
    }

    @Test("a hostile seqNo (-2^63, 2^62) is not followed and crashes nothing")
    func hostileSeqNo() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.call(1, at: "08:00:01", "TransactionEvent", #"{"eventType":"Started","timestamp":"2026-12-04T08:00:01Z","triggerReason":"Authorized","seqNo":-9223372036854775808,"transactionInfo":{"transactionId":"tx1"}}"#)
        capture.call(1, at: "08:00:02", "TransactionEvent", #"{"eventType":"Updated","timestamp":"2026-12-04T08:00:02Z","triggerReason":"MeterValuePeriodic","seqNo":4611686018427387904,"transactionInfo":{"transactionId":"tx1"}}"#)
        capture.event(1, at: "08:00:03", "Ended", seqNo: 3, dated: "08:00:03")
        capture.close(1, at: "08:10:00")
        #expect(try capture.analyse().map(\.rule) == [])
    }

    @Test("a rotated capture part is no outage: a connection replaced across the rotation leaves live events unflagged")
    func rotationIsNoOutage() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01")
        capture.rotate(at: "08:01:00")
        // The charger's new connection opens before the old one's close is recorded.
        capture.open(2, at: "08:02:00")
        capture.close(1, at: "08:02:01")
        capture.event(2, at: "08:03:00", "Updated", seqNo: 1, dated: "08:03:00")
        capture.open(3, at: "08:04:00")
        capture.close(2, at: "08:04:01")
        capture.event(3, at: "08:05:00", "Ended", seqNo: 2, dated: "08:05:00")
        capture.close(3, at: "08:10:00")
        #expect(try capture.analyse().map(\.rule) == [])
    }

    @Test("a charger whose clock runs 30 s behind sends live events dated inside the proxy's outage: judged on the proxy's clock, no finding")
    func slowClock() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.event(1, at: "08:00:31", "Started", seqNo: 0, dated: "08:00:01")
        capture.event(1, at: "08:05:30", "Updated", seqNo: 1, dated: "08:05:00")
        capture.close(1, at: "08:10:00")
        capture.open(2, at: "08:15:00")
        // Sent live at 08:15:10, stamped 08:14:40 by the slow clock: inside the outage only on the charger's clock.
        capture.event(2, at: "08:15:10", "Updated", seqNo: 2, dated: "08:14:40")
        capture.event(2, at: "08:16:30", "Ended", seqNo: 3, dated: "08:16:00")
        capture.close(2, at: "08:20:00")
        #expect(try capture.analyse().map(\.rule) == [])
    }

    @Test("a charger numbering its events per station: two transactions at once share one counter, and neither has a gap")
    func sharedCounter() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01", transaction: "a", evse: 1)
        capture.event(1, at: "08:00:02", "Started", seqNo: 1, dated: "08:00:02", transaction: "b", evse: 2)
        capture.event(1, at: "08:01:00", "Updated", seqNo: 2, dated: "08:01:00", transaction: "a", evse: 1)
        capture.event(1, at: "08:01:01", "Updated", seqNo: 3, dated: "08:01:01", transaction: "b", evse: 2)
        capture.event(1, at: "08:02:00", "Ended", seqNo: 4, dated: "08:02:00", transaction: "a", evse: 1)
        capture.event(1, at: "08:02:01", "Ended", seqNo: 5, dated: "08:02:01", transaction: "b", evse: 2)
        capture.close(1, at: "08:10:00")
        #expect(try capture.analyse().map(\.rule) == [])

        // Numbered per transaction from 0, a real gap is still one.
        var gap = OutageCapture(.v201)
        gap.open(1, at: "08:00:00")
        gap.event(1, at: "08:00:01", "Started", seqNo: 0, dated: "08:00:01", transaction: "a", evse: 1)
        gap.event(1, at: "08:00:02", "Started", seqNo: 0, dated: "08:00:02", transaction: "b", evse: 2)
        gap.event(1, at: "08:01:00", "Updated", seqNo: 1, dated: "08:01:00", transaction: "a", evse: 1)
        gap.event(1, at: "08:01:01", "Updated", seqNo: 2, dated: "08:01:01", transaction: "b", evse: 2)
        gap.event(1, at: "08:02:00", "Ended", seqNo: 2, dated: "08:02:00", transaction: "a", evse: 1)
        gap.event(1, at: "08:02:01", "Ended", seqNo: 3, dated: "08:02:01", transaction: "b", evse: 2)
        gap.close(1, at: "08:10:00")
        let found = try gap.analyse()
        #expect(found.map(\.rule) == ["tx.seqNoGap"])
        #expect(found.first?.detail.contains("transaction b") == true && found.first?.detail.contains("seqNo 1 ") == true)
    }

    @Test("a 2.0.1 Started event stamped at the reconnection and events dated in the outage are one finding")
    func startedStampedLate() throws {
        var capture = OutageCapture(.v201)
        capture.open(1, at: "08:00:00")
        capture.close(1, at: "08:10:00")
        capture.open(2, at: "08:30:00")
        capture.event(2, at: "08:30:01", "Started", seqNo: 0, dated: "08:30:01", offline: true, wh: 1000)
        capture.event(2, at: "08:30:02", "Updated", seqNo: 1, dated: "08:15:00", offline: true, wh: 1500)
        capture.event(2, at: "08:40:00", "Ended", seqNo: 2, dated: "08:40:00", wh: 2000)
        capture.close(2, at: "08:45:00")
        let found = try capture.analyse()
        #expect(found.map(\.rule) == ["tx.stampedAtDelivery"], "\(found.map(\.detail))")
    }
}
