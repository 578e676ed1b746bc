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
            action = self.session.correlator.outstanding(direction.reversed)[envelope.messageId]?.action
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

    func apply(_ decision: FaultDecision, frame: WireFrame, payload: ByteBuffer) {
        var record: JSONObject = ["rule": .string(decision.rule), "kind": .string(decision.fault.kind), "hit": .int(decision.hit)]
        let direction = self.side.inboundDirection
        switch decision.fault {
        case .drop:
            self.observe(frame, payload: payload, fault: record)
        case .delay(_, _, let reorder):
            record["ms"] = .int(decision.delayMilliseconds)
            self.observe(frame, payload: payload, fault: record)
            let deadline = NIODeadline.now() + .milliseconds(Int64(decision.delayMilliseconds))
            let outbound = frame.wire
            if reorder {
                self.context?.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                    self?.partner?.write(outbound)
                    self?.partner?.flushIfNeeded()
                }
            } else {
                self.held.append((deadline, outbound))
                self.scheduleRelease()
            }
        case .duplicate:
            self.forward(frame.wire)
            self.forward(frame.wire)
            self.observe(frame, payload: payload, fault: record)
            self.emit(opcode: frame.opcode == .text ? .text : .binary, payload: payload, fragments: 1, direction: direction, injected: true, fault: record)
        case .malformed(let malformation):
            let (text, binary) = MessageMutator.apply(malformation, to: String(buffer: payload))
            record["malformation"] = .string(malformation.name)
            record["delivered"] = .string(text)
            self.forward(self.reframed(frame, data: ByteBuffer(string: text), opcode: binary ? .binary : frame.opcode))
            self.observe(frame, payload: payload, fault: record)
        case .respond(let response):
            guard let envelope = try? OCPPEnvelope.parse(payload).get(), envelope.messageType == .call, let context = self.context else {
                // Only a CALL can be answered; anything else passes.
                self.forward(frame.wire)
                self.observe(frame, payload: payload)
                return
            }
            self.observe(frame, payload: payload, fault: record)
            let answer = ByteBuffer(string: MessageMutator.response(response, messageId: envelope.messageId))
            context.writeAndFlush(Self.wrapOutboundOut(self.ownFrame(opcode: .text, payload: answer)), promise: nil)
            self.emit(opcode: .text, payload: answer, fragments: 1, direction: direction.reversed, injected: true, fault: record)
        case .slice(let size):
            record["fragments"] = .int(max(1, (payload.readableBytes + size - 1) / size))
            var rest = payload
            var first = true
            while rest.readableBytes > 0 || first {
                let part = rest.readSlice(length: min(size, rest.readableBytes)) ?? ByteBuffer()
                let last = rest.readableBytes == 0
                self.forward(self.reframed(frame, data: part, opcode: first ? frame.opcode : .continuation, fin: last))
                first = false
            }
            self.observe(frame, payload: payload, fault: record)
        case .bandwidth(let rate):
            // The message waits, in order, as long as its bytes take at `rate`.
            let milliseconds = max(1, payload.readableBytes * 1000 / rate)
            record["ms"] = .int(milliseconds)
            self.observe(frame, payload: payload, fault: record)
            self.held.append((NIODeadline.now() + .milliseconds(Int64(milliseconds)), frame.wire))
            self.scheduleRelease()
        case .outage(let seconds, let mode, let allChargers):
            record["seconds"] = .double(seconds)
            record["mode"] = .string(mode.rawValue)
            self.observe(frame, payload: payload, fault: record)
            self.session.startOutage?(allChargers ? nil : self.session.chargePoint, seconds, mode)
        case .inject(let action, let template, let copies, let target):
            self.forward(frame.wire)
            record["action"] = .string(action)
            var injectedPayload = template
            if !copies.isEmpty {
                let trigger = (try? OCPPEnvelope.parse(payload).get())?.payloadRange.flatMap { range in
                    payload.withUnsafeReadableBytes { try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0[range])) }
                }
                switch InjectCopy.fill(template, copies: copies, from: trigger) {
                case .success(let filled):
                    injectedPayload = filled
                case .failure(let missing):
                    // Nothing to copy from: the CALL is not sent, and the triggering message says why.
                    record["skipped"] = .string("the triggering message has no \(missing.pointer)")
                    self.observe(frame, payload: payload, fault: record)
                    return
                }
            }
            self.observe(frame, payload: payload)
            let handler = target == .charger ? (self.side == .charger ? self : self.partner) : (self.side == .backend ? self : self.partner)
            handler?.injectCall(action: action, payload: injectedPayload, fault: record)
        case .disconnect(let side, let code, let reason, let reset):
            record["side"] = .string(side.rawValue)
            record["code"] = .int(Int(code))
            if reset { record["mode"] = "reset" }
            self.observe(frame, payload: payload, fault: record)
            let charger = self.side == .charger ? self : self.partner
            let backend = self.side == .backend ? self : self.partner
            let targets = side == .both ? [charger, backend] : side == .charger ? [charger] : [backend]
            if self.session.proxyClose == nil {
                self.session.proxyClose = (WebSocketErrorCode(codeNumber: Int(code)), reason.isEmpty ? "fault \(decision.rule)" : reason)
            }
            for target in targets.compactMap({ $0 }) {
                if reset { target.resetConnection() } else { target.closeWithFrame(code: WebSocketErrorCode(codeNumber: Int(code)), reason: reason) }
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
