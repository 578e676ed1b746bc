#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessChaos
import WitnessPolicy

/// Faults: the policy's decision for a message and what carrying it out means on the wire (delays, drops,
/// answers on the peer's behalf, malformed payloads, closes, resets, injected CALLs).
extension RelayHandler {
    /// The policy's decision for a message, and its envelope as parsed for the decision (the record reuses it).
    func decide(
        _ chaos: ChaosEngine, frame: WireFrame, payload: ByteBuffer
    ) -> (FaultDecision?, Result<OCPPEnvelope, MalformedMessage>?) {
        let direction = self.side.inboundDirection
        let parsed = frame.opcode == .text ? OCPPEnvelope.parse(payload) : nil
        let envelope = try? parsed?.get()
        var action = envelope?.action
        if let envelope, envelope.messageType.isResponse {
            action = self.session.correlator.call(answeredBy: envelope.messageId, travelling: direction)?.action
        }
        let now = NIODeadline.now().uptimeNanoseconds
        let facts = MessageFacts(
            direction: direction, messageType: envelope?.messageType, action: action, messageId: envelope?.messageId,
            chargePoint: self.session.chargePoint, identity: self.session.identity,
            secondsSinceStart: Double(now &- self.session.proxyStartNanos) / 1e9,
            secondsSinceConnection: Double(now &- self.session.openedNanos) / 1e9, connection: self.session.id
        )
        let decision = chaos.decide(facts) {
            guard let range = envelope?.payloadRange else { return nil }
            return payload.withUnsafeReadableBytes { bytes in
                try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[range]))
            }
        }
        return (decision, parsed)
    }

    /// Carries out the policy's decision for a message, step by step as its `FaultPlan` says.
    func apply(_ decision: FaultDecision, frame: WireFrame, payload: ByteBuffer, envelope: Result<OCPPEnvelope, MalformedMessage>?) {
        let direction = self.side.inboundDirection
        for step in FaultPlan(decision, frame: frame, payload: payload).steps {
            switch step {
            case .forward(let bytes):
                self.forward(bytes)
            case .hold(let bytes, let milliseconds, let overtakable):
                self.hold(bytes, until: NIODeadline.now() + .milliseconds(Int64(milliseconds)), overtakable: overtakable)
            case .pace(let bytes, let milliseconds):
                // The link carries one message after another: this one starts when the one before it is through.
                self.held(self.holding.pace(bytes, now: NIODeadline.now(), taking: .milliseconds(Int64(milliseconds))))
            case .record(let fault):
                self.observe(frame, payload: payload, fault: fault, envelope: envelope)
            case .recordCopy(let opcode, let copy, let fault):
                self.emit(opcode: opcode == .text ? .text : .binary, payload: copy, fragments: 1, direction: direction, injected: true, fault: fault)
            case .answer(let answer, let fault):
                guard let context = self.context else { continue }
                context.writeAndFlush(Self.wrapOutboundOut(self.ownFrame(opcode: .text, payload: answer)), promise: nil)
                self.emit(opcode: .text, payload: answer, fragments: 1, direction: direction.reversed, injected: true, fault: fault)
            case .injectCall(let action, let injected, let target, let fault):
                let handler = target == .charger ? (self.side == .charger ? self : self.partner) : (self.side == .backend ? self : self.partner)
                handler?.injectCall(action: action, payload: injected, fault: fault)
            case .outage(let allChargers, let duration, let mode):
                self.session.startOutage?(allChargers ? nil : self.session.chargePoint, duration, mode)
            case .close(let side, let code, let reason, let recordedReason, let reset):
                let charger = self.side == .charger ? self : self.partner
                let backend = self.side == .backend ? self : self.partner
                let targets = side == .both ? [charger, backend] : side == .charger ? [charger] : [backend]
                if self.session.proxyClose == nil {
                    self.session.proxyClose = (WebSocketErrorCode(codeNumber: Int(code)), recordedReason)
                }
                for target in targets.compactMap({ $0 }) {
                    if reset { target.resetConnection() } else { target.closeWithFrame(code: WebSocketErrorCode(codeNumber: Int(code)), reason: reason) }
                }
            }
        }
        self.partner?.flushIfNeeded()
    }

    /// Holds frame bytes back until `deadline`: in order behind everything held, or, when `overtakable`, on
    /// their own. Past the connection's or the proxy's budget of held bytes, this side is no longer read, so a
    /// sender that keeps sending into a delay slows down instead of growing the proxy.
    func hold(_ bytes: ByteBuffer, until deadline: NIODeadline, overtakable: Bool) {
        self.held(self.holding.hold(bytes, until: deadline, overtakable: overtakable))
    }

    /// Counts what was just held against the budgets and sets the release timer.
    func held(_ cost: Int) {
        let withinTotal = self.session.limits.heldBytesTotal.add(cost)
        if self.holding.cost > self.session.limits.heldBytesPerConnection || !withinTotal {
            self.gate.held(overBudget: true)
        }
        self.scheduleRelease()
    }

    func scheduleRelease() {
        guard let context = self.context, let deadline = self.holding.timerNeeded() else { return }
        self.releaseTask?.cancel()
        self.releaseTask = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            self.releaseTask = nil
            self.holding.timerFired()
            self.releaseHeld()
        }
    }

    func releaseHeld() {
        let partner = self.partner
        let released = self.holding.release(now: NIODeadline.now()) { partner?.write($0) }
        partner?.flushIfNeeded()
        let withinTotal = self.session.limits.heldBytesTotal.add(-released)
        // A side holding nothing any more is read again even while other pairs keep the total over its limit.
        let held = self.holding.cost
        if self.gate.heldOverBudget && held <= self.session.limits.heldBytesPerConnection && (withinTotal || held == 0) {
            self.gate.held(overBudget: false)
            self.resumeReadingIfPossible()
        }
        self.scheduleRelease()
    }

    /// Sends a CALL of the proxy's own to this side's peer and records it as injected.
    func injectCall(action: String, payload: JSONValue, fault: JSONObject) {
        guard let context = self.context, self.closing == .open else { return }
        // Its answer would come compressed and have to be kept from the other side, whose inflater would
        // then miss it: on a pair forwarded byte-exact, the proxy sends nothing of its own.
        if self.session.compression?.mode == .passThrough {
            self.session.recordError(
                "injectRefused",
                detail: "\(action) not sent: this connection is compressed and forwarded byte-exact (a proxy started with --policy forwards compressed connections uncompressed and can inject)",
                direction: self.side.inboundDirection.reversed
            )
            return
        }
        let id = self.session.nextInjectedId()
        let text = ByteBuffer(string: JSONWriter.string([.int(MessageType.call.rawValue), .string(id), .string(action), payload]))
        // The CALL travels towards this side's peer: the opposite of what this side receives.
        let direction = self.side.inboundDirection.reversed
        self.session.injectedCalls[direction, default: []].insert(id)
        context.writeAndFlush(Self.wrapOutboundOut(self.ownFrame(opcode: .text, payload: text)), promise: nil)
        self.emit(opcode: .text, payload: text, fragments: 1, direction: direction, injected: true, fault: fault)
    }

    /// Closes this side with a TCP reset instead of a close frame.
    func resetConnection() {
        guard self.closing == .open, let context = self.context else { return }
        self.closing = .closing
        let channel = context.channel
        guard let provider = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        // Linger on with a zero timeout makes close send RST instead of FIN.
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }
}
