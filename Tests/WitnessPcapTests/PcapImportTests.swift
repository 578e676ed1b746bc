import ChildProcesses
import Foundation
import NIOCore
import OCPPWire
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@testable import WitnessPcap

/// Whether this machine lets the tests capture on the loopback interface (root or CAP_NET_RAW).
private let canCaptureLoopback: Bool = (try? PacketSource.live(interface: "lo")) != nil

@Suite("pcap import and passive capture")
struct PcapImportTests {
    @Test("a tcpdump recording of a proxied session (lo: Ethernet, any: Linux cooked) imports into what the proxy recorded",
          .enabled(if: Program.find("tcpdump") != nil && canCaptureLoopback, "needs tcpdump (set-up installs it) and capture rights"))
    func tcpdumpRecordingImports() async throws {
        let bench = try await ProxyHarness.start()
        let directory = temporaryPath("tcpdump")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let filter = "tcp port \(bench.proxyURL.port)"
        let dumps = try ["lo", "any"].map { interface in
            try Tcpdump(interface: interface, filter: filter, file: "\(directory)/\(interface).pcap")
        }
        for dump in dumps { try await dump.waitUntilListening() }
        try await bench.runCharger(ChargerProfile(id: "CP-DUMP-16", version: .v16))
        try await bench.runCharger(ChargerProfile(id: "CP-DUMP-201", version: .v201))
        await bench.recorder.flush()
        let expected = bench.proxy.statistics.messagesToCSMS + bench.proxy.statistics.messagesToCharger
        // Both connections end with a close frame each way.
        for dump in dumps { try await dump.stop(afterMessages: expected, closes: 4) }
        let proxied = messageFacts(try readCapture(bench.captureDirectory))
        await bench.stop()
        #expect(proxied.count == 4)

        for interface in ["lo", "any"] {
            let output = "\(directory)/\(interface)-capture"
            let writer = try CaptureWriter(configuration: .init(directory: output, fsync: .never), header: CaptureHeader())
            let statistics = try PcapImporter.importFile("\(directory)/\(interface).pcap", filter: nil, into: writer)
            writer.close()
            #expect(statistics.errors.isEmpty, "\(interface): \(statistics.errors)")
            #expect(statistics.webSocketConnections == 2)
            let records = try readCapture(output)
            #expect(messageFacts(records) == proxied, "\(interface)")
            let opens = records.filter { $0.kind == "open" }
            #expect(opens.map { $0.fields["version"]?.stringValue } == ["1.6", "2.0.1"])
            #expect(records.filter { $0.kind == "close" }.map { $0.fields["clean"]?.boolValue } == [true, true])
            // Responses are correlated with their CALLs as in a proxy capture.
            #expect(records.contains { $0.fields["msgType"]?.intValue == 3 && $0.action == "BootNotification" && $0.fields["latencyMs"] != nil })
        }
    }

    @Test("a recording of peers that compress (permessage-deflate, context takeover) imports as the text they exchanged",
          .enabled(if: Program.find("tcpdump") != nil && canCaptureLoopback, "needs tcpdump (set-up installs it) and capture rights"))
    func compressedRecordingImports() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = root.appendingPathComponent(".tools/venv/bin/python").path
        let script = root.appendingPathComponent("Tests/Interop/deflate_peers.py").path
        try #require(FileManager.default.isExecutableFile(atPath: python), "run `make setup`: \(python) is missing")
        let directory = temporaryPath("deflate-dump")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A Python websockets server and client, both compressing, talking directly.
        let server = ChildProcess()
        server.executableURL = URL(fileURLWithPath: python)
        server.arguments = [script, "server", directory + "/port", "60"]
        server.standardError = nil
        try server.run()
        defer { server.terminate() }
        var port: Int?
        for _ in 0..<500 where port == nil {
            port = (try? String(contentsOfFile: directory + "/port", encoding: .utf8)).flatMap { Int($0) }
            if port == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let serverPort = try #require(port)
        let dump = try Tcpdump(interface: "lo", filter: "tcp port \(serverPort)", file: "\(directory)/deflate.pcap")
        try await dump.waitUntilListening()
        let client = try await Program.run(python, [script, "client", "ws://127.0.0.1:\(serverPort)/CP-DEFLATE", "60"])
        #expect(client.status == 0, "\(client.errors)")
        #expect(client.output.contains(#""matched": 60"#))
        try await dump.stop(afterMessages: 120, closes: 2)

        let output = "\(directory)/capture"
        let writer = try CaptureWriter(configuration: .init(directory: output, fsync: .never), header: CaptureHeader())
        let statistics = try PcapImporter.importFile("\(directory)/deflate.pcap", filter: nil, into: writer)
        writer.close()
        #expect(statistics.errors.isEmpty, "\(statistics.errors)")
        let records = try readCapture(output)
        #expect(records.first { $0.kind == "open" }?.fields["compression"]?["extension"]?.stringValue?.hasPrefix("permessage-deflate") == true)
        let text = records.filter { $0.kind == "frame" && $0.fields["opcode"]?.stringValue == "text" }
        #expect(text.count == 120)
        #expect(text.allSatisfy { $0.fields["compressed"]?.boolValue == true })
        let answers = text.filter { $0.direction == .toCharger }
        #expect(answers.last?.message?[2]?["data"]?.stringValue?.hasPrefix("meter reading 59 of a long charging session") == true)
        #expect(answers.count == 60 && answers.allSatisfy { $0.action == "DataTransfer" })
    }

