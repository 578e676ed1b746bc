import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// A TCP connection to the proxy that speaks bytes only: the test writes the upgrade request and frames
/// itself, and nothing answers on its behalf (no pong, no close reply).
struct RawPeer {
    let channel: any Channel
    let tap: WireTap

    static func connect(port: Int, group: any EventLoopGroup) async throws -> RawPeer {
        // A small receive buffer, so that a peer that stops reading makes the proxy's writes wait soon.
        let channel = try await ClientBootstrap(group: group).channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .connect(host: "127.0.0.1", port: port).get()
        return RawPeer(channel: channel, tap: try await WireTap.install(on: channel))
    }

    /// Sends an upgrade request for `path` with these header lines and waits for the answer's head.
    static func upgraded(
        port: Int, group: any EventLoopGroup, path: String, requestLine version: String = "HTTP/1.1",
        headers: [String] = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: ocpp1.6"]
    ) async throws -> (RawPeer, String) {
        let peer = try await Self.connect(port: port, group: group)
        let request = "GET \(path) \(version)\r\nHost: 127.0.0.1\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n"
        try await peer.tap.send(Array(request.utf8))
        _ = await eventually { peer.text.contains("\r\n\r\n") || !peer.channel.isActive }
        return (peer, peer.text.components(separatedBy: "\r\n\r\n").first ?? "")
    }

    var text: String { String(decoding: self.tap.bytes, as: UTF8.self) }

    /// The close code of the first close frame among the bytes received after the upgrade's head.
    var closeCode: UInt16? {
        let bytes = self.tap.bytes
        guard let end = self.text.range(of: "\r\n\r\n").map({ self.text.utf8.distance(from: self.text.startIndex, to: $0.upperBound) }) else { return nil }
        return firstCloseCode(in: Array(bytes[end...]))
    }

    func close() async { try? await self.channel.close() }
}

/// Walks unmasked or masked frames in `bytes` and returns the code of the first close frame.
func firstCloseCode(in bytes: [UInt8]) -> UInt16? {
    var index = 0
    while index + 2 <= bytes.count {
        let header = bytes.withUnsafeBytes { WebSocketFrameHeader.parse(UnsafeRawBufferPointer(rebasing: $0[index...]), maximumPayload: .max) }
        guard case .header(let parsed) = header, index + parsed.frameLength <= bytes.count else { return nil }
        if parsed.opcode == .close, parsed.payloadLength >= 2 {
            var payload = Array(bytes[(index + parsed.length)..<(index + parsed.length + 2)])
            if let key = parsed.maskKey {
                payload[0] ^= key.b0
                payload[1] ^= key.b1
            }
            return UInt16(payload[0]) << 8 | UInt16(payload[1])
        }
        index += parsed.frameLength
    }
    return nil
}

@Suite("Hostile peers: bounded memory, deadlines and RFC 6455 on record")
struct HardeningTests {
    func pair(_ harness: ProxyHarness, _ id: String) async throws -> (charger: OCPPEndpoint, csms: OCPPEndpoint) {
        var url = harness.proxyURL
        url.pathPrefix = "/" + id
        let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
        return (charger, await harness.csms.connection(id))
    }

    // MARK: Memory

