import NIOCore
import NIOWebSocket
import OCPPWire

/// The closing handshake's deadline: from the first close frame (a peer's, forwarded, or the proxy's own) or
/// the first close the proxy starts, both sockets must be gone within `closingTimeout`. A peer that never
/// answers a close frame, or never reads what is still being written to it, cannot hold its pair open.
extension RelayHandler {
    func startClosingDeadline() {
        guard self.session.closingDeadline == nil, !self.session.finished, let context = self.context else { return }
        let timeout = self.session.limits.closingTimeout
        self.session.closingDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            self?.closingTimedOut()
        }
    }

    /// Closes this side's socket if it is still open after the closing timeout, recording that its peer did not
    /// `what`. This bounds a close the proxy started even after the pair's own deadline has gone with its
    /// partner (a peer that stopped reading never lets the close frame's write complete).
    func closeWithin(_ what: String) {
        guard self.closeDeadline == nil, let context = self.context else { return }
        let timeout = self.session.limits.closingTimeout
        self.closeDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, let context = self.context, context.channel.isActive else { return }
            self.closeDeadline = nil
            let seconds = Double(timeout.nanoseconds) / 1e9
            self.session.recordError(
                "closeTimeout", detail: "\(self.side.recordName) did not \(what) within \(seconds.secondsText) s; the proxy closed its connection",
                direction: self.side.inboundDirection
            )
            context.close(promise: nil)
        }
    }

    /// Records which side did not finish closing, then closes both sockets at once.
    func closingTimedOut() {
        let session = self.session
        session.closingDeadline = nil
        guard !session.finished else { return }
        let handlers = [self, self.partner].compactMap { $0 }
        let open = handlers.filter { $0.context?.channel.isActive == true }.map(\.side)
        if let (side, what) = Self.whoStalled(open: open, closeFramesFrom: session.closeFramesFrom, proxyClosed: session.proxyClosed) {
            let seconds = Double(session.limits.closingTimeout.nanoseconds) / 1e9
            session.recordError(
                "closeTimeout",
                detail: "\(side.recordName) \(what) within \(seconds.secondsText) s; the proxy closed both connections",
                direction: side.inboundDirection
            )
        }
        for handler in handlers {
            handler.closing = true
            handler.context?.close(promise: nil)
        }
    }

    /// The side that kept a closing pair open, and how: one answer per pair, naming the peer whose move it was.
    static func whoStalled(open: [RelaySide], closeFramesFrom: Set<RelaySide>, proxyClosed: Set<RelaySide>) -> (RelaySide, String)? {
        guard !open.isEmpty else { return nil }
        for side in open {
            let other: RelaySide = side == .charger ? .backend : .charger
            if !closeFramesFrom.contains(side) && closeFramesFrom.contains(other) {
                return (side, "did not answer the close frame from the \(other.recordName)")
            }
            if !closeFramesFrom.contains(side) && proxyClosed.contains(side) {
                return (side, "did not answer the proxy's close frame")
            }
        }
        // Both sent close frames: the server closes the TCP connection first (RFC 6455 7.1.1).
        if closeFramesFrom.count == 2 {
            let side: RelaySide = open.contains(.backend) ? .backend : .charger
            return (side, "did not close its connection after the closing handshake")
        }
        return (open[0], "did not take what was still being sent to it before closing")
    }
}

extension Double {
    /// 10 for 10.0, 2.5 for 2.5: seconds as people write them.
    fileprivate var secondsText: String {
        self == self.rounded() ? String(Int(self)) : String(self)
    }
}
