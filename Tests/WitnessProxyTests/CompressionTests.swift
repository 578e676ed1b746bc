import ChildProcesses
import Foundation
import NIOCore
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessProxy
import WitnessTestSupport

/// The compressing peers of Tests/Interop/deflate_peers.py (Python `websockets`, and a client on a plain
/// socket with its own zlib stream).
extension PythonPeers {
    static func startDeflateServer(_ options: [String] = [], seconds: Int = 60) async throws -> (ChildProcess, Int) {
        try await self.startServer(["deflate_peers.py", "server"], seconds: seconds, extra: options, name: "the Python deflate server", quiet: true)
    }

    /// Runs a deflate_peers.py client mode and returns its JSON summary.
    static func deflateClient(_ mode: String, _ arguments: [String]) async throws -> [String: Any] {
        try requireInstalled()
        // Program.run drains the pipes off the concurrency pool, which a blocking read would stall.
        let result = try await Program.run(python, [scripts + "/deflate_peers.py", mode] + arguments)
        guard result.status == 0, let summary = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any] else {
            throw PythonFailure(description: "deflate_peers.py \(mode) failed (\(result.status)): \(result.errors)")
        }
        return summary
    }
}

@Suite("permessage-deflate through the proxy")
struct CompressionTests {
    @Test("Python websockets peers negotiate the same compression through the proxy as directly, over many messages with context takeover")
    func negotiatedAlike() async throws {
        let (server, port) = try await PythonPeers.startDeflateServer(["--client-max-window-bits", "12", "--server-no-context-takeover"])
        defer { server.terminate() }
        let direct = try await PythonPeers.deflateClient("client", ["ws://127.0.0.1:\(port)/DEFLATE-DIRECT", "200"])
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let proxied = try await PythonPeers.deflateClient("client", ["ws://127.0.0.1:\(harness.proxyURL.port)/DEFLATE-1", "200"])
            #expect(proxied["matched"] as? Int == 200)
            let negotiated = try #require(direct["extensions"] as? String)
            #expect(negotiated.contains("client_max_window_bits=12") && negotiated.contains("server_no_context_takeover"))
            #expect(proxied["extensions"] as? String == negotiated)

            await harness.waitForClosedPairs(1)
            let records = try await harness.records()
            let open = try #require(records.first { $0.kind == "open" })
            #expect(open.fields["compression"]?["extension"]?.stringValue == negotiated)
            #expect(open.fields["compression"]?["mode"]?.stringValue == "passThrough")
            // Every message was compressed on the wire, and the capture holds its text.
            let frames = try await harness.frames("DEFLATE-1").filter { $0.opcode == .text }
            #expect(frames.count == 400)
            #expect(frames.allSatisfy { $0.fields["compressed"]?.boolValue == true })
            let last = try #require(frames.last { $0.direction == .toCharger })
            #expect(last.message?[2]?["data"]?.stringValue?.hasPrefix("meter reading 199 of a long charging session") == true)
            #expect(!records.contains { $0.kind == "error" })
            // Validated like any other traffic: the inflated messages are valid OCPP 1.6.
            let report = try await harness.report(checks: [])
            #expect(report.deviations.isEmpty, "\(report.deviations.map { "\($0.rule) \($0.detail)" })")
        }
    }

    @Test("compressed frames are forwarded byte-exact: a raw zlib client gets the backend's frames, RSV1 and bytes, as it does directly")
    func byteExact() async throws {
        let (server, port) = try await PythonPeers.startDeflateServer()
        defer { server.terminate() }
        let direct = try await PythonPeers.deflateClient("raw", ["ws://127.0.0.1:\(port)/RAW-DIRECT", "50"])
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let proxied = try await PythonPeers.deflateClient("raw", ["ws://127.0.0.1:\(harness.proxyURL.port)/RAW-1", "50"])
            #expect(proxied["echoed"] as? Bool == true)
            let frames = try #require(proxied["frames"] as? [[String: Any]])
            #expect(frames.count == 50 && frames.allSatisfy { $0["rsv1"] as? Bool == true })
            // zlib is deterministic: the same messages give the same compressed bytes, so any change on the
            // way (a recompression, a lost RSV1) would show.
            let directFrames = try #require(direct["frames"] as? [[String: Any]])
            #expect(frames.map { $0["payload"] as? String } == directFrames.map { $0["payload"] as? String })
            await harness.waitForClosedPairs(1)
            let recorded = try await harness.frames("RAW-1").filter { $0.opcode == .text && $0.direction == .toCSMS }
            #expect(recorded.count == 50 && recorded.allSatisfy { $0.fields["compressed"]?.boolValue == true && $0.action == "DataTransfer" })
        }
    }

    @Test("under a fault policy compressed messages reach each peer uncompressed, so changed, delayed and injected messages leave both contexts valid")
    func decompressedUnderFaults() async throws {
        let (server, port) = try await PythonPeers.startDeflateServer()
        defer { server.terminate() }
        let policy = try PolicyLoader.parse(
            """
            rules:
              - name: change-data
                match: {direction: toCSMS, action: DataTransfer, every: 3}
                fault: {malformed: {kind: setField, path: /messageId, value: changed-by-the-proxy}}
              - name: slow-answers
                match: {direction: toCharger, type: CALLRESULT, every: 5}
                fault: {delay: {ms: 20}}
              - name: heartbeat-on-the-chargers-behalf
                match: {direction: toCSMS, action: DataTransfer, nth: 10}
                fault: {inject: {action: Heartbeat, payload: {}, to: csms}}
            """
        )
        try await ProxyHarness.start(
            upstreamOverride: "ws://127.0.0.1:\(port)", configure: { $0.faults = FaultInjection(ChaosEngine(policy: policy)) }
        ).run { harness in
            let summary = try await PythonPeers.deflateClient("raw", ["ws://127.0.0.1:\(harness.proxyURL.port)/FAULTY-1", "30"])
            #expect(summary["echoed"] as? Bool == true)
            let frames = try #require(summary["frames"] as? [[String: Any]])
            #expect(frames.count == 30 && frames.allSatisfy { $0["rsv1"] as? Bool == false })
            await harness.waitForClosedPairs(1)
            let records = try await harness.records()
            #expect(records.first { $0.kind == "open" }?.fields["compression"]?["mode"]?.stringValue == "decompressed")
            let text = try await harness.frames("FAULTY-1").filter { $0.opcode == .text }
            #expect(text.filter { $0.fields["fault"]?["rule"]?.stringValue == "change-data" }.count == 10)
            // The backend answered the injected Heartbeat through its own (compressing) context.
            let answer = try #require(text.first { $0.action == "Heartbeat" && $0.messageType == .callResult })
            #expect(answer.fields["compressed"]?.boolValue == true && answer.message?[2]?["currentTime"] == "2026-12-03T00:00:00.000Z")
            #expect(!records.contains { $0.kind == "error" })
        }
    }

    @Test("a charger whose compressed data does not inflate is recorded, forwarded as it came, and its backend's verdict reaches it; other chargers carry on")
    func brokenCompression() async throws {
        let (server, port) = try await PythonPeers.startDeflateServer()
        defer { server.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            async let healthy = PythonPeers.deflateClient("client", ["ws://127.0.0.1:\(harness.proxyURL.port)/HEALTHY-1", "100"])
            let broken = try await PythonPeers.deflateClient("broken", ["ws://127.0.0.1:\(harness.proxyURL.port)/BROKEN-1"])
            // websockets closes with 1002 when it cannot inflate; the proxy passes that on.
            #expect(broken["closeCode"] as? Int == 1002)
            #expect(try await healthy["matched"] as? Int == 100)
            await harness.waitForClosedPairs(2)
            let records = try await harness.records()
            let error = try #require(records.first { $0.kind == "error" && $0.chargePoint == "BROKEN-1" })
            #expect(error.fields["error"]?.stringValue == "inflateFailed")
            #expect(error.fields["detail"]?.stringValue?.contains("forwarded as it came") == true)
            #expect(!records.contains { $0.kind == "error" && $0.chargePoint == "HEALTHY-1" })
            let close = try #require(records.first { $0.kind == "close" && $0.chargePoint == "BROKEN-1" })
            #expect(close.fields["by"]?.stringValue == "csms" && close.fields["code"] == 1002)
        }
    }

    @Test("with forwardsCompression off the offers are dropped and both hops run uncompressed")
    func compressionOff() async throws {
        let (server, port) = try await PythonPeers.startDeflateServer()
        defer { server.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)", configure: { $0.forwardsCompression = false }).run { harness in
            let summary = try await PythonPeers.deflateClient("raw", ["ws://127.0.0.1:\(harness.proxyURL.port)/PLAIN-1", "5"])
            #expect(summary["extensions"] is NSNull)
            #expect(summary["echoed"] as? Bool == true)
            #expect((summary["frames"] as? [[String: Any]])?.allSatisfy { $0["rsv1"] as? Bool == false } == true)
            await harness.waitForClosedPairs(1)
            #expect(try await harness.records().first { $0.kind == "open" }?.fields["compression"] == .null)
        }
    }
}

