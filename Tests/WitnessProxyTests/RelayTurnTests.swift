import Logging
import NIOCore
import NIOEmbedded
import OCPPWire
import Testing

@testable import WitnessProxy

@Suite("Relay turns on the event loop")
struct RelayTurnTests {
    /// One read of a flooding charger can bring thousands of small messages; relayed in one go, they would keep
    /// every other connection of the event loop waiting. A side relays a turn's budget, then yields to a task
    /// queued behind the loop's other work, and carries on from the frame where it stopped.
    @Test("a side relays one turn's budget of a large read, and the rest, in order, after the event loop's other work")
    func floodYieldsTurn() throws {
        let loop = EmbeddedEventLoop()
        let session = RelaySession(
            id: 1, chargePoint: "CP-flood", recorder: nil, logger: Logger(label: "test"), maximumMessageBytes: 1 << 20,
            maximumFrameBytes: 1 << 20, onFinish: { _ in }
        )
        let charger = RelayHandler(side: .charger, session: session)
        let backend = RelayHandler(side: .backend, session: session)
        let chargerChannel = EmbeddedChannel(loop: loop)
        let backendChannel = EmbeddedChannel(loop: loop)
        try chargerChannel.pipeline.syncOperations.addHandler(charger)
        try backendChannel.pipeline.syncOperations.addHandler(backend)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 9)
        try chargerChannel.connect(to: address).wait()
        try backendChannel.connect(to: address).wait()
        RelayHandler.link(charger: charger, backend: backend)

        // 2,000 Heartbeats in one read, as a charger writing as fast as its socket takes them delivers them.
        var flood = ByteBuffer()
        var expected: [ByteBuffer] = []
        for index in 0..<2000 {
            var frame = WebSocketFrameHeader.frame(opcode: .text, maskKey: .random(), payload: ByteBuffer(string: #"[2,"h\#(index)","Heartbeat",{}]"#))
            expected.append(frame)
            flood.writeBuffer(&frame)
        }
        try chargerChannel.writeInbound(flood)
        var relayed: [ByteBuffer] = []
        while let frame = try backendChannel.readOutbound(as: ByteBuffer.self) { relayed.append(frame) }
        // One turn: the budget is 64 KiB with 1 KiB per frame, about 60 small frames.
        #expect(relayed.count > 0)
        #expect(relayed.count <= 64, "one read relayed \(relayed.count) frames in one turn")

        // The queued turns (an embedded loop runs them all at once) carry the rest, in order.
        loop.run()
        while let frame = try backendChannel.readOutbound(as: ByteBuffer.self) { relayed.append(frame) }
        #expect(relayed == expected)

        try chargerChannel.close().wait()
        loop.run()
    }
}
