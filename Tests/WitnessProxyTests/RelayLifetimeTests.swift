import Logging
import NIOCore
import NIOEmbedded
import OCPPWire
import Testing

@testable import WitnessProxy

@Suite("Relay handler lifetime")
struct RelayLifetimeTests {
    /// The two handlers of a pair point at each other; unless they let go when their channels close, every
    /// closed pair keeps both handlers and its session alive for as long as the proxy runs.
    @Test("the handlers and the session of a closed pair are freed")
    func closedPairIsFreed() throws {
        weak var chargerHandler: RelayHandler?
        weak var backendHandler: RelayHandler?
        weak var relaySession: RelaySession?
        let loop = EmbeddedEventLoop()
        try {
            let session = RelaySession(
                id: 1, chargePoint: "CP-freed", recorder: nil, logger: Logger(label: "test"), maximumMessageBytes: 1 << 20,
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

            // A frame still crosses, so the pair was really linked.
            let frame = WebSocketFrameHeader.frame(opcode: .text, maskKey: .random(), payload: ByteBuffer(string: #"[2,"1","Heartbeat",{}]"#))
            try chargerChannel.writeInbound(frame)
            #expect(try backendChannel.readOutbound(as: ByteBuffer.self) == frame)

            // The charger goes away; the proxy closes the backend side too.
            try chargerChannel.close().wait()
            loop.run()
            #expect(!backendChannel.isActive)
            chargerHandler = charger
            backendHandler = backend
            relaySession = session
        }()
        #expect(chargerHandler == nil, "the charger-side handler of a closed pair is still alive")
        #expect(backendHandler == nil, "the backend-side handler of a closed pair is still alive")
        #expect(relaySession == nil, "the session of a closed pair is still alive")
    }
}
