import Foundation
import Testing
import WitnessCapture
import WitnessTestSupport

@testable import WitnessPcap

/// A small capture as the proxy writes it, with the cases export must carry: JSON with spaces
/// (exact text), a delayed and an injected frame, binary, a close handshake and a rejected upgrade.
private let handwrittenCapture = #"""
    {"ts":"2026-11-24T10:00:00.000000Z","kind":"header","format":1,"tool":"ocpp-witness 0.1.0","started":"2026-11-24T10:00:00.000000Z","part":1,"backend":"B","upstream":"ws://10.1.1.1:9000/ocpp","policy":"p.yaml","seed":"7","redacted":true,"listen":"127.0.0.1:8080"}
    {"ts":"2026-11-24T10:00:01.000000Z","kind":"open","conn":1,"chargePoint":"CP 1","path":"/ocpp/CP%201","query":null,"remote":"10.0.0.7:50123","upstream":"ws://10.1.1.1:9000/ocpp/CP%201","offered":["ocpp1.6"],"chosen":"ocpp1.6","version":"1.6","headers":{"host":"127.0.0.1:8080","upgrade":"websocket","connection":"Upgrade","sec-websocket-key":"dGhlIHNhbXBsZSBub25jZQ==","sec-websocket-version":"13","sec-websocket-protocol":"ocpp1.6"},"tls":{"charger":false,"chargerClientCertificate":false,"upstream":false}}
    {"ts":"2026-11-24T10:00:01.100000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCSMS","opcode":"text","size":61,"msgType":2,"msgId":"1","action":"Heartbeat","enc":"json","payload":[2, "1", "Heartbeat", {}]}
    {"ts":"2026-11-24T10:00:01.200000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCharger","opcode":"text","size":50,"msgType":3,"msgId":"1","action":"Heartbeat","latencyMs":"100.000","fault":{"rule":"slow-backend","kind":"delay","hit":1,"ms":250},"enc":"json","payload":[3,"1",{"currentTime":"2026-11-24T10:00:01.000Z"}]}
    {"ts":"2026-11-24T10:00:01.300000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCharger","opcode":"text","size":40,"msgType":2,"msgId":"w-1","action":"TriggerMessage","injected":true,"enc":"json","payload":[2,"w-1","TriggerMessage",{"requestedMessage":"StatusNotification"}]}
    {"ts":"2026-11-24T10:00:01.400000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCSMS","opcode":"binary","size":3,"enc":"base64","payload":"AQID"}
    {"ts":"2026-11-24T10:00:01.500000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCSMS","opcode":"text","size":9,"malformed":{"reason":"notJSON","detail":"invalid JSON at byte 0"},"enc":"text","payload":"not json!"}
    {"ts":"2026-11-24T10:00:02.000000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCSMS","opcode":"close","size":6,"code":1000,"reason":"bye"}
    {"ts":"2026-11-24T10:00:02.001000Z","kind":"frame","conn":1,"chargePoint":"CP 1","dir":"toCharger","opcode":"close","size":2,"code":1000,"reason":""}
    {"ts":"2026-11-24T10:00:02.002000Z","kind":"close","conn":1,"chargePoint":"CP 1","by":"charger","clean":true,"transportClosedBy":"csms","durationMs":1002.0,"messages":{"toCSMS":3,"toCharger":2},"code":1000,"reason":"bye"}
    {"ts":"2026-11-24T10:00:03.000000Z","kind":"reject","conn":2,"chargePoint":"CP-2","status":401,"cause":"upstreamStatus","detail":"the backend answered 401","path":"/ocpp/CP-2","remote":"10.0.0.8:50124","offered":["ocpp2.0.1"],"headers":{"host":"x","upgrade":"websocket","connection":"Upgrade","sec-websocket-key":"AQIDBAUGBwgJCgsMDQ4PEA==","sec-websocket-version":"13"},"body":"nope"}

    """#

@Suite("pcapng export")
struct PcapngExportTests {
    @Test("Sec-WebSocket-Accept is computed as RFC 6455 section 1.3 shows")
    func acceptKey() {
        #expect(WebSocketWire.accept(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("tshark reads the export without warnings: same text frames, payloads, comments and times as the capture",
          .enabled(if: Program.find("tshark") != nil, "tshark is installed by scripts/setup.sh"))
    func tsharkReadsExport() async throws {
        let directory = temporaryPath("export")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let capture = directory + "/witness.jsonl"
        try handwrittenCapture.write(toFile: capture, atomically: true, encoding: .utf8)
        let pcapng = directory + "/out.pcapng"
        let summary = try PcapngExporter.export(capture: [capture], to: pcapng)
        #expect(summary.connections == 1)
        #expect(summary.rejected == 1)
        #expect(summary.messages == 5)

        let tshark = Program.find("tshark")!
        let texts = try await Program.run(tshark, ["-r", pcapng, "-Y", "websocket.opcode == 1", "-T", "fields", "-e", "websocket.payload.text"])
        #expect(texts.status == 0)
        #expect(
            texts.output.split(separator: "\n").map(String.init) == [
                #"[2, "1", "Heartbeat", {}]"#,
                #"[3,"1",{"currentTime":"2026-11-24T10:00:01.000Z"}]"#,
                #"[2,"w-1","TriggerMessage",{"requestedMessage":"StatusNotification"}]"#,
                "not json!",
            ]
        )
        // Charger frames are masked as on the wire; backend frames are not.
        let masks = try await Program.run(tshark, ["-r", pcapng, "-Y", "websocket", "-T", "fields", "-e", "ip.src", "-e", "websocket.mask", "-e", "websocket.opcode"])
        #expect(
            masks.output.split(separator: "\n").map(String.init) == [
                "10.0.0.7\t1\t1", "127.0.0.1\t0\t1", "127.0.0.1\t0\t1", "10.0.0.7\t1\t2", "10.0.0.7\t1\t1", "10.0.0.7\t1\t8",
                "127.0.0.1\t0\t8",
            ]
        )
        let closeReason = try await Program.run(tshark, ["-r", pcapng, "-Y", "websocket.opcode == 8", "-T", "fields", "-e", "websocket.payload.close.status_code", "-e", "websocket.payload.close.reason"])
        #expect(closeReason.output.split(separator: "\n").first == "1000\tbye")

        // Handshake and rejection as HTTP, with the recorded request and the computed accept key.
        let http = try await Program.run(tshark, ["-r", pcapng, "-Y", "http", "-T", "fields", "-e", "http.request.uri", "-e", "http.response.code", "-e", "http.sec_websocket_accept"])
        #expect(http.output.split(separator: "\n").map(String.init) == ["/ocpp/CP%201\t\t", "\t101\ts3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "/ocpp/CP-2\t\t", "\t401\t"])

        // Fault and injection comments sit on the packets they describe; times are the recorded ones.
        let comments = try await Program.run(tshark, ["-r", pcapng, "-Y", "websocket", "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.comment"])
        let lines = comments.output.split(separator: "\n").map(String.init)
        #expect(lines[1].hasPrefix("1795514401.200000000\tfault injected: delay by rule slow-backend"))
        #expect(lines[1].contains("\"ms\":250"))
        #expect(lines[2].hasSuffix("originated by OCPP Witness, not by the peer"))
        #expect(lines[4].hasSuffix("not OCPP-J: invalid JSON at byte 0"))

        // Consistent sequence numbers: no expert warnings or errors about the synthesized TCP.
        let expert = try await Program.run(tshark, ["-r", pcapng, "-q", "-z", "expert,warn"])
        #expect(expert.status == 0)
        #expect(!expert.output.contains("Warns") && !expert.output.contains("Errors"), "\(expert.output)")
        #expect(!expert.errors.contains("appears to have been cut short"))
    }

    @Test("exported pcapng imports back into the same messages (libpcap reads the pcapng, raw IP link type)")
    func roundTrip() throws {
        let directory = temporaryPath("roundtrip")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../captures/samples/demo-pilot.jsonl").standardized.path
        let pcapng = directory + ".pcapng"
        defer { try? FileManager.default.removeItem(atPath: pcapng) }
        let summary = try PcapngExporter.export(capture: [sample], to: pcapng)
        #expect(summary.messages > 100)

        let writer = try CaptureWriter(configuration: .init(directory: directory, fsync: .never), header: CaptureHeader())
        let statistics = try PcapImporter.importFile(pcapng, filter: "tcp", into: writer)
        writer.close()
        #expect(statistics.errors.isEmpty)
        #expect(statistics.webSocketConnections == summary.connections)
        let original = messageFacts(try readCapture(sample))
        let imported = messageFacts(try readCapture(directory))
        #expect(imported == original)
        #expect(!imported.isEmpty)
    }
}