    @Test("continuation frames streamed without end close the connection 1009 on both sides once the message limit is passed")
    func endlessContinuations() async throws {
        try await ProxyHarness.start(configure: {
            $0.maximumFrameBytes = 32 << 10
            $0.maximumMessageBytes = 64 << 10
        }).run { harness in
            let (bystander, _) = try await self.pair(harness, "CP-calm")
            let (charger, csms) = try await self.pair(harness, "CP-stream")
            let tap = try await WireTap.install(on: charger.channel)
            let csmsTap = try await WireTap.install(on: csms.channel)
            let chunk = String(repeating: "x", count: 16 << 10)
            try await tap.send(wireFrame(#"[2,"s1","DataTransfer",{"vendorId":"x","data":""# + chunk, fin: false, mask: WebSocketMask(1, 2, 3, 4)))
            for _ in 0..<8 {
                guard charger.isActive else { break }
                try? await tap.send(wireFrame(chunk, opcode: .continuation, fin: false, mask: WebSocketMask(1, 2, 3, 4)))
            }
            #expect(await eventually { charger.closeReceived != nil })
            #expect(charger.closeReceived?.code == 1009)
            // The backend is told why, with a close frame of its own, and got less than the limit.
            #expect(await eventually { csms.closeReceived != nil })
            #expect(csms.closeReceived?.code == 1009)
            #expect(csmsTap.bytes.count < 64 << 10)
            let error = try #require(try await harness.records().first { $0.kind == "error" && $0.fields["error"] == "messageTooLarge" })
            #expect(error.chargePoint == "CP-stream")
            #expect(try await bystander.call("Heartbeat", [:]).isResult)
            await bystander.close()
        }
    }

    @Test("a charger sending into a delay fault is not read past the held-bytes budget, and its frames still arrive in order")
    func delayBudget() async throws {
        let policy = try PolicyLoader.parse("rules:\n  - name: hold\n    match: {chargePoint: CP-flood, action: DataTransfer}\n    fault: {delay: {ms: 1500}}\n")
        try await ProxyHarness.start(configure: {
            $0.faults = FaultInjection(ChaosEngine(policy: policy))
            $0.heldBytesPerConnection = 32 << 10
        }).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-flood")
            let tap = try await WireTap.install(on: charger.channel)
            let data = String(repeating: "d", count: 4000)
            var frames: [UInt8] = []
            for index in 0..<200 {
                frames += wireFrame(#"[2,"f\#(index)","DataTransfer",{"vendorId":"x","data":"\#(data)"}]"#, mask: WebSocketMask(9, 9, 9, 9))
            }
            // 800 kB sent at once; the proxy holds at most the budget plus what one read brought in.
            let sending = Task { try await tap.send(frames) }
            var peak = 0
            for _ in 0..<50 {
                peak = max(peak, harness.proxy.statistics.heldBytes)
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(peak > 0)
            #expect(peak <= (32 << 10) + (256 << 10))
            #expect(await eventually(seconds: 60) { csms.transcript.received.count == 200 })
            #expect(csms.transcript.received.map { $0.dropFirst(4).prefix(while: { $0 != "\"" }) } == (0..<200).map { "f\($0)"[...] })
            try await sending.value
            // The backend's answers are DataTransfer too, and held on their way back; then nothing is left.
            #expect(await eventually(seconds: 30) { harness.proxy.statistics.heldBytes == 0 })
            await charger.close()
        }
    }

    @Test("while the recorder is behind, a charger flooding the proxy is paused and another charger's calls still go through")
    func recorderFairness() async throws {
        // The writer's thread stays in the observer at the first frame until the test lets it go: the recorder
        // falls behind at once.
        let gate = RecorderGate()
        try await ProxyHarness.start(
            recorderConfigure: {
                $0.highWatermark = 4096
                $0.lowWatermark = 1024
            },
            observer: { record in if record.kind == "frame" { gate.wait() } }
        ).run { harness in
            // Stopping the harness flushes the recorder, which needs the writer back, whatever happened here.
            defer { gate.open() }
            let (good, _) = try await self.pair(harness, "CP-polite")
            let (flooder, csms) = try await self.pair(harness, "CP-flood")
            let tap = try await WireTap.install(on: flooder.channel)
            var frames: [UInt8] = []
            for index in 0..<30000 {
                frames += wireFrame(#"[2,"h\#(index)","Heartbeat",{}]"#, mask: WebSocketMask(5, 5, 5, 5))
            }
            let flooding = Task { try? await tap.send(frames) }
            // The queue's 4,096 records include the pairs' own (opens, the polite charger's boot): the flooder is
            // paused a few dozen messages short of the watermark.
            #expect(await eventually { csms.transcript.received.count >= 4096 - 512 }, "\(csms.transcript.received.count) received")
            // The flooder is held near the watermark (one read of the socket past it); the polite charger is not held.
            for _ in 0..<3 {
                #expect(try await good.call("Heartbeat", [:], timeout: .seconds(10)).isResult)
            }
            #expect(csms.transcript.received.count < 30000)
            gate.open()
            #expect(await eventually(seconds: 30) { csms.transcript.received.count == 30000 })
            flooding.cancel()
            await good.close()
            await flooder.close()
        }
    }

    @Test("a bandwidth limit applies to the connection's cumulative rate, not to each message from now")
    func bandwidthCumulative() async throws {
        let policy = try PolicyLoader.parse("rules:\n  - name: slow\n    match: {action: DataTransfer}\n    fault: {bandwidth: {bytesPerSecond: 10000}}\n")
        try await ProxyHarness.start(configure: { $0.faults = FaultInjection(ChaosEngine(policy: policy)) }).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-slow-link")
            let tap = try await WireTap.install(on: charger.channel)
            let data = String(repeating: "b", count: 1950)
            var frames: [UInt8] = []
            for index in 0..<5 {
                frames += wireFrame(#"[2,"b\#(index)","DataTransfer",{"vendorId":"x","data":"\#(data)"}]"#, mask: WebSocketMask(3, 3, 3, 3))
            }
            let started = Date()
            try await tap.send(frames)
            #expect(await eventually(seconds: 30) { csms.transcript.received.count == 5 })
            // Five messages of about 2 kB at 10 kB/s take about a second together, however fast the machine.
            #expect(Date().timeIntervalSince(started) >= 0.8)
            await charger.close()
        }
    }

    // MARK: Deadlines

    @Test("a charger that never answers the backend's close is cut off after the closing deadline, and the record names it")
    func closeNeverAnswered() async throws {
        try await ProxyHarness.start(configure: { $0.closingTimeout = .milliseconds(500) }).run { harness in
            let (peer, head) = try await RawPeer.upgraded(port: harness.proxyURL.port, group: harness.group, path: "/CP-mute")
            #expect(head.hasPrefix("HTTP/1.1 101"))
            let csms = await harness.csms.connection("CP-mute")
            let closing = Task { await csms.close(code: .normalClosure, reason: "bye") }
            #expect(await eventually { peer.closeCode == 1000 })
            await harness.waitForClosedPairs(1)
            let timeout = try #require(try await harness.records().first { $0.fields["error"] == "closeTimeout" })
            #expect(timeout.direction == .toCSMS)
            #expect(timeout.fields["detail"]?.stringValue?.hasPrefix("charger did not answer the close frame from the csms") == true)
            #expect(await eventually { !peer.channel.isActive })
            await closing.value
        }
    }

    @Test("a charger that stops reading cannot keep its socket open after the proxy closes it")
    func closeToPeerThatDoesNotRead() async throws {
        try await ProxyHarness.start(configure: { $0.closingTimeout = .seconds(1) }).run { harness in
            let (peer, head) = try await RawPeer.upgraded(port: harness.proxyURL.port, group: harness.group, path: "/CP-deaf")
            #expect(head.hasPrefix("HTTP/1.1 101"))
            try await peer.channel.setOption(ChannelOptions.autoRead, value: false).get()
            let csms = await harness.csms.connection("CP-deaf")
            let csmsTap = try await WireTap.install(on: csms.channel)
            // Enough to fill the charger's socket buffers and the proxy's; the backend's writes then wait.
            let sent = NIOLockedValueBox(0)
            let flood = Task {
                let frame = wireFrame(#"[2,"big","DataTransfer",{"vendorId":"x","data":""# + String(repeating: "z", count: 900_000) + #""}]"#, mask: nil)
                for _ in 0..<60 where !Task.isCancelled {
                    try? await csmsTap.send(frame)
                    sent.withLockedValue { $0 += 1 }
                }
            }
            // Until the backend's writes stall: the proxy has stopped reading it because the charger does not read.
            var last = -1
            for _ in 0..<60 {
                try await Task.sleep(for: .seconds(1))
                let now = sent.withLockedValue { $0 }
                if now == last && now > 0 { break }
                last = now
            }
            harness.proxy.disconnect(chargePoint: "CP-deaf", code: 1001, reason: "maintenance")
            #expect(await eventually(seconds: 15) { (try? await harness.records().contains { $0.fields["error"] == "closeTimeout" }) == true })
            // Reading again, the charger finds its connection closed behind what was buffered for it.
            try await peer.channel.setOption(ChannelOptions.autoRead, value: true).get()
            peer.channel.read()
            #expect(await eventually(seconds: 15) { !peer.channel.isActive })
            let timeout = try #require(try await harness.records().first { $0.fields["error"] == "closeTimeout" })
            #expect(timeout.direction == .toCSMS)
            #expect(timeout.fields["detail"]?.stringValue?.hasPrefix("charger did not") == true)
            flood.cancel()
        }
    }

    // MARK: RFC 6455 frames

    @Test("an unmasked charger frame, a masked backend frame and reserved bits are forwarded and recorded once per connection with their clause")
    func frameViolationsRecorded() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-rfc")
            let tap = try await WireTap.install(on: charger.channel)
            let csmsTap = try await WireTap.install(on: csms.channel)
            try await tap.send(wireFrame(#"[2,"u1","Heartbeat",{}]"#, mask: nil) + wireFrame(#"[2,"u2","Heartbeat",{}]"#, mask: nil))
            var rsv = wireFrame(#"[2,"r1","Heartbeat",{}]"#, mask: WebSocketMask(1, 1, 1, 1))
            rsv[0] |= 0x20
            try await tap.send(rsv)
            try await csmsTap.send(wireFrame(#"[2,"m1","TriggerMessage",{"requestedMessage":"Heartbeat"}]"#, mask: WebSocketMask(7, 7, 7, 7)))
            #expect(await eventually { (try? await harness.records().filter { $0.kind == "error" }.count) ?? 0 >= 3 })
            #expect(await eventually { charger.transcript.received.contains { $0.contains("m1") } })
            let errors = try await harness.records().filter { $0.kind == "error" }
            #expect(errors.compactMap { $0.fields["rule"]?.stringValue }.sorted() == ["websocket.maskedFrame", "websocket.reservedBits", "websocket.unmaskedFrame"])
            let unmasked = try #require(errors.first { $0.fields["rule"] == "websocket.unmaskedFrame" })
            #expect(unmasked.fields["clause"] == "RFC 6455 5.1")
            #expect(unmasked.direction == .toCSMS)
            #expect(errors.first { $0.fields["rule"] == "websocket.reservedBits" }?.fields["detail"]?.stringValue?.contains("RSV2") == true)
            await charger.close()
            await harness.waitForClosedPairs(1)
            let report = try await harness.report(checks: [])
            let rules = report.deviations.map(\.rule).filter { $0.hasPrefix("websocket.") }.sorted()
            #expect(rules == ["websocket.maskedFrame", "websocket.reservedBits", "websocket.unmaskedFrame"])
            #expect(report.deviations.first { $0.rule == "websocket.unmaskedFrame" }?.detail.contains("RFC 6455 5.1") == true)
        }
    }

    @Test("with --strict-websocket an unmasked charger frame fails the connection with 1002 on both sides")
    func strictUnmasked() async throws {
        try await ProxyHarness.start(configure: { $0.strictWebSocket = true }).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-strict")
            let tap = try await WireTap.install(on: charger.channel)
            try await tap.send(wireFrame(#"[2,"u1","Heartbeat",{}]"#, mask: nil))
            #expect(await eventually { charger.closeReceived != nil && csms.closeReceived != nil })
            #expect(charger.closeReceived?.code == 1002)
            #expect(csms.closeReceived?.code == 1002)
            #expect(csms.transcript.received.isEmpty)
            await harness.waitForClosedPairs(1)
            let error = try #require(try await harness.records().first { $0.kind == "error" })
            #expect(error.fields["rule"] == "websocket.unmaskedFrame")
        }
    }

    /// RFC 6455 8.1: text is UTF-8. By default the proxy forwards what came (the backend decides) and keeps the
    /// exact bytes; the capture itself stays UTF-8 JSON Lines. Before, the line held the raw bytes.
    @Test("a text message that is not UTF-8 is forwarded as it came and kept as base64 in a UTF-8 capture; --strict-websocket fails it with 1007", arguments: [false, true])
    func invalidUTF8(strict: Bool) async throws {
        let bytes: [UInt8] = Array(#"[2,"x1","DataTransfer",{"vendorId":"Stromm"#.utf8) + [0xFC, 0x6C, 0x6C, 0xC0, 0xAF] + Array(#""}]"#.utf8)
        try await ProxyHarness.start(configure: { $0.strictWebSocket = strict }).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-latin1")
            let tap = try await WireTap.install(on: charger.channel)
            try await tap.send(Array(buffer: WebSocketFrameHeader.frame(opcode: .text, maskKey: WebSocketMask(1, 2, 3, 4), payload: ByteBuffer(bytes: bytes))))
            if strict {
                #expect(await eventually { charger.closeReceived != nil && csms.closeReceived != nil })
                #expect(charger.closeReceived?.code == 1007)
                #expect(csms.closeReceived?.code == 1007)
            } else {
                // The backend got the message (the simulator reads it as it can) and the pair stays open.
                #expect(await eventually { csms.transcript.received.count == 1 })
                #expect(charger.closeReceived == nil)
                await charger.close()
            }
            await harness.waitForClosedPairs(1)
            let frame = try #require(try await harness.records().first { $0.kind == "frame" && $0.opcode == .text })
            #expect(frame.fields["invalidUTF8"] == true)
            #expect(frame.fields["enc"] == "base64")
            #expect(frame.payloadBytes == bytes)
            for file in try CaptureReader.captureFiles(at: harness.captureDirectory) {
                let data = try #require(FileManager.default.contents(atPath: file))
                #expect(String(validating: data, as: UTF8.self) != nil, "\(file) is not UTF-8")
            }
        }
    }

    /// Without a recorder nothing inspected messages, so the strict check read the frames' masked bytes and failed
    /// nearly every charger message with 1007.
    @Test("--strict-websocket without a capture forwards valid text and fails only text that is not UTF-8")
    func strictWithoutCapture() async throws {
        try await ProxyHarness.start(configure: { $0.strictWebSocket = true }, recording: false).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-strict-plain")
            for n in 0..<5 {
                let answer = try await charger.call("Heartbeat", [:], timeout: .seconds(10))
                #expect(answer.isResult, "Heartbeat \(n)")
            }
            #expect(charger.closeReceived == nil)
            let tap = try await WireTap.install(on: charger.channel)
            try await tap.send(Array(buffer: WebSocketFrameHeader.frame(opcode: .text, maskKey: WebSocketMask(9, 8, 7, 6), payload: ByteBuffer(bytes: [0x5B, 0xC0, 0xAF, 0x5D]))))
            #expect(await eventually { charger.closeReceived != nil && csms.closeReceived != nil })
            #expect(charger.closeReceived?.code == 1007)
        }
    }

    // MARK: The upgrade request

    @Test(
        "an upgrade request that breaks RFC 6455 is forwarded as it came and recorded with its clause",
        arguments: [
            ("HTTP/1.1", ["Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"], "websocket.handshake.connectionHeader"),
            ("HTTP/1.0", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"], "websocket.handshake.httpVersion"),
            ("HTTP/1.1", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: abc", "Sec-WebSocket-Version: 13"], "websocket.handshake.key"),
        ]
    )
    func handshakeForwarded(version: String, headers: [String], rule: String) async throws {
        try await ProxyHarness.start().run { harness in
            let (peer, head) = try await RawPeer.upgraded(
                port: harness.proxyURL.port, group: harness.group, path: "/CP-lenient", requestLine: version, headers: headers + ["Sec-WebSocket-Protocol: ocpp1.6"]
            )
            #expect(head.hasPrefix("HTTP/1.1 101"))
            let arrival = try #require(harness.csms.arrivals.first)
            // What the backend saw is what the charger sent.
            #expect(arrival.headers.first(name: "Sec-WebSocket-Key") == headers.first { $0.hasPrefix("Sec-WebSocket-Key") }?.dropFirst(19).description)
            if rule == "websocket.handshake.connectionHeader" { #expect(arrival.headers["Connection"].isEmpty) }
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            let finding = try #require(open.fields["findings"]?[0])
            #expect(finding["rule"]?.stringValue == rule)
            #expect(finding["clause"]?.stringValue?.hasPrefix("RFC 6455 4.") == true)
            await peer.close()
            await harness.waitForClosedPairs(1)
            let report = try await harness.report(checks: [])
            #expect(report.deviations.contains { $0.rule == rule && $0.chargePoint == "CP-lenient" })
        }
    }

    @Test("with --strict-websocket the same request is refused with 400 and a one-line reason")
    func handshakeStrict() async throws {
        try await ProxyHarness.start(configure: { $0.strictWebSocket = true }).run { harness in
            let (status, body) = try await rawExchange(
                port: harness.proxyURL.port,
                request: "GET /CP-strict HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            #expect(status.hasPrefix("HTTP/1.1 400"))
            #expect(body.contains("Connection: Upgrade") && body.split(separator: "\n").count == 1)
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "invalidUpgrade")
            #expect(reject.fields["findings"]?[0]?["rule"] == "websocket.handshake.connectionHeader")
            #expect(harness.csms.arrivals.isEmpty)
        }
    }

    @Test("an unsupported Sec-WebSocket-Version gets 426 with Sec-WebSocket-Version: 13, and is recorded")
    func unsupportedVersion() async throws {
        try await ProxyHarness.start().run { harness in
            let (peer, head) = try await RawPeer.upgraded(
                port: harness.proxyURL.port, group: harness.group, path: "/CP-v8",
                headers: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"]
            )
            #expect(head.hasPrefix("HTTP/1.1 426"))
            #expect(head.lowercased().contains("\r\nsec-websocket-version: 13"))
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "unsupportedVersion")
            #expect(reject.fields["status"] == 426)
            #expect(reject.fields["findings"]?[0]?["rule"] == "websocket.handshake.version")
            #expect(harness.csms.arrivals.isEmpty)
            await peer.close()
        }
    }

    // MARK: Paths

    @Test(
        "a path with a dot-segment or an encoded separator is refused with 400 and never reaches the backend",
        arguments: ["/ocpp/../../../etc/passwd", "/%2e%2e/%2E%2e/etc/passwd", "/ocpp/.%2E/CP-1", "/ocpp/..;/CP-1", "/site%2Fother/CP-1", "/site%5C../CP-1", "/./CP-1"]
    )
    func unsafePaths(path: String) async throws {
        try await ProxyHarness.start().run { harness in
            let (status, body) = try await rawExchange(
                port: harness.proxyURL.port,
                request: "GET \(path) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            #expect(status.hasPrefix("HTTP/1.1 400"))
            #expect(body.hasPrefix("ocpp-witness: the path"))
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "unsafePath")
            #expect(harness.csms.arrivals.isEmpty)
        }
    }

    @Test("other paths go to the backend exactly as sent, and the charge point id is the last segment, decoded")
    func pathsForwardedAsSent() async throws {
        try await ProxyHarness.start(upstreamPrefix: "/steve/ws").run { harness in
            let (peer, head) = try await RawPeer.upgraded(port: harness.proxyURL.port, group: harness.group, path: "/site%20A/..x/CP%407")
            #expect(head.hasPrefix("HTTP/1.1 101"))
            #expect(harness.csms.arrivals.first?.uri == "/steve/ws/site%20A/..x/CP%407")
            #expect(harness.csms.arrivals.first?.chargePoint == "CP@7")
            await peer.close()
        }
    }
}

/// Holds the recorder's writer thread until opened.
final class RecorderGate: Sendable {
    private let lock = ConditionLock(value: 0)

    func wait() {
        self.lock.lock(whenValue: 1)
        self.lock.unlock()
    }

    func open() {
        self.lock.lock()
        self.lock.unlock(withValue: 1)
    }
}
