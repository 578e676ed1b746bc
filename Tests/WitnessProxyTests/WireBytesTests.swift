import NIOConcurrencyHelpers
import NIOCore
import OCPPWire
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// Sees a connection's bytes as they cross its socket, and writes bytes below the WebSocket codec, so a
/// test can send frames no WebSocket library would (chosen masks, odd splits, broken control frames).
final class WireTap: ChannelDuplexHandler, @unchecked Sendable {
    // `context` is touched only on the channel's event loop; `received` is locked.
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let received = NIOLockedValueBox(ByteBuffer())
    private var context: ChannelHandlerContext?
    private let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    /// Puts a tap right above the socket of `channel`.
    static func install(on channel: any Channel) async throws -> WireTap {
        let tap = WireTap(channel: channel)
        try await channel.pipeline.addHandler(tap, position: .first).get()
        return tap
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        self.received.withLockedValue { _ = $0.writeBuffer(&bytes) }
        context.fireChannelRead(data)
    }

    /// Everything read from the socket since the tap went in.
    var bytes: [UInt8] { self.received.withLockedValue { Array(buffer: $0) } }

    /// Writes `bytes` straight to the socket, as one write.
    func send(_ bytes: [UInt8]) async throws {
        try await self.channel.eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            guard let context = self.context else { return self.channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
            return context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(bytes: bytes)))
        }.get()
    }
}

extension Array where Element == UInt8 {
    /// Whether `part` occurs in here as a contiguous run.
    func containsRun(_ part: [UInt8]) -> Bool {
        guard !part.isEmpty, part.count <= self.count else { return part.isEmpty }
        return (0...(self.count - part.count)).contains { self[$0..<($0 + part.count)].elementsEqual(part) }
    }
}

func wireFrame(_ text: String, opcode: WebSocketWireOpcode = .text, fin: Bool = true, mask: WebSocketMask?) -> [UInt8] {
    Array(buffer: WebSocketFrameHeader.frame(fin: fin, opcode: opcode, maskKey: mask, payload: ByteBuffer(string: text)))
}

@Suite("Frames cross the proxy as the bytes they arrived as")
struct WireBytesTests {
    func pair(_ harness: ProxyHarness, _ id: String) async throws -> (charger: OCPPEndpoint, csms: OCPPEndpoint) {
        var url = harness.proxyURL
        url.pathPrefix = "/" + id
        let charger = try await OCPPClient.connect(
            to: url, options: OCPPClientOptions(subprotocols: [OCPPVersion.v16.subprotocol]), group: harness.group
        )
        return (charger, await harness.csms.connection(id))
    }

    @Test(
        "masked charger frames reach the backend byte for byte, however TCP splits them; backend frames reach the charger unchanged",
        arguments: [true, false]
    )
    func bytesUnchanged(recording: Bool) async throws {
        try await ProxyHarness.start(recording: recording).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-wire")
            let chargerTap = try await WireTap.install(on: charger.channel)
            let csmsTap = try await WireTap.install(on: csms.channel)

            // A whole message, then one in two fragments with their own masks, then a ping.
            let first = wireFrame(#"[2,"w1","Heartbeat",{}]"#, mask: WebSocketMask(0x11, 0x22, 0x33, 0x44))
            let secondStart = wireFrame(#"[2,"w2","Heart"#, fin: false, mask: WebSocketMask(9, 8, 7, 6))
            let secondEnd = wireFrame(#"beat",{}]"#, opcode: .continuation, mask: WebSocketMask(0xF0, 0x0F, 0xAA, 0x55))
            let ping = wireFrame("are you there", opcode: .ping, mask: WebSocketMask(1, 2, 3, 4))
            try await chargerTap.send(first + secondStart)
            for byte in secondEnd { try await chargerTap.send([byte]) }
            try await chargerTap.send(ping)

            let sent = first + secondStart + secondEnd + ping
            #expect(await eventually { csmsTap.bytes.count >= sent.count })
            #expect(csmsTap.bytes == sent)
            // The backend read them as the two Heartbeats and a ping, and its answers reached the charger.
            #expect(await eventually { csms.transcript.received.count == 2 })
            #expect(csms.transcript.received == [#"[2,"w1","Heartbeat",{}]"#, #"[2,"w2","Heartbeat",{}]"#])
            #expect(await eventually { charger.transcript.received.count == 2 && charger.receivedPongs.count == 1 })

            // Backend to charger: unmasked bytes, passed through as they are.
            let call = wireFrame(#"[2,"s1","TriggerMessage",{"requestedMessage":"Heartbeat"}]"#, mask: nil)
            try await csmsTap.send(call)
            #expect(await eventually { chargerTap.bytes.containsRun(call) })

            if recording {
                let frames = try await harness.frames("CP-wire")
                let second = try #require(frames.first { $0.messageId == "w2" })
                #expect(second.fields["fragments"] == 2)
                #expect(second.fields["payload"].map(JSONWriter.string) == #"[2,"w2","Heartbeat",{}]"#)
                #expect(frames.contains { $0.messageId == "s1" && $0.direction == .toCharger })
                #expect(frames.contains { $0.opcode == .ping && $0.fields["payload"] == "are you there" })
            }
            await charger.close()
            await harness.waitForClosedPairs(1)
            // Counted either way: two Heartbeats; their answers and the backend's CALL the other way.
            #expect(harness.proxy.statistics.messagesToCSMS >= 2)
            #expect(harness.proxy.statistics.messagesToCharger >= 3)
        }
    }

    @Test(
        "a fragmented or oversized control frame closes that charger with 1002 and is recorded; another charger carries on",
        arguments: [
            (wireFrame("x", opcode: .ping, fin: false, mask: WebSocketMask(5, 6, 7, 8)), "fragmented ping frame"),
            (wireFrame(String(repeating: "r", count: 130), opcode: .close, mask: WebSocketMask(5, 6, 7, 8)), "control frames carry at most 125"),
        ]
    )
    func brokenControlFrame(frame: [UInt8], detail: String) async throws {
        try await ProxyHarness.start().run { harness in
            let (bystander, _) = try await self.pair(harness, "CP-fine")
            let (offender, _) = try await self.pair(harness, "CP-broken")
            let tap = try await WireTap.install(on: offender.channel)
            try await tap.send(frame)
            #expect(await eventually { offender.closeReceived != nil })
            #expect(offender.closeReceived?.code == 1002)
            await offender.waitClosed()
            await harness.waitForClosedPairs(1)
            let records = try await harness.records()
            let error = try #require(records.first { $0.kind == "error" && $0.chargePoint == "CP-broken" })
            #expect(error.fields["error"] == "protocolError")
            #expect(error.fields["detail"]?.stringValue?.contains(detail) == true)
            let close = try #require(records.first { $0.kind == "close" && $0.chargePoint == "CP-broken" })
            #expect(close.fields["by"] == "proxy")
            #expect(close.fields["code"] == 1002)
            #expect(try await bystander.call("Heartbeat", [:]).isResult)
            await bystander.close()
        }
    }
}
