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

/// Faults: the policy's decision for a message and what carrying it out means on the wire (delays, drops,
/// answers on the peer's behalf, malformed payloads, closes, resets, injected CALLs).
extension RelayHandler {
    func decide(_ chaos: ChaosEngine, frame: WireFrame, payload: ByteBuffer) -> FaultDecision? {
        let direction = self.side.inboundDirection
        let parsed = frame.opcode == .text ? OCPPEnvelope.parse(payload) : nil
        self.parsedEnvelope = parsed
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
            secondsSinceConnection: Double(now &- self.session.openedNanos) / 1e9
        )
        return chaos.decide(facts) {
            guard let range = envelope?.payloadRange else { return nil }
            return payload.withUnsafeReadableBytes { bytes in
                try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[range]))
            }
        }
    }

    /// Carries out the policy's decision for a message, step by step as its `FaultPlan` says.
    func apply(_ decision: FaultDecision, frame: WireFrame, payload: ByteBuffer) {
        let direction = self.side.inboundDirection
        for step in FaultPlan(decision, frame: frame, payload: payload).steps {
            switch step {
            case .forward(let bytes):
                self.forward(bytes)
            case .hold(let bytes, let milliseconds, let overtakable):
                let deadline = NIODeadline.now() + .milliseconds(Int64(milliseconds))
                if overtakable {
                    self.context?.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                        self?.partner?.write(bytes)
                        self?.partner?.flushIfNeeded()
                    }
                } else {
                    self.held.append((deadline, bytes))
                    self.scheduleRelease()
                }
            case .record(let fault):
                self.observe(frame, payload: payload, fault: fault)
            case .recordCopy(let opcode, let copy, let fault):
                self.emit(opcode: opcode == .text ? .text : .binary, payload: copy, fragments: 1, direction: direction, injected: true, fault: fault)
            case .answer(let answer, let fault):
                guard let context = self.context else { continue }
                context.writeAndFlush(Self.wrapOutboundOut(self.ownFrame(opcode: .text, payload: answer)), promise: nil)
                self.emit(opcode: .text, payload: answer, fragments: 1, direction: direction.reversed, injected: true, fault: fault)
            case .injectCall(let action, let injected, let target, let fault):
                let handler = target == .charger ? (self.side == .charger ? self : self.partner) : (self.side == .backend ? self : self.partner)
                handler?.injectCall(action: action, payload: injected, fault: fault)
            case .outage(let allChargers, let seconds, let mode):
                self.session.startOutage?(allChargers ? nil : self.session.chargePoint, seconds, mode)
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

    func scheduleRelease() {
        guard self.releaseTask == nil, let first = self.held.first, let context = self.context else { return }
        self.releaseTask = context.eventLoop.assumeIsolated().scheduleTask(deadline: first.deadline) { [weak self] in
            self?.releaseTask = nil
            self?.releaseHeld()
        }
    }

    func releaseHeld() {
        let now = NIODeadline.now()
        while let first = self.held.first, first.deadline <= now {
            self.held.removeFirst()
            self.partner?.write(first.bytes)
        }
        self.partner?.flushIfNeeded()
        self.scheduleRelease()
    }

    /// Sends a CALL of the proxy's own to this side's peer and records it as injected.
    func injectCall(action: String, payload: JSONValue, fault: JSONObject) {
        guard let context = self.context, !self.closing else { return }
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
        guard !self.closing, let context = self.context else { return }
        self.closing = true
        let channel = context.channel
        guard let provider = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        // Linger on with a zero timeout makes close send RST instead of FIN.
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }
}
