import Foundation
import NIOCore
import NIOWebSocket
import OCPPWire
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@Suite("Frames through the proxy")
struct FrameTests {
    /// Connects `id` through the harness's proxy and returns both ends.
    func pair(_ harness: ProxyHarness, _ id: String, version: OCPPVersion = .v16) async throws -> (charger: OCPPEndpoint, csms: OCPPEndpoint) {
        var url = harness.proxyURL
        url.pathPrefix = "/" + id
        let charger = try await OCPPClient.connect(
            to: url, options: OCPPClientOptions(subprotocols: [version.subprotocol]), group: harness.group
        )
        let csms = await harness.csms.connection(id)
        return (charger, csms)
    }

    @Test("a close from the charger crosses with its code and reason, and is recorded")
    func closeFromCharger() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-close1")
            await charger.close(code: .init(codeNumber: 4001), reason: "rebooting")
            #expect(await eventually { csms.closeReceived != nil })
            #expect(csms.closeReceived?.code == 4001)
            #expect(csms.closeReceived?.reason == "rebooting")
            await harness.waitForClosedPairs(1)
            let close = try #require(try await harness.records().first { $0.kind == "close" })
            #expect(close.fields["by"] == "charger")
            #expect(close.fields["code"] == 4001)
            #expect(close.fields["reason"] == "rebooting")
        }
    }

    @Test("a close from the backend crosses with its code and reason, and is recorded")
    func closeFromBackend() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-close2")
            await csms.close(code: .init(codeNumber: 1008), reason: "policy: unknown charger")
            #expect(await eventually { charger.closeReceived != nil })
            #expect(charger.closeReceived?.code == 1008)
            #expect(charger.closeReceived?.reason == "policy: unknown charger")
            await charger.waitClosed()
            await harness.waitForClosedPairs(1)
            let close = try #require(try await harness.records().first { $0.kind == "close" })
            #expect(close.fields["by"] == "csms")
            #expect(close.fields["code"] == 1008)
        }
    }

    @Test("a ping from either side gets the far side's pong")
    func pingPong() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-ping")
            charger.send(opcode: .ping, data: ByteBuffer(string: "from-charger"))
            #expect(await eventually { charger.receivedPongs.map { String(buffer: $0) } == ["from-charger"] })
            #expect(csms.receivedPings.map { String(buffer: $0) } == ["from-charger"])
            csms.send(opcode: .ping, data: ByteBuffer(string: "from-csms"))
            #expect(await eventually { csms.receivedPongs.map { String(buffer: $0) } == ["from-csms"] })
            #expect(charger.receivedPings.map { String(buffer: $0) } == ["from-csms"])
            let frames = try await harness.frames("CP-ping")
            #expect(frames.filter { $0.opcode == .ping }.map { $0.direction } == [.toCSMS, .toCharger])
            #expect(frames.filter { $0.opcode == .pong }.map { $0.direction } == [.toCharger, .toCSMS])
            await charger.close()
        }
    }

    @Test("a fragmented message stays fragmented, arrives whole and is recorded once")
    func fragmentation() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-frag")
            let text = #"[2,"f1","Heartbeat",{}]"#
            charger.sendText(text, fragments: 3)
            #expect(await eventually { csms.transcript.received.contains(text) })
            #expect(csms.receivedFragments == [3])
            let frame = try #require(try await harness.frames("CP-frag").first { $0.messageId == "f1" })
            #expect(frame.fields["fragments"] == 3)
            #expect(frame.action == "Heartbeat")
            await charger.close()
        }
    }

    @Test("invalid JSON, a malformed OCPP message and a binary frame are forwarded and recorded as what they are")
    func malformedForwarded() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-bad")
            charger.sendText(#"[2,"x1","Heartbeat",{"#)
            charger.sendText(#"[2,"x2","Heartbeat"]"#)
            charger.send(opcode: .binary, data: ByteBuffer(bytes: [0x00, 0xFF, 0x10]))
            #expect(await eventually { csms.transcript.received.count == 2 })
            #expect(csms.transcript.received == [#"[2,"x1","Heartbeat",{"#, #"[2,"x2","Heartbeat"]"#])
            // The backend answers the unreadable CALL with a FormationViolation, which reaches the charger.
            #expect(await eventually { charger.transcript.received.count == 1 })
            #expect(charger.transcript.received.first?.hasPrefix(#"[4,"x2","FormationViolation""#) == true)
            let frames = try await harness.frames("CP-bad")
            let notJSON = try #require(frames.first { $0.fields["malformed"]?["reason"] == "notJSON" })
            #expect(notJSON.fields["enc"] == "text")
            #expect(notJSON.fields["payload"] == #"[2,"x1","Heartbeat",{"#)
            let arity = try #require(frames.first { $0.fields["malformed"]?["reason"] == "wrongArity" })
            #expect(arity.fields["malformed"]?["detail"] == "CALL must have 4 elements, found 3")
            let binary = try #require(frames.first { $0.opcode == .binary })
            #expect(binary.fields["enc"] == "base64")
            #expect(binary.fields["payload"] == .string(Base64.encode([0x00, 0xFF, 0x10])))
            await charger.close()
        }
    }

    @Test("an oversized frame closes that charger with 1009 and is recorded; another charger carries on")
    func oversizedFrame() async throws {
        try await ProxyHarness.start(configure: { $0.maximumFrameBytes = 4096 }).run { harness in
            let (bystander, bystanderAtCSMS) = try await self.pair(harness, "CP-ok")
            let (offender, _) = try await self.pair(harness, "CP-big")
            offender.sendText(#"[2,"big","DataTransfer",{"vendorId":"x","data":""# + String(repeating: "A", count: 10_000) + #""}]"#)
            #expect(await eventually { offender.closeReceived != nil })
            #expect(offender.closeReceived?.code == 1009)
            await offender.waitClosed()
            let error = try #require(try await harness.records().first { $0.kind == "error" && $0.chargePoint == "CP-big" })
            #expect(error.fields["error"] == "frameTooLarge")
            // The other charger's session is untouched.
            let reply = try await bystander.call("Heartbeat", [:])
            #expect(reply.isResult)
            #expect(bystanderAtCSMS.transcript.received.count == 1)
            await bystander.close()
        }
    }

    @Test("when the backend drops TCP the charger is dropped too")
    func dropPropagates() async throws {
        try await ProxyHarness.start().run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-drop")
            try await csms.channel.close()
            await charger.waitClosed()
            #expect(!charger.isActive)
            await harness.waitForClosedPairs(1)
            let close = try #require(try await harness.records().first { $0.kind == "close" })
            #expect(close.fields["clean"] == false)
            #expect(close.fields["by"] == "csms")
        }
    }
}
