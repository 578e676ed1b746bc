import NIOCore
import NIOWebSocket
import OCPPWire

/// The pair's closing, carried out: `PairClosing` decides, the relay schedules the deadline and closes
/// sockets. From the first close frame (a peer's, forwarded, or the proxy's own) or the first close the proxy
/// starts, both sockets must be gone within `closingTimeout`. A peer that never answers a close frame, or never
/// reads what is still being written to it, cannot hold its pair open.
extension RelayHandler {
    func carryOut(_ action: PairClosing.Action) {
        switch action {
        case .none, .finish:
            // The session carries out `finish` itself, where it records the close.
            break
        case .startDeadline:
            guard self.session.closingDeadline == nil, let context = self.context else { return }
            self.session.closingDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.session.limits.closingTimeout) { [weak self] in
                self?.closingDeadlinePassed()
            }
        case .timedOut(let side, let what):
            let seconds = Double(self.session.limits.closingTimeout.nanoseconds) / 1e9
            self.session.recordError(
                "closeTimeout", detail: "\(side.recordName) \(what) within \(seconds.plainText) s; the proxy closed both connections",
                direction: side.inboundDirection
            )
            for handler in [self, self.partner].compactMap({ $0 }) {
                handler.closing = .closing
                handler.context?.close(promise: nil)
            }
        }
    }

    func closingDeadlinePassed() {
        self.session.closingDeadline = nil
        let open = [self, self.partner].compactMap { $0 }.filter { $0.context?.channel.isActive == true }.map(\.side)
        self.carryOut(self.session.lifecycle.deadlinePassed(open: open))
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
                "closeTimeout", detail: "\(self.side.recordName) did not \(what) within \(seconds.plainText) s; the proxy closed its connection",
                direction: self.side.inboundDirection
            )
            context.close(promise: nil)
        }
    }
}
