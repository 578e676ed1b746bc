import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

@Suite("Checks that look into the stimulus's CALL")
struct CheckCallTests {
    /// A 1.6 capture of one charger: `answered` transactions started and answered, then a tag answered
    /// Blocked that the charger starts a transaction with anyway.
    func capture(answered: Int) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("check-calls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var clock = Timestamp(rfc3339: "2026-12-04T08:00:00Z")!.microseconds
        var lines = [
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#,
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"open","conn":1,"chargePoint":"CP-1","chosen":"ocpp1.6","version":"1.6"}"#,
        ]
        // As the recorder writes them: a response names the action of the CALL it answers.
        func frame(_ direction: Direction, _ type: Int, _ id: String, _ action: String, _ payload: String) {
            clock += 1000
            let ts = Timestamp(microseconds: clock).rfc3339
            let message = type == 2 ? #"[2,"\#(id)","\#(action)",\#(payload)]"# : #"[3,"\#(id)",\#(payload)]"#
            lines.append(
                #"{"ts":"\#(ts)","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"\#(direction.rawValue)","opcode":"text","msgType":\#(type),"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":\#(message)}"#
            )
        }
        frame(.toCSMS, 2, "boot", "BootNotification", #"{"chargePointVendor":"Vendor","chargePointModel":"M"}"#)
        frame(.toCharger, 3, "boot", "BootNotification", #"{"status":"Accepted","currentTime":"2026-12-04T08:00:00Z","interval":300}"#)
        // Transactions started and answered; their CALLs are ones the checks look into.
        for n in 0..<answered {
            frame(.toCSMS, 2, "s\(n)", "StartTransaction", #"{"connectorId":1,"idTag":"TAG-\#(n)","meterStart":0,"timestamp":"2026-12-04T08:00:00Z"}"#)
            frame(.toCharger, 3, "s\(n)", "StartTransaction", #"{"transactionId":\#(n + 10),"idTagInfo":{"status":"Accepted"}}"#)
        }
        frame(.toCSMS, 2, "blocked", "Authorize", #"{"idTag":"BLOCKED"}"#)
        frame(.toCharger, 3, "blocked", "Authorize", #"{"idTagInfo":{"status":"Blocked"}}"#)
        frame(.toCSMS, 2, "start", "StartTransaction", #"{"connectorId":1,"idTag":"BLOCKED","meterStart":0,"timestamp":"2026-12-04T08:00:00Z"}"#)
        frame(.toCharger, 3, "start", "StartTransaction", #"{"transactionId":1,"idTagInfo":{"status":"Blocked"}}"#)
        let path = directory + "/capture.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return directory
    }

    func refusedTagVerdict(answered: Int) throws -> (verdict: CheckVerdict?, refs: [String]) {
        let directory = try self.capture(answered: answered)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let policy = try PolicyLoader.load(path: Paths.root.appendingPathComponent("policies/authorization.yaml").path)
        var configuration = AnalyzerConfiguration()
        configuration.checks = policy.checks
        let analyzer = Analyzer(schemas: nil, configuration: configuration)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let check = analyzer.finish().pairs.flatMap(\.areas).flatMap(\.checks).first { $0.name == "refused-tag-never-starts" }
        return (check?.verdict, check?.refs ?? [])
    }

    @Test("a blocked tag that starts a transaction fails, however many calls the capture answered before it")
    func longCapture() throws {
        let short = try self.refusedTagVerdict(answered: 1)
        #expect(short.verdict == .fail)
        // Well past the number of CALLs the checks once kept for a whole capture: the answered ones are let go.
        let long = try self.refusedTagVerdict(answered: 12_000)
        #expect(long.verdict == .fail)
        #expect(long.refs.count == 2)
        #expect(long.refs.last?.hasSuffix(":\(2 + 2 + 2 * 12_000 + 3)") == true)
    }
}
