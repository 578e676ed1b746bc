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
        writer.record(.connection("close", connection: 1, chargePoint: "CP-1", fields: ["by": "charger"]))
        writer.close()
        let records = Array(try CaptureReader(paths: [directory]))
        #expect(records.map(\.kind) == ["header", "frame", "close"])
        #expect(records[0].fields["backend"] == "B")
        #expect(records[0].fields["format"] == 1)
        #expect(records[1].message == [2, "1", "Heartbeat", [:]])
        #expect(records[1].action == "Heartbeat")
        #expect(records[1].line == 2)
        #expect(records[2].fields["by"] == "charger")
        #expect(writer.statistics.recordsWritten == 2)
        #expect(writer.statistics.recordsLost == 0)
    }

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
            writer.close()
            let text = try String(contentsOfFile: try #require(writer.filePaths.first), encoding: .utf8)
            #expect(text.contains("0011AABB") == !redact)
            #expect(text.contains("hunter2hunter2") == !redact)
            #expect(text.contains(#""attributeValue":"60""#))
            let records = Array(try CaptureReader(paths: [directory])).filter { $0.kind == "frame" }
            if redact {
                #expect(records[0].message?[3]?["value"] == "<redacted>")
                #expect(records[0].fields["redacted"] == true)
            }
        }
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
        let ts = CaptureTimestamp(microseconds: 1_795_000_000_123_456)
        #expect(ts.rfc3339 == "2026-11-18T11:06:40.123456Z")  // date -u -d @1795000000
        #expect(CaptureTimestamp(rfc3339: ts.rfc3339) == ts)
        #expect(CaptureTimestamp(rfc3339: "2026-11-18T12:06:40.123456+01:00") == ts)
        #expect(CaptureTimestamp(rfc3339: "1969-12-31T23:59:59.5Z")?.microseconds == -500_000)
        #expect(CaptureTimestamp(rfc3339: "2026-11-18T08:26:40") == nil)
        // Every field padded, at the edges of the epoch and past year 9999.
        #expect(CaptureTimestamp(microseconds: 0).rfc3339 == "1970-01-01T00:00:00.000000Z")
        #expect(CaptureTimestamp(microseconds: -1).rfc3339 == "1969-12-31T23:59:59.999999Z")
        #expect(CaptureTimestamp(microseconds: 1_000_000 * 86_400 * 59 + 7).rfc3339 == "1970-03-01T00:00:00.000007Z")
        #expect(CaptureTimestamp(microseconds: 253_402_300_800_000_000).rfc3339 == "10000-01-01T00:00:00.000000Z")
        // The extremes of the range fit (years beyond RFC 3339's four digits), and the bytes the writer
        // appends are the same text.
        for extreme in [CaptureTimestamp(microseconds: .max), CaptureTimestamp(microseconds: -100_000_000_000_000_000), ts] {
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
            writer.record(.connection("note", connection: 1, chargePoint: "CP-1", fields: ["index": .int(index)]))
        }
        writer.close()
        let reader = try CaptureReader(paths: [directory])
        let read = Array(reader)
        #expect(reader.issues.isEmpty)
        #expect(try CaptureReader.captureFiles(at: directory).count > 2)
        #expect(read.count == 20 * 6 + writer.filePaths.count)
        let observed = seen.withLockedValue { $0 }
        #expect(observed.count == read.count)
        for (live, offline) in zip(observed, read) where live != offline {
            Issue.record("\(offline.reference): the observer saw \(live.reference) \(JSONValue.object(live.fields))")
        }
    }
}
