import Foundation
import NIOCore
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture

/// Writes a capture through the real writer from connections of several charge points at given times.
struct TimedCapture {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("retention-\(UUID().uuidString)").path
    let writer: CaptureWriter
    let start: Int64 = 1_795_000_000_000_000
    private var correlators: [Int: CallCorrelator<Void>] = [:]

    init(header: CaptureHeader) throws {
        self.writer = try CaptureWriter(configuration: .init(directory: self.directory), header: header)
    }

    func ts(_ seconds: Double) -> Timestamp { Timestamp(microseconds: self.start + Int64(seconds * 1_000_000)) }

    func open(_ connection: Int, _ chargePoint: String, at seconds: Double) {
        self.writer.record(.record(kind: .open, ts: self.ts(seconds), connection: UInt64(connection), chargePoint: chargePoint, direction: nil, fields: ["chosen": "ocpp1.6", "version": "1.6"]))
    }

    func close(_ connection: Int, _ chargePoint: String, at seconds: Double) {
        self.writer.record(.record(kind: .close, ts: self.ts(seconds), connection: UInt64(connection), chargePoint: chargePoint, direction: nil, fields: [:]))
    }

    mutating func frame(_ connection: Int, _ chargePoint: String, at seconds: Double, _ text: String, _ direction: Direction) {
        let buffer = ByteBuffer(string: text)
        var event = FrameEvent(ts: self.ts(seconds), connection: UInt64(connection), chargePoint: chargePoint, direction: direction, opcode: .text, payload: buffer)
        if case .success(let envelope) = OCPPEnvelope.parse(buffer) {
            event.envelope = envelope
            event.note(self.correlators[connection, default: CallCorrelator<Void>()].observe(envelope, direction: direction, atNanos: UInt64(self.ts(seconds).microseconds) * 1000))
        }
        self.writer.record(.frame(event))
    }

