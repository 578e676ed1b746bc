import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

/// Checks with `connector: same`, judged from captures written line by line (docs/policies.md, "Connectors").
@Suite("Checks that follow a connector")
struct ConnectorCheckTests {
    /// A 1.6 capture of one charger on one connection: `frames` are (seconds from the start, direction, type,
    /// message id, action, payload).
    func capture(_ frames: [(Double, Direction, Int, String, String, String)]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("connector-checks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let start = Timestamp(rfc3339: "2026-12-04T08:00:00Z")!.microseconds
        var lines = [
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#,
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"open","conn":1,"chargePoint":"CP-1","chosen":"ocpp1.6","version":"1.6"}"#,
        ]
        for (seconds, direction, type, id, action, payload) in frames {
            let ts = Timestamp(microseconds: start + Int64(seconds * 1_000_000)).rfc3339
            let message = type == 2 ? #"[2,"\#(id)","\#(action)",\#(payload)]"# : #"[3,"\#(id)",\#(payload)]"#
            lines.append(
                #"{"ts":"\#(ts)","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"\#(direction.rawValue)","opcode":"text","msgType":\#(type),"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":\#(message)}"#
            )
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/capture.jsonl", atomically: true, encoding: .utf8)
        return directory
    }

    func judge(_ checks: String, _ frames: [(Double, Direction, Int, String, String, String)]) throws -> [String: CheckResult] {
        let directory = try self.capture(frames)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = AnalyzerConfiguration()
        configuration.checks = try PolicyLoader.parse("checks:\n" + checks).checks
        let analyzer = Analyzer(schemas: nil, configuration: configuration)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let results = analyzer.finish().pairs.flatMap(\.areas).flatMap(\.checks)
        return Dictionary(results.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    static func status(_ seconds: Double, _ id: String, connector: Int, _ status: String) -> [(Double, Direction, Int, String, String, String)] {
        [
            (seconds, .toCSMS, 2, id, "StatusNotification", #"{"connectorId":\#(connector),"errorCode":"NoError","status":"\#(status)"}"#),
            (seconds + 0.01, .toCharger, 3, id, "StatusNotification", "{}"),
        ]
    }

    @Test("a CALL for connector 2 and its answer follow connector 2 alone, not every connector the charger has")
    func callNamesItsConnector() throws {
        let checks = """
              - name: inoperative-on-call
                area: remoteOperations
                when: {direction: toCharger, type: CALL, action: ChangeAvailability}
                expect: {direction: toCSMS, action: StatusNotification, connector: same, payload: [{path: /status, equals: Unavailable}]}
                within: 60s
              - name: inoperative-on-answer
                area: remoteOperations
                when: {direction: toCSMS, type: CALLRESULT, action: ChangeAvailability, payload: [{path: /status, equals: Accepted}]}
                expect: {direction: toCSMS, action: StatusNotification, connector: same, payload: [{path: /status, equals: Unavailable}]}
                within: 60s
            """
        let frames = Self.status(0, "s1", connector: 1, "Available") + Self.status(1, "s2", connector: 2, "Available") + [
            (2, .toCharger, 2, "ca", "ChangeAvailability", #"{"connectorId":2,"type":"Inoperative"}"#),
            (3, .toCSMS, 3, "ca", "ChangeAvailability", #"{"status":"Accepted"}"#),
        ] + Self.status(4, "s3", connector: 2, "Unavailable") + [(120, .toCSMS, 2, "hb", "Heartbeat", "{}")]
        let results = try self.judge(checks, frames)
        for name in ["inoperative-on-call", "inoperative-on-answer"] {
            let result = try #require(results[name])
            // One window, for connector 2: connector 1, which stays Available, is no failure.
            #expect(result.verdict == .pass, "\(name): \(result.detail)")
            #expect(result.counts == [.pass: 1], "\(name): \(result.counts)")
            #expect(result.detail.contains("for connector 2"), "\(result.detail)")
        }
    }

    @Test("a connector first reported after a Reset gets its own window, decided by its deadline even when nothing else is open")
    func lateConnectorWindowEnds() throws {
        let checks = """
              - name: back-after-reset
                area: remoteOperations
                when: {direction: toCSMS, type: CALLRESULT, action: Reset, payload: [{path: /status, equals: Accepted}]}
                expect: {direction: toCSMS, action: StatusNotification, connector: same, payload: [{path: /status, equals: Available}]}
                within: 60s
              - name: heartbeat-booted
                area: commissioning
                when: {direction: toCSMS, type: CALL, action: Heartbeat}
                expect: {direction: toCSMS, action: BootNotification}
                within: 20s
            """
        let frames = Self.status(0, "s1", connector: 1, "Available") + [
            (1, .toCharger, 2, "r", "Reset", #"{"type":"Soft"}"#),
            (2, .toCSMS, 3, "r", "Reset", #"{"status":"Accepted"}"#),
            (5, .toCSMS, 2, "hb", "Heartbeat", "{}"),
            (5.01, .toCharger, 3, "hb", "Heartbeat", #"{"currentTime":"2026-12-04T08:00:05Z"}"#),
        ] + Self.status(10, "s2", connector: 1, "Available")
            // The heartbeat's window ends here: nothing else is open.
            + Self.status(30, "s3", connector: 1, "Available")
            // Connector 3, unknown at the Reset, comes back Faulted inside the window and Available only after it.
            + Self.status(40, "s4", connector: 3, "Faulted") + Self.status(90, "s5", connector: 3, "Available")
        let results = try self.judge(checks, frames)
        let result = try #require(results["back-after-reset"])
        #expect(result.verdict == .fail, "\(result.detail)")
        #expect(result.counts == [.pass: 1, .fail: 1], "\(result.counts)")
        #expect(result.detail.contains("for connector 3"), "\(result.detail)")
    }
}

/// State the charger model carries from one proxy run into the next was not watched in between.
@Suite("The charger model across proxy runs")
struct ProvisionalStateTests {
    @Test("a second transaction on a connector whose first began in an earlier proxy run is info, marked provisional")
    func busyAcrossRuns() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("provisional-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func frame(_ ts: String, _ conn: Int, _ direction: Direction, _ type: Int, _ id: String, _ action: String, _ payload: String) -> String {
            let message = type == 2 ? #"[2,"\#(id)","\#(action)",\#(payload)]"# : #"[3,"\#(id)",\#(payload)]"#
            return #"{"ts":"\#(ts)","kind":"frame","conn":\#(conn),"chargePoint":"CP-1","dir":"\#(direction.rawValue)","opcode":"text","msgType":\#(type),"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":\#(message)}"#
        }
        func run(_ started: String, starting id: Int, at time: String) -> [String] {
            [
                #"{"ts":"\#(started)","kind":"header","format":1,"started":"\#(started)","backend":"B"}"#,
                #"{"ts":"\#(started)","kind":"open","conn":1,"chargePoint":"CP-1","chosen":"ocpp1.6","version":"1.6"}"#,
                frame(time, 1, .toCSMS, 2, "s\(id)", "StartTransaction", #"{"connectorId":1,"idTag":"T","meterStart":0,"timestamp":"\#(time)"}"#),
                frame(time, 1, .toCharger, 3, "s\(id)", "StartTransaction", #"{"transactionId":\#(id),"idTagInfo":{"status":"Accepted"}}"#),
            ]
        }
        // The proxy stopped while transaction 7 ran; whatever the charger did meanwhile was not seen.
        try (run("2026-12-04T08:00:00.000000Z", starting: 7, at: "2026-12-04T08:00:01Z").joined(separator: "\n") + "\n")
            .write(toFile: directory + "/run1.jsonl", atomically: true, encoding: .utf8)
        try (run("2026-12-04T09:00:00.000000Z", starting: 8, at: "2026-12-04T09:00:01Z").joined(separator: "\n") + "\n")
            .write(toFile: directory + "/run2.jsonl", atomically: true, encoding: .utf8)
        let analyzer = Analyzer(schemas: nil)
        for record in try CaptureReader(paths: [directory + "/run1.jsonl", directory + "/run2.jsonl"]) { analyzer.consume(record) }
        let busy = analyzer.finish().deviations.filter { $0.rule == "connector.transactionBusy" }
        #expect(busy.count == 1)
        #expect(busy.first?.severity == .info)
        #expect(busy.first?.detail.contains("provisional") == true)
    }

    @Test("meter values of a transaction the capture never saw begin, on a charger of which it saw no transaction, are info once")
    func begunBeforeTheCapture() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("before-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lines = [
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#,
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"open","conn":1,"chargePoint":"CP-1","chosen":"ocpp1.6","version":"1.6"}"#,
        ]
        for n in 1...3 {
            let payload = #"[2,"m\#(n)","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2026-12-04T08:0\#(n):00Z","sampledValue":[{"value":"\#(1000 * n)"}]}]}]"#
            lines.append(#"{"ts":"2026-12-04T08:0\#(n):00.000000Z","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":2,"msgId":"m\#(n)","action":"MeterValues","enc":"json","payload":\#(payload)}"#)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/capture.jsonl", atomically: true, encoding: .utf8)
        let analyzer = Analyzer(schemas: nil)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let found = analyzer.finish().deviations
        let unknown = found.filter { $0.rule == "tx.unknownTransactionId" }
        #expect(unknown.count == 1)
        #expect(unknown.first?.severity == .info)
        #expect(unknown.first?.detail.contains("may have begun before the capture") == true)
        // Still open at the end: noted as the end of a capture notes it.
        #expect(found.filter { $0.rule == "tx.notStopped" }.count == 1)
    }

    @Test("a client certificate whose CN is the serial number is judged by the BootNotification; after a reconnect without one, by the serial given before")
    func certificateSerialNumber() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("certificate-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func open(_ conn: Int, _ time: String, commonName: String) -> String {
            #"{"ts":"\#(time)","kind":"open","conn":\#(conn),"chargePoint":"CP-1","chosen":"ocpp1.6","version":"1.6","tls":{"charger":true,"clientCertificate":{"commonName":"\#(commonName)"}}}"#
        }
        func call(_ conn: Int, _ time: String, _ id: String, _ action: String, _ payload: String) -> String {
            #"{"ts":"\#(time)","kind":"frame","conn":\#(conn),"chargePoint":"CP-1","dir":"toCSMS","opcode":"text","msgType":2,"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":[2,"\#(id)","\#(action)",\#(payload)]}"#
        }
        func close(_ conn: Int, _ time: String) -> String {
            #"{"ts":"\#(time)","kind":"close","conn":\#(conn),"chargePoint":"CP-1","by":"charger","code":1000}"#
        }
        let lines = [
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#,
            // Booted with serial SN-1, whose certificate it presents: right.
            open(1, "2026-12-04T08:00:00.000000Z", commonName: "SN-1"),
            call(1, "2026-12-04T08:00:01.000000Z", "b", "BootNotification", #"{"chargePointVendor":"V","chargePointModel":"M","chargePointSerialNumber":"SN-1"}"#),
            close(1, "2026-12-04T08:00:02.000000Z"),
            // Back without booting, as a 1.6 charger does after a network loss: still right.
            open(2, "2026-12-04T08:00:03.000000Z", commonName: "SN-1"),
            call(2, "2026-12-04T08:00:04.000000Z", "h", "Heartbeat", "{}"),
            close(2, "2026-12-04T08:00:05.000000Z"),
            // Another charger's certificate: wrong, found at its first message.
            open(3, "2026-12-04T08:00:06.000000Z", commonName: "SN-2"),
            call(3, "2026-12-04T08:00:07.000000Z", "h2", "Heartbeat", "{}"),
            close(3, "2026-12-04T08:00:08.000000Z"),
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/capture.jsonl", atomically: true, encoding: .utf8)
        let analyzer = Analyzer(schemas: nil)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let found = analyzer.finish().deviations.filter { $0.rule.hasPrefix("security.") }
        #expect(found.map(\.rule) == ["security.certificateMismatch"])
        #expect(found.first?.severity == .error)
        #expect(found.first?.detail.contains("'SN-2'") == true && found.first?.detail.contains("serial number 'SN-1'") == true)
        #expect(found.first?.ref?.hasSuffix(":8") == true)
    }
}