    @Test("TCP reassembly puts out-of-order segments back, drops retransmissions and overlaps, joins fragments")
    func reassembly() throws {
        var wire = SyntheticConnection(client: Endpoint("10.0.0.2:40000")!, server: Endpoint("10.0.0.1:80")!)
        var records: [CaptureEvent] = []
        let decoder = TrafficDecoder { records.append($0) }
        func feed(_ packets: [[UInt8]]) {
            for packet in packets { decoder.consume(CapturedPacket(microseconds: 1_000_000, bytes: packet, originalLength: packet.count), linkType: 101) }
        }
        feed(wire.handshake(path: "/ocpp/CP-R", subprotocol: "ocpp1.6"))
        let boot = #"[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]"#
        let frame = WebSocketWire.frame(opcode: 1, payload: Array(boot.utf8), maskKey: [1, 2, 3, 4])
        let pieces = [Array(frame[0..<10]), Array(frame[10..<40]), Array(frame[40...])]
        let segments = wire.segments(fromClient: true, pieces)
        // Third piece first, then the first twice (retransmitted), then the second overlapping the first.
        let overlap = wire.packet(fromClient: true, sequenceOffset: 5 - frame.count, Array(frame[5..<40]))
        feed([segments[2], segments[0], segments[0], overlap])
        // The answer in two WebSocket fragments (text + continuation).
        let answer = #"[3,"1",{"currentTime":"2026-11-24T10:00:00Z","interval":300,"status":"Accepted"}]"#
        let bytes = Array(answer.utf8)
        let first = [0x01, UInt8(20)] + bytes[0..<20]
        let second = [0x80, UInt8(bytes.count - 20)] + bytes[20...]
        feed(wire.segments(fromClient: false, [Array(first), Array(second)]))
        decoder.finish()

        let frames = records.compactMap { event -> FrameEvent? in
            if case .frame(let frame) = event { return frame }
            return nil
        }
        #expect(frames.map { String(buffer: $0.payload) } == [boot, answer])
        #expect(frames.map(\.fragments) == [1, 2])
        #expect(frames[1].correlatedAction == "BootNotification")
        #expect(frames[0].chargePoint == "CP-R")
        #expect(decoder.statistics.retransmittedBytes == 10 + 5)
        #expect(decoder.statistics.outOfOrderSegments == 1)
        #expect(decoder.statistics.errors.isEmpty)
    }