    /// A 1.6 StartTransaction and the CSMS's answer assigning `id`.
    mutating func start(_ connection: Int, _ chargePoint: String, at seconds: Double, id: Int, connector: Int = 1) {
        let stamp = self.ts(seconds).rfc3339
        self.frame(connection, chargePoint, at: seconds, #"[2,"s\#(id)","StartTransaction",{"connectorId":\#(connector),"idTag":"T","meterStart":100,"timestamp":"\#(stamp)"}]"#, .toCSMS)
        self.frame(connection, chargePoint, at: seconds, #"[3,"s\#(id)",{"transactionId":\#(id),"idTagInfo":{"status":"Accepted"}}]"#, .toCharger)
    }

    mutating func stop(_ connection: Int, _ chargePoint: String, at seconds: Double, id: Int) {
        let stamp = self.ts(seconds).rfc3339
        self.frame(connection, chargePoint, at: seconds, #"[2,"e\#(id)","StopTransaction",{"transactionId":\#(id),"meterStop":200,"timestamp":"\#(stamp)"}]"#, .toCSMS)
        self.frame(connection, chargePoint, at: seconds, #"[3,"e\#(id)",{}]"#, .toCharger)
    }

    func finish() -> String {
        self.writer.close()
        return self.directory
    }
}

/// The deviations an analyzer found while the records came (as live analysis logs them), and at the end.
func analyseLive(_ directory: String, retention: Double? = nil) throws -> (whileReading: [Deviation], report: AnalysisReport) {
    var configuration = AnalyzerConfiguration()
    configuration.stateRetentionSeconds = retention
    let analyzer = Analyzer(schemas: nil, configuration: configuration)
    var seen: [Deviation] = []
    analyzer.onDeviation = { seen.append($0) }
    for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
    let whileReading = seen
    return (whileReading, analyzer.finish())
}

@Suite("State per charge point is released after the retention")
struct StateRetentionTests {
    /// A charger that left with a transaction open: once it has been gone longer than the retention the
    /// capture header names, the transaction is reported (live, not only at the end) and forgotten, so its
    /// later stop is an unknown id; `report --state-retention` overrides the header.
    @Test("a charge point gone longer than the retention has its open transaction reported and released")
    func released() throws {
        var capture = try TimedCapture(header: CaptureHeader(backendName: "B", extra: [Departures.headerField: 60]))
        capture.open(1, "CP-A", at: 0)
        capture.start(1, "CP-A", at: 1, id: 7)
        capture.close(1, "CP-A", at: 10)
        capture.open(2, "CP-B", at: 100)
        capture.frame(2, "CP-B", at: 101, #"[2,"h","Heartbeat",{}]"#, .toCSMS)
        capture.frame(2, "CP-B", at: 101, #"[3,"h",{"currentTime":"2026-11-24T10:00:00Z"}]"#, .toCharger)
        capture.open(3, "CP-A", at: 200)
        capture.stop(3, "CP-A", at: 201, id: 7)
        capture.close(3, "CP-A", at: 210)
        capture.close(2, "CP-B", at: 210)
        let directory = capture.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let live = try analyseLive(directory)
        let notStopped = live.whileReading.filter { $0.rule == "tx.notStopped" }
        #expect(notStopped.count == 1)
        #expect(notStopped.first?.detail.contains("state retention (60 s)") == true)
        #expect(notStopped.first?.chargePoint == "CP-A")
        // Its stop, when the charger comes back, belongs to that finding: not a second one (an unknown id).
        #expect(live.report.deviations.map(\.rule) == ["tx.notStopped"])

        // Kept for an hour, the charger that came back after 190 s stops its own transaction: nothing to report.
        let kept = try analyseLive(directory, retention: 3600)
        #expect(kept.report.deviations.map(\.rule) == [])
    }

    /// A capture of an older version does not say what its live analysis used, which released nothing: its
    /// report must not change now.
    @Test("a capture whose header names no retention releases nothing")
    func olderCapture() throws {
        var capture = try TimedCapture(header: CaptureHeader(backendName: "B"))
        capture.open(1, "CP-A", at: 0)
        capture.start(1, "CP-A", at: 1, id: 7)
        capture.close(1, "CP-A", at: 10)
        capture.open(2, "CP-A", at: 200_000)
        capture.stop(2, "CP-A", at: 200_001, id: 7)
        capture.close(2, "CP-A", at: 200_010)
        let directory = capture.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try analyseLive(directory).report.deviations.map(\.rule) == [])
    }

    @Test("a charge point that returns within the retention keeps its transaction")
    func returnsInTime() throws {
        var capture = try TimedCapture(header: CaptureHeader(backendName: "B", extra: [Departures.headerField: 60]))
        capture.open(1, "CP-A", at: 0)
        capture.start(1, "CP-A", at: 1, id: 7)
        capture.close(1, "CP-A", at: 10)
        capture.open(2, "CP-A", at: 50)
        capture.frame(2, "CP-A", at: 200, #"[2,"h","Heartbeat",{}]"#, .toCSMS)
        capture.frame(2, "CP-A", at: 200, #"[3,"h",{"currentTime":"2026-11-24T10:00:00Z"}]"#, .toCharger)
        capture.stop(2, "CP-A", at: 201, id: 7)
        capture.close(2, "CP-A", at: 210)
        let directory = capture.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try analyseLive(directory).report.deviations.map(\.rule) == [])
    }

    /// A charger that starts transactions and never stops them, on one long connection: the analysis follows
    /// at most 64 of them; the oldest is reported when the 65th begins, each transaction once in all.
    @Test("transactions open at once per charge point are bounded; the oldest is reported when the bound is passed")
    func openTransactionsBounded() throws {
        var capture = try TimedCapture(header: CaptureHeader(backendName: "B"))
        capture.open(1, "CP-A", at: 0)
        for id in 1...65 { capture.start(1, "CP-A", at: Double(id), id: id, connector: id) }
        capture.stop(1, "CP-A", at: 100, id: 1)
        let directory = capture.finish()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let live = try analyseLive(directory)
        let early = live.whileReading.filter { $0.rule == "tx.notStopped" }
        #expect(early.count == 1)
        #expect(early.first?.detail.contains("transaction 1 ") == true)
        #expect(early.first?.detail.contains("more than 64") == true)
        // Transaction 1 is no longer followed: its stop is an unknown id, whose detail names the last ids assigned.
        let unknown = live.report.deviations.first { $0.rule == "tx.unknownTransactionId" }
        #expect(unknown?.detail.hasSuffix("(last assigned: 63, 64, 65)") == true)
        #expect(live.report.countsByRule["tx.notStopped"] == 65)
    }
}