@Suite("permessage-deflate negotiation")
struct DeflateNegotiationTests {
    @Test("only permessage-deflate offers are forwarded, each as written")
    func offers() {
        #expect(PerMessageDeflate.offers(in: ["permessage-deflate; client_max_window_bits, x-webkit-deflate-frame", "permessage-deflate"]) == [
            "permessage-deflate; client_max_window_bits", "permessage-deflate",
        ])
        #expect(PerMessageDeflate.offers(in: ["foo"]) == [])
    }

    @Test("a backend's answer is read with its parameters; what a server may not answer is refused with a reason")
    func answers() throws {
        let offered = ["permessage-deflate; client_max_window_bits"]
        let parameters = try PerMessageDeflate.accepted("permessage-deflate; server_no_context_takeover; client_max_window_bits=10", offered: offered).get()
        #expect(parameters.serverNoContextTakeover && !parameters.clientNoContextTakeover && parameters.clientMaxWindowBits == 10)
        #expect(!parameters.contextTakeover(.toCharger) && parameters.contextTakeover(.toCSMS))
        #expect(try PerMessageDeflate.accepted(#"permessage-deflate; server_max_window_bits="9""#, offered: offered).get().serverMaxWindowBits == 9)
        for (answer, reason) in [
            ("permessage-deflate; server_max_window_bits=16", "8 to 15"),
            ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", "twice"),
            ("permessage-deflate; colour=blue", "unknown parameter"),
            ("permessage-deflate, permessage-deflate", "2 extensions"),
            ("x-webkit-deflate-frame", "was not offered"),
        ] {
            guard case .failure(let problem) = PerMessageDeflate.accepted(answer, offered: offered) else {
                Issue.record("\(answer) was accepted")
                continue
            }
            #expect(problem.description.contains(reason), "\(problem)")
        }
        guard case .failure(let problem) = PerMessageDeflate.accepted("permessage-deflate; client_max_window_bits=10", offered: ["permessage-deflate"]) else {
            Issue.record("client_max_window_bits without an offer was accepted")
            return
        }
        #expect(problem.description.contains("did not offer"))
    }

    @Test("the inflater follows a sender's context across messages, refuses corrupt data and stops at the limit")
    func inflater() throws {
        let deflater = try MessageDeflater(contextTakeover: true)
        let inflater = try MessageInflater(contextTakeover: true)
        for index in 0..<20 {
            let text = String(repeating: "reading \(index) ", count: 30)
            let compressed = try deflater.deflate(ByteBuffer(string: text))
            #expect(try inflater.inflate(compressed, maximumBytes: 1 << 20).get() == ByteBuffer(string: text))
        }
        let big = try MessageDeflater(contextTakeover: false).deflate(ByteBuffer(string: String(repeating: "x", count: 5000)))
        #expect(try MessageInflater(contextTakeover: false).inflate(big, maximumBytes: 4999) == .failure(.tooLarge))
        #expect(try MessageInflater(contextTakeover: false).inflate(big, maximumBytes: 5000).get().readableBytes == 5000)
        #expect(try MessageInflater(contextTakeover: false).inflate(ByteBuffer(bytes: [0xFF, 0xFE, 0xFD]), maximumBytes: 100) == .failure(.corrupt))
    }
}