    @Test("TLS, a connection begun before the capture and missing bytes are errors on their own connection only")
    func undecodableConnections() throws {
        var records: [CaptureEvent] = []
        let decoder = TrafficDecoder { records.append($0) }
        func feed(_ packets: [[UInt8]]) {
            for packet in packets { decoder.consume(CapturedPacket(microseconds: 2_000_000, bytes: packet, originalLength: packet.count), linkType: 101) }
        }
        var tls = SyntheticConnection(client: Endpoint("10.0.0.3:40001")!, server: Endpoint("10.0.0.1:443")!)
        feed(tls.tcpHandshake())
        feed(tls.segments(fromClient: true, [[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]]))
        var midStream = SyntheticConnection(client: Endpoint("10.0.0.4:40002")!, server: Endpoint("10.0.0.1:80")!)
        feed(midStream.segments(fromClient: true, [WebSocketWire.frame(opcode: 1, payload: Array("[2,\"9\",\"Heartbeat\",{}]".utf8), maskKey: [9, 9, 9, 9])]))
        var gap = SyntheticConnection(client: Endpoint("10.0.0.5:40003")!, server: Endpoint("10.0.0.1:80")!)
        feed(gap.handshake(path: "/CP-GAP", subprotocol: "ocpp1.6"))
        let lost = WebSocketWire.frame(opcode: 1, payload: Array("[2,\"1\",\"Heartbeat\",{}]".utf8), maskKey: [1, 1, 1, 1])
        _ = gap.segments(fromClient: true, [lost])  // never delivered
        feed(gap.segments(fromClient: true, [WebSocketWire.frame(opcode: 1, payload: Array("[2,\"2\",\"Heartbeat\",{}]".utf8), maskKey: [2, 2, 2, 2])]))
        var good = SyntheticConnection(client: Endpoint("10.0.0.6:40004")!, server: Endpoint("10.0.0.1:80")!)
        feed(good.handshake(path: "/CP-GOOD", subprotocol: "ocpp1.6"))
        feed(good.segments(fromClient: true, [WebSocketWire.frame(opcode: 1, payload: Array("[2,\"1\",\"Heartbeat\",{}]".utf8), maskKey: [3, 3, 3, 3])]))
        decoder.finish()

        var errors: [String: String] = [:]
        var frames: [String] = []
        for event in records {
            switch event {
            case .record(let kind, _, _, _, _, let fields) where kind == .error:
                errors[fields["error"]?.stringValue ?? ""] = fields["detail"]?.stringValue
            case .frame(let frame):
                frames.append(frame.chargePoint)
            default:
                break
            }
        }
        #expect(errors["tlsTraffic"]?.contains("10.0.0.3:40001 → 10.0.0.1:443 is TLS") == true)
        #expect(errors["midStream"]?.contains("began before the capture") == true)
        #expect(errors["missingSegments"]?.contains("10.0.0.5:40003 → 10.0.0.1:80") == true)
        #expect(frames == ["CP-GOOD"])
    }

    @Test("Ethernet (with a VLAN tag), Linux cooked SLL and SLL2, BSD loopback and raw IP frames decode to the same segment")
    func linkTypes() throws {
        let ip = PacketBuilder.ipv4TCP(
            from: Endpoint("10.0.0.2:40000")!, to: Endpoint("10.0.0.1:80")!, sequence: 7, acknowledgement: 9, flags: [.psh, .ack],
            identification: 1, payload: Array("hello".utf8)[...]
        )
        let ethernet: [UInt8] = Array(repeating: 0, count: 12) + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + ip + [0, 0, 0]  // VLAN 5, padding
        let sll: [UInt8] = Array(repeating: 0, count: 14) + [0x08, 0x00] + ip
        let sll2: [UInt8] = [0x08, 0x00] + Array(repeating: 0, count: 18) + ip
        let null: [UInt8] = [2, 0, 0, 0] + ip
        let loop: [UInt8] = [0, 0, 0, 2] + ip
        for (bytes, link) in [(ethernet, Int32(1)), (sll, 113), (sll2, 276), (null, 0), (loop, 108), (ip, 101), (ip, 12)] {
            let segment = try PacketDecoder.decode(bytes, linkType: link).get()
            #expect(segment.source == Endpoint("10.0.0.2:40000")!)
            #expect(segment.destination == Endpoint("10.0.0.1:80")!)
            #expect(Array(segment.payload) == Array("hello".utf8), "link type \(link)")
            #expect(segment.sequence == 7)
        }
        #expect(throws: PacketSkip.unsupportedLinkType) { try PacketDecoder.decode(ip, linkType: 147).get() }
    }

