import Testing

@testable import WitnessProxy

/// The handshake's paths as plain values: every state but `relaying` and `ended` has an owner for each
/// socket and a deadline, and every way out of `upgrading` closes the backend unless the relay took it.
@Suite("A charger's handshake, as values")
struct PairHandshakeTests {
    @Test("accept, request, backend's 101, relay: the deadline is cancelled at the request, nothing is closed")
    func relayed() {
        var handshake = PairHandshake()
        #expect(handshake.requestRead() == .cancelDeadline)
        #expect(handshake.state == .dialling)
        #expect(handshake.backendUpgraded(chargerOpen: true) == .none)
        #expect(handshake.state == .upgrading)
        #expect(handshake.relayStarted() == .cancelDeadline)
        #expect(handshake.state == .relaying)
        #expect(!handshake.isUnsettled)
        // From here the relay and PairClosing have the sockets.
        #expect(handshake.chargerClosed() == .none)
        #expect(handshake.deadlinePassed() == .none)
        #expect(handshake.failed() == .none)
    }

    @Test("a request that never comes times out once; a late event after that changes nothing")
    func timedOut() {
        var handshake = PairHandshake()
        #expect(handshake.deadlinePassed() == .timedOut)
        #expect(handshake.state == .ended)
        #expect(handshake.deadlinePassed() == .none)
        #expect(handshake.failed() == .none)
        #expect(handshake.requestRead() == .none)
    }

    @Test("a charger that goes while the backend is answering: the backend's socket is closed when its 101 arrives")
    func chargerGoneWhileDialling() {
        var handshake = PairHandshake()
        _ = handshake.requestRead()
        #expect(handshake.chargerClosed() == .cancelDeadline)
        #expect(handshake.backendUpgraded(chargerOpen: true) == .closeBackend)
        var other = PairHandshake()
        _ = other.requestRead()
        #expect(other.backendUpgraded(chargerOpen: false) == .closeBackend)
        #expect(other.state == .ended)
    }

    @Test("after the backend's 101, every way but the relay closes the backend: refusal, relay failure, charger gone")
    func upgradingOwnsTheBackend() {
        func upgrading() -> PairHandshake {
            var handshake = PairHandshake()
            _ = handshake.requestRead()
            _ = handshake.backendUpgraded(chargerOpen: true)
            return handshake
        }
        var refused = upgrading()
        #expect(refused.refused() == .closeBackend)
        #expect(refused.state == .refusing)
        #expect(refused.refusalAnswered() == .cancelDeadline)
        #expect(refused.state == .ended)
        var failed = upgrading()
        #expect(failed.relayFailed() == .closeBackend)
        #expect(failed.chargerClosed() == .none)
        var gone = upgrading()
        #expect(gone.chargerClosed() == .closeBackend)
        #expect(gone.relayStarted() == .none)
    }

    @Test("refusals before any backend close nothing but the charger's answer; an unanswered early refusal still has the deadline")
    func refusals() {
        var beforeDial = PairHandshake()
        _ = beforeDial.requestRead()
        #expect(beforeDial.refused() == .none)
        #expect(beforeDial.refusalAnswered() == .cancelDeadline)
        var early = PairHandshake()
        #expect(early.refused() == .none)
        #expect(early.deadlinePassed() == .timedOut)
        var failure = PairHandshake()
        #expect(failure.failed() == .recordFailure)
        #expect(failure.refusalAnswered() == .none)
        // A refusal that waits (a blackhole outage) and a TLS error or garbage meanwhile: the failure is on record.
        var waiting = PairHandshake()
        _ = waiting.requestRead()
        _ = waiting.refused()
        #expect(waiting.failed() == .recordFailure)
        #expect(waiting.refusalAnswered() == .none)
    }
}
