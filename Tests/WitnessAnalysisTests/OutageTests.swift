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

    mutating func open(_ conn: Int, at time: String) {
        let version = self.version.rawValue
        self.lines.append(#"{"ts":"\#(Self.ts(time))","kind":"open","conn":\#(conn),"chargePoint":"CP-1","chosen":"\#(self.version.subprotocol)","version":"\#(version)"}"#)
    }

    mutating func close(_ conn: Int, at time: String) {
        self.lines.append(#"{"ts":"\#(Self.ts(time))","kind":"close","conn":\#(conn),"chargePoint":"CP-1","by":"charger","code":1006}"#)
    }

    /// A CALL to the CSMS and its answer.
    mutating func call(_ conn: Int, at time: String, _ action: String, _ payload: String, answer: String = "{}") {
        self.number += 1
        let id = "m\(self.number)"
        self.lines.append(
            #"{"ts":"\#(Self.ts(time))","kind":"frame","conn":\#(conn),"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":2,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[2,"\#(id)","\#(action)",\#(payload)]}"#
        )
        self.lines.append(
            #"{"ts":"\#(Self.ts(time))","kind":"frame","conn":\#(conn),"chargePoint":"CP-1","dir":"toCharger","opcode":"text","msgType":3,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[3,"\#(id)",\#(answer)]}"#
        )
    }

    /// A 2.0.1 TransactionEvent of transaction tx1 on EVSE 1.
    mutating func event(_ conn: Int, at time: String, _ type: String, seqNo: Int, dated: String, offline: Bool = false, wh: Int? = nil) {
        let offlineField = offline ? #","offline":true"# : ""
        let meter = wh.map { #","meterValue":[{"timestamp":"\#(Self.ts(dated))","sampledValue":[{"value":\#($0)}]}]"# } ?? ""
        self.call(
            conn, at: time, "TransactionEvent",
            #"{"eventType":"\#(type)","timestamp":"\#(Self.ts(dated))","triggerReason":"MeterValuePeriodic","seqNo":\#(seqNo),"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1}\#(offlineField)\#(meter)}"#
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

        // Every event that happened offline without the flag is its own finding, the Started event's too.
        var unflagged = OutageCapture(.v201)
        unflagged.open(1, at: "08:00:00")
        unflagged.close(1, at: "08:10:00")
        unflagged.open(2, at: "08:30:00")
        unflagged.event(2, at: "08:30:01", "Started", seqNo: 0, dated: "08:12:00", wh: 1000)
        unflagged.event(2, at: "08:30:02", "Updated", seqNo: 1, dated: "08:12:00", wh: 1200)
        unflagged.event(2, at: "08:30:03", "Updated", seqNo: 2, dated: "08:15:00", wh: 1500)
        unflagged.event(2, at: "08:31:00", "Ended", seqNo: 3, dated: "08:31:00", wh: 2000)
        unflagged.close(2, at: "08:40:00")
        #expect(try unflagged.analyse().map(\.rule) == ["tx.offlineNotFlagged", "tx.offlineNotFlagged", "tx.offlineNotFlagged"])
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
}