    @Test("a file cut in the middle of a packet keeps what was decoded and says where it stopped")
    func truncatedFile() throws {
        let directory = temporaryPath("truncated")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../captures/samples/demo-pilot.jsonl").standardized.path
        let pcapng = directory + ".pcapng"
        defer { try? FileManager.default.removeItem(atPath: pcapng) }
        _ = try PcapngExporter.export(capture: [sample], to: pcapng)
        let data = try Data(contentsOf: URL(fileURLWithPath: pcapng))
        try data.prefix(data.count / 2 + 7).write(to: URL(fileURLWithPath: pcapng))

        let writer = try CaptureWriter(configuration: .init(directory: directory, fsync: .never), header: CaptureHeader())
        let statistics = try PcapImporter.importFile(pcapng, filter: nil, into: writer)
        writer.close()
        #expect(statistics.messages > 10)
        #expect(statistics.errors["truncatedFile"] == 1)
        let records = try readCapture(directory)
        let error = records.first { $0.kind == "error" && $0.fields["error"]?.stringValue == "truncatedFile" }
        #expect(error?.fields["detail"]?.stringValue?.contains(pcapng) == true)
        #expect(records.filter { $0.kind == "frame" }.count == statistics.messages)
    }

    @Test("a missing file or an invalid filter is a clear error")
    func badInputs() throws {
        let directory = temporaryPath("bad")
        let writer = try CaptureWriter(configuration: .init(directory: directory, fsync: .never), header: CaptureHeader())
        defer {
            writer.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
        #expect(throws: PacketSourceError.self) { try PcapImporter.importFile("/nonexistent/site.pcap", filter: nil, into: writer) }
        let sample = temporaryPath("empty") + ".pcapng"
        _ = try PcapngExporter.export(capture: [URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../captures/samples/demo-pilot.jsonl").standardized.path], to: sample)
        defer { try? FileManager.default.removeItem(atPath: sample) }
        do {
            _ = try PcapImporter.importFile(sample, filter: "tcp port banana", into: writer)
            Issue.record("an invalid filter was accepted")
        } catch {
            #expect("\(error)".contains("invalid filter 'tcp port banana'"))
        }
    }

    @Test("sniff records a live session on loopback into the same messages the proxy recorded",
          .enabled(if: canCaptureLoopback, "needs capture rights on lo"))
    func passiveCapture() async throws {
        let bench = try await ProxyHarness.start()
        let directory = temporaryPath("sniff")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory, fsync: .never), header: CaptureHeader())
        let capture = try PassiveCapture(interface: "lo", filter: "tcp port \(bench.proxyURL.port)", writer: writer)
        try await bench.runCharger(ChargerProfile(id: "CP-SNIFF", version: .v201))
        await bench.recorder.flush()
        let proxied = messageFacts(try readCapture(bench.captureDirectory))
        // The capture thread may still be reading the last packets off the socket buffer on a loaded machine.
        let expected = proxied.values.reduce(0) { $0 + $1.filter { $0.opcode != "close" }.count }
        let deadline = Date().addingTimeInterval(30)
        while capture.statistics.messages < expected, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(capture.stop() == nil)
        writer.close()
        await bench.stop()
        let sniffed = messageFacts(try readCapture(directory))
        let summary = { (facts: [String: [MessageFacts]]) in facts.keys.sorted().map { "\($0): \(facts[$0]!.count)" }.joined(separator: ", ") }
        #expect(sniffed == proxied, "sniffed \(summary(sniffed)); proxied \(summary(proxied)); statistics \(capture.statistics)")
    }

    @Test("capturing on an interface that does not exist says so")
    func noSuchInterface() {
        do {
            _ = try PacketSource.live(interface: "witness-no-such-if0")
            Issue.record("opened a nonexistent interface")
        } catch {
            #expect("\(error)".contains("witness-no-such-if0"))
        }
    }
}

/// A running tcpdump writing a pcap file.
private final class Tcpdump {
    let process = ChildProcess()
    let errors: String
    let file: String

    init(interface: String, filter: String, file: String) throws {
        self.file = file
        self.errors = file + ".stderr"
        _ = FileManager.default.createFile(atPath: self.errors, contents: nil)
        self.process.executableURL = URL(fileURLWithPath: Program.find("tcpdump")!)
        self.process.arguments = ["-i", interface, "-U", "-s", "0", "-w", file, filter]
        self.process.standardError = FileHandle(forWritingAtPath: self.errors)
        self.process.standardOutput = FileHandle.nullDevice
        try self.process.run()
    }

