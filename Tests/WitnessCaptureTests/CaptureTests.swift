import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OCPPWire
import Testing
import WitnessCapture

@Suite("Capture files")
struct CaptureTests {
    func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("capture-test-\(UUID().uuidString)").path
    }

    func frame(_ text: String, id: UInt64 = 1, direction: Direction = .toCSMS) -> CaptureEvent {
        let buffer = ByteBuffer(string: text)
        let envelope = try? OCPPEnvelope.parse(buffer).get()
        return .frame(
            FrameEvent(
                ts: .now(), connection: id, chargePoint: "CP-1", direction: direction, opcode: .text, payload: buffer,
                envelope: envelope
            )
        )
    }

    @Test("records written are read back in order with header, file and line")
    func roundTrip() async throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(
            configuration: .init(directory: directory), header: CaptureHeader(backendName: "B", upstream: "ws://b")
        )
        writer.record(self.frame(#"[2,"1","Heartbeat",{}]"#))
        writer.record(.connection(.close, connection: 1, chargePoint: "CP-1", fields: ["by": "charger"]))
        writer.close()
        let records = Array(try CaptureReader(paths: [directory]))
        #expect(records.map(\.kind) == ["header", "frame", "close", "seal"])
        #expect(records[0].fields["backend"] == "B")
        #expect(records[0].fields["format"] == 2)
        #expect(records[1].message == [2, "1", "Heartbeat", [:]])
        #expect(records[1].action == "Heartbeat")
        #expect(records[1].line == 2)
        #expect(records[2].fields["by"] == "charger")
        #expect(writer.statistics.recordsWritten == 2)
        #expect(writer.statistics.recordsLost == 0)
    }

    #if os(Linux)
    @Test("a flush after close returns instead of waiting forever, and what was recorded is on disk")
    func flushAfterClose() async throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader(backendName: "B"))
        writer.record(self.frame(#"[2,"1","Heartbeat",{}]"#))
        writer.close()
        // Awaited in a task of its own: a flush that never returns fails the test instead of hanging the suite.
        let returned = NIOLockedValueBox(false)
        Task {
            await writer.flush()
            returned.withLockedValue { $0 = true }
        }
        var waited = 0
        while !returned.withLockedValue({ $0 }) && waited < 500 {
            try await Task.sleep(for: .milliseconds(20))
            waited += 1
        }
        #expect(returned.withLockedValue { $0 }, "flush() after close() did not return within 10 s")
        #expect(try CaptureReader(paths: [directory]).filter { $0.kind == "frame" }.count == 1)
    }

    @Test("charger-chosen action names are counted under a bounded number of keys, losing no message")
    func boundedActionKeys() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader(backendName: "B"))
        let names = CaptureStatistics.maximumMessageKeys + 100
        for index in 0..<names { writer.record(self.frame(#"[2,"\#(index)","Vendor\#(index)",{}]"#)) }
        writer.close()
        let messages = writer.statistics.messages
        #expect(messages.count <= CaptureStatistics.maximumMessageKeys + 2)
        #expect(messages.values.reduce(0) { $0 + $1.messages } == names)
        #expect((messages[.init(direction: "toCSMS", action: CaptureStatistics.otherActions)]?.messages ?? 0) >= 100)
    }

    @Test("the writer thread is in the batch scheduling class, so it does not preempt forwarding")
    func writerThreadYields() async throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader())
        defer { writer.close() }
        // The thread names itself once its class is set; wait for it to appear.
        var policies: [String] = []
        for _ in 0..<500 where policies.isEmpty {
            policies = Self.writerThreadPolicies()
            if policies.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        // /proc's `policy` field: 0 is the normal class, 3 is SCHED_BATCH.
        #expect(!policies.isEmpty)
        #expect(policies.allSatisfy { $0 == "3" })
    }

    /// The scheduling policy (field 41 of /proc/self/task/TID/stat) of every thread named capture-writer.
    static func writerThreadPolicies() -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { tid in
            guard let name = try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8),
                name.trimmingCharacters(in: .whitespacesAndNewlines) == "capture-writer",
                let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return nil }
            // Fields after the command name start at field 3.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            return fields.count > 38 ? String(fields[38]) : nil
        }
    }
    #endif

    @Test("files rotate by size and every part starts with a header")
    func rotation() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory, rotateBytes: 2000), header: CaptureHeader())
        for index in 0..<100 {
            writer.record(self.frame(#"[2,"\#(index)","Heartbeat",{}]"#))
        }
        writer.close()
        let files = try CaptureReader.captureFiles(at: directory)
        #expect(files.count > 3)
        #expect(files == writer.filePaths)
        let reader = try CaptureReader(paths: [directory])
        let records = Array(reader)
        #expect(records.filter { $0.kind == "header" }.count == files.count)
        #expect(records.filter { $0.kind == "frame" }.compactMap(\.messageId) == (0..<100).map(String.init))
        for file in files {
            let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            #expect(size <= 2000)
        }
        #expect(reader.issues.isEmpty)
    }

    @Test("a torn last line is reported and skipped; a corrupt middle line too")
    func tornAndCorrupt() throws {
        let directory = self.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let text = """
            {"ts":"2026-11-24T10:00:00.000000Z","kind":"header","format":1}
            {"ts":"2026-11-24T10:00:01.000000Z","kind":"frame"
            {"ts":"2026-11-24T10:00:02.000000Z","kind":"close"}
            {"ts":"2026-11-24T10:00:03.000000Z","kind":"fra
            """
        try text.write(toFile: directory + "/witness-x-0001.jsonl", atomically: true, encoding: .utf8)
        let reader = try CaptureReader(paths: [directory])
        let records = Array(reader)
        #expect(records.map(\.kind) == ["header", "close"])
        #expect(records.map(\.line) == [1, 3])
        #expect(reader.issues.map(\.kind) == [.corruptLine, .tornLastLine])
        #expect(reader.issues.map(\.line) == [2, 4])
    }

    @Test("secrets in configuration messages are redacted in the capture, and kept when asked")
    func payloadRedaction() throws {
        for redact in [true, false] {
            let directory = self.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let writer = try CaptureWriter(configuration: .init(directory: directory, redactSecrets: redact), header: CaptureHeader())
            writer.record(self.frame(#"[2,"c1","ChangeConfiguration",{"key":"AuthorizationKey","value":"0011AABB"}]"#, direction: .toCharger))
            writer.record(
                self.frame(
                    #"[2,"s1","SetVariables",{"setVariableData":[{"attributeValue":"hunter2hunter2","component":{"name":"SecurityCtrlr"},"variable":{"name":"BasicAuthPassword"}},{"attributeValue":"60","component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}}]}]"#,
                    direction: .toCharger
                )
            )
            // Key names in another letter case, network credentials, and a report that should not hold the password.
            writer.record(self.frame(#"[2,"c2","ChangeConfiguration",{"key":"authorizationKEY","value":"CAFEBABE"}]"#, direction: .toCharger))
            writer.record(
                self.frame(
                    #"[2,"n1","SetNetworkProfile",{"configurationSlot":1,"connectionData":{"ocppVersion":"OCPP20","ocppTransport":"JSON","ocppCsmsUrl":"wss://csms.example","messageTimeout":30,"securityProfile":2,"ocppInterface":"Wireless0","apn":{"apn":"iot","apnPassword":"apn-pass-77","apnAuthentication":"AUTO"},"vpn":{"server":"vpn.example","user":"u","password":"vpn-pass-88","key":"vpn-key-99","type":"IPSec"}}}]"#,
                    direction: .toCharger
                )
            )
            writer.record(
                self.frame(
                    #"[2,"r1","NotifyReport",{"requestId":1,"generatedAt":"2026-12-03T08:00:00Z","seqNo":0,"reportData":[{"component":{"name":"SecurityCtrlr"},"variable":{"name":"BasicAuthPassword"},"variableAttribute":[{"value":"leaked-pass-66"}]}]}]"#
                )
            )
            writer.close()
            let text = try String(contentsOfFile: try #require(writer.filePaths.first), encoding: .utf8)
            #expect(text.contains("0011AABB") == !redact)
            #expect(text.contains("hunter2hunter2") == !redact)
            for secret in ["CAFEBABE", "apn-pass-77", "vpn-pass-88", "vpn-key-99", "leaked-pass-66"] {
                #expect(text.contains(secret) == !redact, "\(secret)")
            }
            #expect(text.contains("wss://csms.example") && text.contains("vpn.example"))
            #expect(text.contains(#""attributeValue":"60""#))
            let records = Array(try CaptureReader(paths: [directory])).filter { $0.kind == "frame" }
            if redact {
                #expect(records[0].message?[3]?["value"] == "<redacted>")
                #expect(records[0].fields["redacted"] == true)
            }
        }
    }

    /// Secrets in messages that are not strict OCPP-J: the field-by-field redaction cannot place them, so it
    /// fails closed. Each of these kept its secret in the capture (and the live views, which read its records).
    @Test("redaction fails closed: a duplicated name, a five-element CALL, a trailing bracket, an escaped name, a cut text")
    func redactionFailsClosed() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader())
        let messages = [
            // The first "key" is harmless; a parser that reads the last sees AuthorizationKey.
            #"[2,"d1","ChangeConfiguration",{"key":"HeartbeatInterval","key":"AuthorizationKey","value":"SECRET-DUP"}]"#,
            #"[2,"v1","SetVariables",{"setVariableData":[{"attributeValue":"SECRET-VAR","component":{"name":"SecurityCtrlr"},"variable":{"name":"x","name":"BasicAuthPassword"}}]}]"#,
            #"[2,"f1","ChangeConfiguration",{"key":"AuthorizationKey","value":"SECRET-FIVE"},{"extra":true}]"#,
            #"[2,"t1","ChangeConfiguration",{"key":"AuthorizationKey","value":"SECRET-TRAIL"}]]"#,
            #"[2,"e1","ChangeConfiguration",{"key":"Authorization\u004bey","value":"SECRET-ESCAPED"}]]"#,
            #"[2,"c1","ChangeConfiguration",{"key":"AuthorizationKey","value":"SECRET-CUT"#,
            // Not a secret: a malformed message without one is recorded as it came.
            #"[2,"h1","Heartbeat",{},{}]"#,
            #"[2,"k1","ChangeConfiguration",{"Key":"AuthorizationKey","Value":"SECRET-CASE"}]"#,
            #"[3,"unknown-id",{"configurationKey":[{"key":"AuthorizationKey","readonly":false,"value":"SECRET-ANSWER"}]}]"#,
        ]
        for message in messages { writer.record(self.frame(message, direction: .toCharger)) }
        let binary = ByteBuffer(string: #"[2,"b1","ChangeConfiguration",{"key":"AuthorizationKey","value":"SECRET-BINARY"}]"#)
        writer.record(.frame(FrameEvent(ts: .now(), connection: 1, chargePoint: "CP-1", direction: .toCharger, opcode: .binary, payload: binary)))
        writer.close()
        let text = try String(contentsOfFile: try #require(writer.filePaths.first), encoding: .utf8)
        for secret in ["SECRET-DUP", "SECRET-VAR", "SECRET-FIVE", "SECRET-TRAIL", "SECRET-ESCAPED", "SECRET-CUT", "SECRET-CASE", "SECRET-ANSWER", "SECRET-BINARY"] {
            #expect(!text.contains(secret), "\(secret) is in the capture")
        }
        let frames = Array(try CaptureReader(paths: [directory])).filter { $0.kind == "frame" }
        #expect(frames.count == messages.count + 1)
        // Strict messages are redacted field by field, the others as the record says.
        #expect(frames[0].message?[3]?.objectValue?.members.map(\.value) == ["HeartbeatInterval", "AuthorizationKey", "<redacted>"])
        #expect(frames[1].fields["redacted"] == true && frames[1].fields["redaction"] == nil)
        #expect(frames[2].fields["redaction"] == "values")
        #expect(frames[2].fields["payload"] == #"[2,"f1","ChangeConfiguration",{"key":"<redacted>","value":"<redacted>"},{"extra":"<redacted>"}]"#)
        #expect(frames[3].fields["redaction"] == "values")
        #expect(frames[4].fields["redaction"] == "values")
        #expect(frames[4].fields["payload"] == #"[2,"e1","ChangeConfiguration",{"key":"<redacted>","value":"<redacted>"}]]"#)
        #expect(frames[5].fields["redaction"] == "whole")
        #expect(frames[6].fields["redacted"] == nil && frames[6].fields["payload"] == [2, "h1", "Heartbeat", [:], [:]])
        // Names in another letter case and an answer to a CALL the proxy never saw: strict, but not placed by the
        // field-by-field rules; every string of the object naming the secret is masked.
        #expect(frames[7].message?[3]?.objectValue?.members.map(\.value) == ["AuthorizationKey", "<redacted>"])
        #expect(frames[8].message?[2]?["configurationKey"]?[0]?["value"] == "<redacted>")
        #expect(frames[8].message?[2]?["configurationKey"]?[0]?["readonly"] == false)
        // OCPP in a binary frame keeps nothing of its payload when it mentions a secret.
        #expect(frames[9].fields["redaction"] == "whole")
    }

    @Test("a message with line breaks between tokens stays on one line and keeps its exact text")
    func lineBreaks() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader())
        let text = "[2,\n\"n1\",\r\n\"Heartbeat\",\n{}]"
        writer.record(self.frame(text))
        writer.close()
        let frame = try #require(Array(try CaptureReader(paths: [directory])).first { $0.kind == "frame" })
        #expect(frame.message == [2, "n1", "Heartbeat", [:]])
        #expect(frame.fields["raw"] == .string(text))
    }

    @Test("timestamps are RFC 3339 UTC with microseconds and parse back")
    func timestamps() throws {
        let ts = Timestamp(microseconds: 1_795_000_000_123_456)
        #expect(ts.rfc3339 == "2026-11-18T11:06:40.123456Z")  // date -u -d @1795000000
        #expect(Timestamp(rfc3339: ts.rfc3339) == ts)
        #expect(Timestamp(rfc3339: "2026-11-18T12:06:40.123456+01:00") == ts)
        #expect(Timestamp(rfc3339: "1969-12-31T23:59:59.5Z")?.microseconds == -500_000)
        #expect(Timestamp(rfc3339: "2026-11-18T08:26:40") == nil)
        // Every field padded, at the edges of the epoch and past year 9999.
        #expect(Timestamp(microseconds: 0).rfc3339 == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamp(microseconds: -1).rfc3339 == "1969-12-31T23:59:59.999999Z")
        #expect(Timestamp(microseconds: 1_000_000 * 86_400 * 59 + 7).rfc3339 == "1970-03-01T00:00:00.000007Z")
        #expect(Timestamp(microseconds: 253_402_300_800_000_000).rfc3339 == "10000-01-01T00:00:00.000000Z")
        // The extremes of the range fit (years beyond RFC 3339's four digits), and the bytes the writer
        // appends are the same text.
        for extreme in [Timestamp(microseconds: .max), Timestamp(microseconds: -100_000_000_000_000_000), ts] {
            var bytes: [UInt8] = [UInt8(ascii: "[")]
            extreme.appendRFC3339(to: &bytes)
            #expect(bytes == Array(("[" + extreme.rfc3339).utf8))
        }
    }

    @Test("above the high watermark the writer asks callers to pause, and says when to resume")
    func backPressure() async throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(
            configuration: .init(directory: directory, highWatermark: 10, lowWatermark: 5), header: CaptureHeader()
        )
        var refused = false
        for index in 0..<50_000 where !refused {
            refused = !writer.record(self.frame(#"[2,"\#(index)","Heartbeat",{}]"#))
        }
        #expect(refused)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            writer.whenBelowLowWatermark { continuation.resume() }
        }
        #expect(writer.statistics.queueDepth < 5)
        await writer.flush()
        writer.close()
        #expect(writer.statistics.recordsLost == 0)
    }

    @Test("a capture folder that cannot be created is a clear start-up error")
    func unwritableDirectory() throws {
        let file = self.temporaryDirectory()
        try "not a folder".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect {
            _ = try CaptureWriter(configuration: .init(directory: file + "/sub"), header: CaptureHeader())
        } throws: { error in
            "\(error)".contains(file)
        }
    }

    @Test("the writer's observer sees exactly the records, files and lines a reader reads back")
    func observerSeesWhatReaderReads() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let seen = NIOLockedValueBox<[CaptureRecord]>([])
        let writer = try CaptureWriter(
            configuration: .init(directory: directory, rotateBytes: 1500), header: CaptureHeader(backendName: "B"),
            observer: { record in seen.withLockedValue { $0.append(record) } }
        )
        for index in 0..<20 {
            writer.record(self.frame(#"[2,"\#(index)","Heartbeat",{}]"#))
            writer.record(self.frame(#"[3,"\#(index)",{"currentTime":"2026-11-24T10:00:00Z"}]"#, direction: .toCharger))
            writer.record(self.frame(#"[2,"c\#(index)","ChangeConfiguration",{"key":"AuthorizationKey","value":"s"}]"#, direction: .toCharger))
            writer.record(self.frame("[2,\"n\(index)\",\n\"Heartbeat\",{}]"))
            writer.record(self.frame("not json"))
            writer.record(.connection(.error, connection: 1, chargePoint: "CP-1", fields: ["error": "note", "index": .int(index)]))
        }
        writer.close()
        let reader = try CaptureReader(paths: [directory])
        let read = Array(reader)
        #expect(reader.issues.isEmpty)
        #expect(try CaptureReader.captureFiles(at: directory).count > 2)
        // A header and a seal per file.
        #expect(read.count == 20 * 6 + 2 * writer.filePaths.count)
        let observed = seen.withLockedValue { $0 }
        #expect(observed.count == read.count)
        for (live, offline) in zip(observed, read) where live != offline {
            Issue.record("\(offline.reference): the observer saw \(live.reference) \(JSONValue.object(live.fields))")
        }
    }

    @Test("frames the proxy leaves to the writer get the envelope and call correlation it would have given them")
    func writerCompletesFrames() throws {
        // Connection, direction, text, and when the proxy saw it (ms).
        let traffic: [(UInt64, Direction, String, UInt64)] = [
            (1, .toCSMS, #"[2,"a","Heartbeat",{}]"#, 0),
            (2, .toCSMS, #"[2,"a","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]"#, 1),
            (1, .toCharger, #"[3,"a",{"currentTime":"2026-11-25T10:00:00Z"}]"#, 12),
            (1, .toCharger, #"[3,"zz",{}]"#, 13),
            (2, .toCharger, #"[4,"a","InternalError","",{}]"#, 40),
            (1, .toCharger, #"[2,"r1","Reset",{"type":"Soft"}]"#, 50),
            (1, .toCSMS, "[2,\"n\",\n\"Heartbeat\",{}]", 51),
            (1, .toCSMS, #"[2,"m","Heartbeat"]"#, 52),
            (1, .toCSMS, "not json", 53),
            (1, .toCSMS, #"[3,"r1",{"status":"Accepted"}]"#, 60),
            (1, .toCharger, #"[3,"n",{"currentTime":"2026-11-25T10:00:01Z"}]"#, 70),
            (1, .toCharger, #"[2,"p","Reset",{"type":"Hard"}]"#, 75),
        ]
        func events(completedByProxy: Bool) -> [CaptureEvent] {
            var correlators: [UInt64: CallCorrelator<Void>] = [:]
            var events: [CaptureEvent] = []
            func add(_ connection: UInt64, _ direction: Direction, _ text: String, _ ms: UInt64) {
                let payload = ByteBuffer(string: text)
                var frame = FrameEvent(
                    ts: Timestamp(microseconds: 1_795_000_000_000_000 + Int64(ms) * 1000), connection: connection,
                    chargePoint: "CP-\(connection)", direction: direction, opcode: .text, payload: payload
                )
                if completedByProxy {
                    switch OCPPEnvelope.parse(payload) {
                    case .success(let envelope):
                        frame.envelope = envelope
                        frame.note(correlators[connection, default: CallCorrelator()].observe(envelope, direction: direction, atNanos: ms * 1_000_000))
                    case .failure(let malformed):
                        frame.malformed = malformed
                    }
                } else {
                    frame.leaveToRecorder(seenNanos: ms * 1_000_000)
                }
                events.append(.frame(frame))
            }
            for (connection, direction, text, ms) in traffic { add(connection, direction, text, ms) }
            // Connection 1 closes; a new connection with the same number knows none of its calls.
            events.append(.record(kind: .close, ts: Timestamp(microseconds: 1_795_000_000_080_000), connection: 1, chargePoint: "CP-1", direction: nil, fields: [:]))
            correlators[1] = nil
            add(1, .toCSMS, #"[3,"p",{"status":"Accepted"}]"#, 90)
            return events
        }
        func write(_ events: [CaptureEvent], observed: Bool) throws -> (lines: [Substring], records: [CaptureRecord], seen: [CaptureRecord]) {
            let directory = self.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let seen = NIOLockedValueBox<[CaptureRecord]>([])
            var observer: (@Sendable (CaptureRecord) -> Void)?
            if observed { observer = { record in seen.withLockedValue { $0.append(record) } } }
            let writer = try CaptureWriter(
                configuration: .init(directory: directory), header: CaptureHeader(backendName: "B"), observer: observer
            )
            for event in events { writer.record(event) }
            writer.close()
            let file = try #require(writer.filePaths.first)
            let text = try String(contentsOfFile: file, encoding: .utf8)
            // Lines compared without their chain links, which follow from the header's time; the seal likewise.
            let lines = text.split(separator: "\n").dropFirst().filter { !$0.contains(#""kind":"seal""#) }.map { line in
                line[..<(line.range(of: #","n":"#, options: .backwards)?.lowerBound ?? line.endIndex)]
            }
            return (lines, Array(try CaptureReader(paths: [directory])), seen.withLockedValue { $0 })
        }
        let expected = try write(events(completedByProxy: true), observed: false)
        let plain = try write(events(completedByProxy: false), observed: false)
        let observed = try write(events(completedByProxy: false), observed: true)
        #expect(expected.lines.count == traffic.count + 2)
        #expect(plain.lines == expected.lines)
        #expect(observed.lines == expected.lines)
        #expect(observed.seen.dropFirst() == observed.records.dropFirst())

        let frames = expected.records.filter { $0.kind == "frame" }
        #expect(frames[2].action == "Heartbeat")
        #expect(frames[2].fields["latencyMs"] == .number("12.000"))
        #expect(frames[3].fields["unmatched"] == true)
        #expect(frames[4].action == "BootNotification")
        #expect(frames[7].fields["malformed"]?["reason"] == "wrongArity")
        #expect(frames[8].fields["malformed"]?["reason"] == "notJSON")
        #expect(frames[9].action == "Reset")
        #expect(frames[9].fields["latencyMs"] == .number("10.000"))
        #expect(frames[10].fields["latencyMs"] == .number("19.000"))
        #expect(frames[12].fields["unmatched"] == true)
    }

    @Test("a record's typed fields follow its fields: first of a name, out-of-range values absent, kept up to date")
    func typedFields() throws {
        let fields = try #require(
            try JSONParser.parse(#"{"ts":"2026-11-25T10:00:00.000001Z","kind":"frame","conn":-1,"dir":"toCSMS","dir":"toCharger","msgType":2,"msgId":"a","enc":"json","payload":[2,"a","Heartbeat",{}]}"#).objectValue
        )
        var record = CaptureRecord(file: "c.jsonl", line: 3, fields: fields)
        #expect(record.connection == nil)
        #expect(record.direction == .toCSMS)
        #expect(record.timestamp == "2026-11-25T10:00:00.000001Z")
        #expect(record.ts == Timestamp(rfc3339: "2026-11-25T10:00:00.000001Z"))
        #expect(record.messageType == .call)
        #expect(record.message == [2, "a", "Heartbeat", [:]])
        record.fields["enc"] = "text"
        record.fields["conn"] = 12
        #expect(record.message == nil)
        #expect(record.connection == 12)
    }
}
