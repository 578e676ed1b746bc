/// A charger's connection from the TCP accept until the relay takes it (or the proxy refuses it), as a value:
/// the upgrade's handlers feed their events in and carry the actions out, and nothing in here does I/O, so
/// each path is tested as plain values (PairHandshakeTests). From `relaying` on, `PairClosing` has the pair.
///
/// | state | charger's socket | backend's socket | deadline |
/// |---|---|---|---|
/// | `awaitingRequest` | NIO's HTTP pipeline, reading the upgrade request (and TLS first, if any) | none | `--handshake-timeout` from the accept |
/// | `dialling` | waits, unread, for the backend's answer | the dialer's | the dialer's: 10 s to connect, then `--handshake-timeout` for the answer, a refusal's body included |
/// | `upgrading` | NIO writes the 101 and hands the socket on, in the same event-loop turn | the handshake's: closed here if the charger goes or the relay cannot start | none needed: nothing waits on a peer |
/// | `refusing` | `RefusalResponder` writes the answer, then closes | closed when the proxy decided to refuse after the backend's 101 | the accept's while the request is not whole; then none of its own: the answer is a few hundred bytes, written at once, and the socket is closed when the write completes |
/// | `relaying` | the relay's | the relay's | `PairClosing`'s |
/// | `ended` | closed or closing | closed or never opened | none |
struct PairHandshake: Equatable {
    enum State: Equatable {
        case awaitingRequest
        case dialling
        case upgrading
        case refusing
        case relaying
        case ended
    }

    enum Action: Equatable {
        case none
        /// Cancel the accept's deadline: another one (the dialer's, the relay's) holds from here.
        case cancelDeadline
        /// The request did not come in time: record `handshakeTimeout` and close the charger.
        case timedOut
        /// Record the failure (unparsable HTTP, a failed TLS handshake) and cancel the deadline.
        case recordFailure
        /// Close the backend's socket: nobody else will.
        case closeBackend
    }

    private(set) var state = State.awaitingRequest

    /// Whether the charger's connection is still on its way to a relay or a refusal (nothing recorded yet).
    var isUnsettled: Bool {
        switch self.state {
        case .awaitingRequest, .dialling, .upgrading, .refusing: return true
        case .relaying, .ended: return false
        }
    }

    /// The upgrade request was read: the proxy judges it and, unless it refuses, dials the backend.
    mutating func requestRead() -> Action {
        guard self.state == .awaitingRequest else { return .none }
        self.state = .dialling
        return .cancelDeadline
    }

    /// The accept's deadline passed: the request never came, or a refusal decided before the request was
    /// whole (an unsupported version) was never answered.
    mutating func deadlinePassed() -> Action {
        guard self.state == .awaitingRequest || self.state == .refusing else { return .none }
        self.state = .ended
        return .timedOut
    }

    /// The charger's bytes were not HTTP, or its TLS handshake failed.
    mutating func failed() -> Action {
        switch self.state {
        case .awaitingRequest, .dialling, .refusing:
            // A refusal not yet answered (a blackhole outage waits before it answers) is not on record either.
            self.state = .ended
            return .recordFailure
        case .upgrading, .relaying, .ended:
            return .none
        }
    }

    /// The proxy will refuse the charger (its own reason or the backend's answer). After the backend's 101
    /// the backend's socket is the handshake's to close.
    mutating func refused() -> Action {
        switch self.state {
        case .awaitingRequest, .dialling:
            self.state = .refusing
            return .none
        case .upgrading:
            self.state = .refusing
            return .closeBackend
        case .refusing, .relaying, .ended:
            return .none
        }
    }

    /// The refusal was answered (the responder writes it and closes the charger).
    mutating func refusalAnswered() -> Action {
        guard self.isUnsettled else { return .none }
        self.state = .ended
        return .cancelDeadline
    }

    /// The backend accepted the upgrade; `chargerOpen` is whether the charger is still there to get its 101.
    mutating func backendUpgraded(chargerOpen: Bool) -> Action {
        guard self.state == .dialling, chargerOpen else {
            self.state = .ended
            return .closeBackend
        }
        self.state = .upgrading
        return .none
    }

    /// The relay took both sockets.
    mutating func relayStarted() -> Action {
        guard self.state == .upgrading else { return .none }
        self.state = .relaying
        return .cancelDeadline
    }

    /// The relay could not start (a piece missing, or installing its handlers threw).
    mutating func relayFailed() -> Action {
        guard self.state != .relaying, self.state != .ended else { return .none }
        self.state = .ended
        return .closeBackend
    }

    /// The charger's socket closed.
    mutating func chargerClosed() -> Action {
        switch self.state {
        case .upgrading:
            self.state = .ended
            return .closeBackend
        case .awaitingRequest, .dialling, .refusing:
            // While dialling, the dialer's answer finds the charger gone (`backendUpgraded(chargerOpen: false)`).
            self.state = .ended
            return .cancelDeadline
        case .relaying, .ended:
            return .none
        }
    }
}