    /// tcpdump says "listening on" once its capture is open.
    func waitUntilListening() async throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: self.errors, encoding: .utf8), text.contains("listening on") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw PacketSourceError("tcpdump did not start: \((try? String(contentsOfFile: self.errors, encoding: .utf8)) ?? "")")
    }

    /// Stops tcpdump once its file holds `messages` WebSocket messages (with -U it writes every packet as
    /// it arrives, and a pcap file needs no trailer). Children of the test runner inherit its blocked
    /// signal mask, so tcpdump ignores SIGINT and SIGTERM here: it is stopped with SIGKILL.
    /// Stops tcpdump once its file holds `messages` text or binary frames and `closes` close frames: the
    /// closing handshake of the last connection can reach the file after its last message.
    func stop(afterMessages messages: Int, closes: Int = 0) async throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            var count = 0
            var closeFrames = 0
            if let source = try? PacketSource.open(file: self.file) {
                let decoder = TrafficDecoder {
                    guard case .frame(let frame) = $0 else { return }
                    if frame.opcode == .text || frame.opcode == .binary { count += 1 }
                    if frame.opcode == .close { closeFrames += 1 }
                }
                while case .packet(let packet) = (try? source.next()) ?? .end { decoder.consume(packet, linkType: source.linkType) }
            }
            if count >= messages && closeFrames >= closes { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }
}

/// Builds the packets of one TCP connection with consistent sequence numbers.
struct SyntheticConnection {
    let client: Endpoint
    let server: Endpoint
    var clientSequence: UInt32 = 1000
    var serverSequence: UInt32 = 5000
    var identification: UInt16 = 0

    init(client: Endpoint, server: Endpoint) {
        self.client = client
        self.server = server
    }

    mutating func tcpHandshake() -> [[UInt8]] {
        var packets: [[UInt8]] = []
        packets.append(self.raw(fromClient: true, flags: .syn, sequence: self.clientSequence, []))
        self.clientSequence &+= 1
        packets.append(self.raw(fromClient: false, flags: [.syn, .ack], sequence: self.serverSequence, []))
        self.serverSequence &+= 1
        packets.append(self.raw(fromClient: true, flags: .ack, sequence: self.clientSequence, []))
        return packets
    }

    mutating func handshake(path: String, subprotocol: String) -> [[UInt8]] {
        var packets = self.tcpHandshake()
        let request = "GET \(path) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: \(subprotocol)\r\n\r\n"
        packets += self.segments(fromClient: true, [Array(request.utf8)])
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: \(subprotocol)\r\n\r\n"
        packets += self.segments(fromClient: false, [Array(response.utf8)])
        return packets
    }

    /// Consecutive segments carrying `pieces`, advancing the sender's sequence number.
    mutating func segments(fromClient: Bool, _ pieces: [[UInt8]]) -> [[UInt8]] {
        pieces.map { piece in
            let sequence = fromClient ? self.clientSequence : self.serverSequence
            let packet = self.raw(fromClient: fromClient, flags: [.psh, .ack], sequence: sequence, piece)
            if fromClient { self.clientSequence &+= UInt32(piece.count) } else { self.serverSequence &+= UInt32(piece.count) }
            return packet
        }
    }

    /// A segment at an offset from the current sequence number, without advancing it (retransmissions).
    mutating func packet(fromClient: Bool, sequenceOffset: Int, _ bytes: [UInt8]) -> [UInt8] {
        let base = fromClient ? self.clientSequence : self.serverSequence
        return self.raw(fromClient: fromClient, flags: [.psh, .ack], sequence: base &+ UInt32(bitPattern: Int32(sequenceOffset)), bytes)
    }

    private mutating func raw(fromClient: Bool, flags: TCPFlags, sequence: UInt32, _ bytes: [UInt8]) -> [UInt8] {
        self.identification &+= 1
        return PacketBuilder.ipv4TCP(
            from: fromClient ? self.client : self.server, to: fromClient ? self.server : self.client, sequence: sequence,
            acknowledgement: fromClient ? self.serverSequence : self.clientSequence, flags: flags, identification: self.identification,
            payload: bytes[...]
        )
    }
}
