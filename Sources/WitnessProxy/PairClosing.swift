/// A relaying pair's way from open to closed, as a value: the relay feeds its events in and carries the
/// actions out, and nothing in here does I/O, so each path is tested as plain values (PairClosingTests).
///
/// | state | sockets | deadline |
/// |---|---|---|
/// | `open` | each side's relay owns its socket | none: a pair may be open for weeks |
/// | `closing` | each side's relay, closing | `closingTimeout` from the first close frame, the proxy's own close, or a socket the proxy must close |
/// | `finished` | the side still open is closing by itself, under its own deadline (`RelayHandler.closeWithin`) | none for the pair |
struct PairClosing {
    enum State: Equatable {
        case open
        /// A close has begun: which sides sent a close frame, and to which the proxy sent its own.
        case closing(closeFramesFrom: Set<RelaySide>, proxyClosed: Set<RelaySide>)
        /// A socket went: the close record is written and the pair released.
        case finished
    }

    enum Action: Equatable {
        case none
        /// Start the pair's closing deadline.
        case startDeadline
        /// Record the pair's close (`transportClosedBy` is whose socket went first) and cancel the deadline.
        case finish(transportClosedBy: RelaySide)
        /// The deadline passed: record that `side` did not `what`, then close both sockets.
        case timedOut(side: RelaySide, what: String)
    }

    private(set) var state = State.open

    var isFinished: Bool { self.state == .finished }

    /// `side` sent a close frame, which the relay forwards.
    mutating func closeFrame(from side: RelaySide) -> Action {
        self.closing { closeFramesFrom, _ in closeFramesFrom.insert(side) }
    }

    /// The proxy sent `side` a close frame of its own.
    mutating func proxyClose(to side: RelaySide) -> Action {
        self.closing { _, proxyClosed in proxyClosed.insert(side) }
    }

    /// The proxy closes `side`'s socket without a close frame (its partner went): bounded by the side's own
    /// deadline, since the pair finishes with the partner.
    mutating func socketClosing(_ side: RelaySide) -> Action {
        self.closing { _, _ in }
    }

    /// `side`'s socket is gone.
    mutating func socketClosed(_ side: RelaySide) -> Action {
        guard self.state != .finished else { return .none }
        self.state = .finished
        return .finish(transportClosedBy: side)
    }

    /// The closing deadline passed with the sockets of `open` still open: one finding, naming the side whose
    /// move it was.
    mutating func deadlinePassed(open: [RelaySide]) -> Action {
        guard case .closing(let closeFramesFrom, let proxyClosed) = self.state, !open.isEmpty else { return .none }
        for side in open {
            let other: RelaySide = side == .charger ? .backend : .charger
            if !closeFramesFrom.contains(side) && closeFramesFrom.contains(other) {
                return .timedOut(side: side, what: "did not answer the close frame from the \(other.recordName)")
            }
            if !closeFramesFrom.contains(side) && proxyClosed.contains(side) {
                return .timedOut(side: side, what: "did not answer the proxy's close frame")
            }
        }
        // Both sent close frames: the server closes the TCP connection first (RFC 6455 7.1.1).
        if closeFramesFrom.count == 2 {
            return .timedOut(side: open.contains(.backend) ? .backend : .charger, what: "did not close its connection after the closing handshake")
        }
        return .timedOut(side: open[0], what: "did not take what was still being sent to it before closing")
    }

    /// Enters `closing` (the first time: start the deadline) and notes what `change` says.
    private mutating func closing(_ change: (inout Set<RelaySide>, inout Set<RelaySide>) -> Void) -> Action {
        switch self.state {
        case .open:
            var closeFramesFrom: Set<RelaySide> = []
            var proxyClosed: Set<RelaySide> = []
            change(&closeFramesFrom, &proxyClosed)
            self.state = .closing(closeFramesFrom: closeFramesFrom, proxyClosed: proxyClosed)
            return .startDeadline
        case .closing(var closeFramesFrom, var proxyClosed):
            change(&closeFramesFrom, &proxyClosed)
            self.state = .closing(closeFramesFrom: closeFramesFrom, proxyClosed: proxyClosed)
            return .none
        case .finished:
            return .none
        }
    }
}
