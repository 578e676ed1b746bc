import Testing

@testable import WitnessProxy

/// The pair's closing as plain values: each event's action and the finding a passed deadline makes.
@Suite("A pair's way from open to closed")
struct PairClosingTests {
    @Test("the first close starts the deadline once; a close frame from each side then waits for the sockets")
    func closeFramesStartTheDeadlineOnce() {
        var pair = PairClosing()
        #expect(pair.closeFrame(from: .charger) == .startDeadline)
        #expect(pair.closeFrame(from: .backend) == .none)
        #expect(pair.state == .closing(closeFramesFrom: [.charger, .backend], proxyClosed: []))
        #expect(pair.socketClosed(.backend) == .finish(transportClosedBy: .backend))
        #expect(pair.socketClosed(.charger) == .none)
        #expect(pair.isFinished)
    }

    @Test("a socket that goes while the pair is open finishes it at once, and nothing after starts a deadline")
    func droppedWhileOpen() {
        var pair = PairClosing()
        #expect(pair.socketClosed(.charger) == .finish(transportClosedBy: .charger))
        #expect(pair.socketClosing(.backend) == .none)
        #expect(pair.proxyClose(to: .backend) == .none)
        #expect(pair.deadlinePassed(open: [.backend]) == .none)
    }

    @Test(
        "a passed deadline names the side whose move it was",
        arguments: [
            // The backend closed; the charger never answered.
            ([RelaySide.backend], [RelaySide](), [RelaySide.charger, .backend], RelaySide.charger, "did not answer the close frame from the csms"),
            // The proxy closed the charger (a fault, a framing error); it never answered.
            ([], [.charger], [.charger], .charger, "did not answer the proxy's close frame"),
            // Both sent close frames and nobody closed TCP: the server closes first (RFC 6455 7.1.1).
            ([.charger, .backend], [], [.charger, .backend], .backend, "did not close its connection after the closing handshake"),
            ([.charger, .backend], [], [.charger], .charger, "did not close its connection after the closing handshake"),
        ] as [([RelaySide], [RelaySide], [RelaySide], RelaySide, String)]
    )
    func whoStalled(closeFrames: [RelaySide], proxyClosed: [RelaySide], open: [RelaySide], side: RelaySide, what: String) {
        var pair = PairClosing()
        for from in closeFrames { _ = pair.closeFrame(from: from) }
        for to in proxyClosed { _ = pair.proxyClose(to: to) }
        #expect(pair.deadlinePassed(open: open) == .timedOut(side: side, what: what))
    }

    @Test("a deadline that finds both sockets gone, or a pair never closing, does nothing")
    func nothingToBlame() {
        var pair = PairClosing()
        #expect(pair.deadlinePassed(open: [.charger, .backend]) == .none)
        _ = pair.closeFrame(from: .charger)
        #expect(pair.deadlinePassed(open: []) == .none)
    }
}
