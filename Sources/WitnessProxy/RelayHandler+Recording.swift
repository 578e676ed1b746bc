import Logging
import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessModel
import WitnessCapture
import WitnessChaos
import WitnessPolicy

/// Recording: messages reassembled from their frames, described, and handed to the capture writer; reads
/// pause while the writer is behind.
extension RelayHandler {
    /// Records a frame read from this side: control frames at once, data frames once their message is whole.
    /// `envelope` is the message's envelope when the fault decision parsed it already.
    func observe(
        _ frame: WireFrame, payload: ByteBuffer, fault: JSONObject? = nil, envelope: Result<OCPPEnvelope, MalformedMessage>? = nil
    ) {
        let step: MessageAssembly.Step
        switch frame.opcode {
        case .text:
            step = self.message.begin(.text, payload: payload, fin: frame.fin)
        case .binary:
            step = self.message.begin(.binary, payload: payload, fin: frame.fin)
        case .continuation:
            // The relay has already failed a message over the limit, before any of it went on.
            step = self.message.add(payload, fin: frame.fin)
        case .ping:
            self.emit(opcode: .ping, payload: payload, fragments: 1)
            return
        case .pong:
            self.emit(opcode: .pong, payload: payload, fragments: 1)
            return
        case .close:
            self.carryOut(self.session.lifecycle.closeFrame(from: self.side))
            if self.session.firstClose == nil {
                var view = payload
                let code = view.readInteger(as: UInt16.self)
                let reason = view.readString(length: view.readableBytes) ?? ""
                self.session.firstClose = (self.side, code, reason)
            }
            self.emit(opcode: .close, payload: payload, fragments: 1)
            return
        default:
            self.session.recordError(
                "protocolError", detail: "frame with \(frame.opcode) forwarded as is",
                direction: self.side.inboundDirection
            )
            return
        }
        switch step {
        case .partial:
            return
        case .orphanContinuation:
            self.session.recordError(
                "protocolError", detail: "continuation frame without a message to continue",
                direction: self.side.inboundDirection
            )
        case .complete(let opcode, let data, let fragments):
            self.emit(opcode: opcode, payload: data, fragments: fragments, compressed: frame.inflated, fault: fault, envelope: envelope)
        }
    }

    /// Hands a whole message or control frame to the recorder (and to the correlation the faults read).
    /// `compressed`: it came compressed on the wire; `envelope`: parsed already, for a message read from this side.
    func emit(
        opcode: FrameOpcode, payload: ByteBuffer, fragments: Int, direction: Direction? = nil, injected: Bool = false,
        compressed: Bool = false, fault: JSONObject? = nil, envelope cached: Result<OCPPEnvelope, MalformedMessage>? = nil
    ) {
        let direction = direction ?? self.side.inboundDirection
        if opcode == .text || opcode == .binary {
            if direction == .toCSMS { self.session.messagesToCSMS += 1 } else { self.session.messagesToCharger += 1 }
        }
        // A peer's text message that is not UTF-8 (inflated, unmasked: as the application reads it) is recorded
        // below (its frame record says invalidUTF8, the finding); as an RFC 6455 server must, the strict proxy
        // then fails the connection with 1007. Its frames have gone on as they arrived.
        let failsUTF8 =
            opcode == .text && !injected && self.session.limits.strictWebSocket && self.closing == .open
            && !payload.withUnsafeReadableBytes(UTF8Validation.isValid)
        defer {
            if failsUTF8 {
                self.framingError(
                    "invalidUTF8",
                    detail: "\(self.side.recordName) sent a text message that is not UTF-8 (RFC 6455 8.1); closed with 1007 (--strict-websocket)",
                    code: .dataInconsistentWithMessage, reason: "invalid UTF-8"
                )
            }
        }
        // Forwarding only (no capture, no fault injection): nobody reads the envelope or the correlation.
        guard self.session.recorder != nil || self.session.faults != nil else { return }
        // A message read unmasked is a slice of the buffer the socket read into. Queued for the recorder as
        // it is, that slice would keep the whole buffer alive until the writer thread gets to it, so the
        // channel could not read into the same buffer again and would allocate a new one; the recorder
        // gets its own copy of the message instead.
        var payload = payload
        if self.session.recorder != nil, payload.storageCapacity > 2 * payload.readableBytes + 64 {
            payload = (self.context?.channel.allocator ?? ByteBufferAllocator()).buffer(buffer: payload)
        }
        var event = FrameEvent(
            ts: .now(), connection: self.session.id, chargePoint: self.session.chargePoint, direction: direction,
            opcode: opcode, payload: payload, fragments: fragments, injected: injected, fault: fault
        )
        event.compressed = compressed && !injected
        if opcode == .text, self.session.faults == nil, !self.session.finished {
            // No fault policy reads envelopes or outstanding CALLs here: the recorder's thread parses the
            // envelope and correlates the call, off the forwarding path. (After the session's close record
            // the writer has let go of the connection's calls, so a straggler is read here instead.)
            event.leaveToRecorder(seenNanos: NIODeadline.now().uptimeNanoseconds)
        } else if opcode == .text {
            switch cached ?? OCPPEnvelope.parse(payload) {
            case .success(let envelope):
                event.envelope = envelope
                if let chaos = self.session.chaos, chaos.policy.needsIdentity, envelope.messageType == .call,
                    envelope.action == "BootNotification", direction == .toCSMS
                {
                    self.noteIdentity(payload, envelope)
                }
                event.note(self.session.correlator.observe(envelope, direction: direction, atNanos: NIODeadline.now().uptimeNanoseconds))
            case .failure(let malformed):
                event.malformed = malformed
            }
        }
        if !self.session.record(event) {
            self.blockUntilRecorderDrains()
        }
    }

    func noteIdentity(_ payload: ByteBuffer, _ envelope: OCPPEnvelope) {
        guard let range = envelope.payloadRange,
            let boot = payload.withUnsafeReadableBytes({ try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0[range])) })
        else { return }
        // Matched as reports name the pair: a field the charger left out is `unknown`.
        let identity = BootIdentity(bootNotification: boot)
        self.session.identity = (
            vendor: identity.vendor ?? BootIdentity.unknown, model: identity.model ?? BootIdentity.unknown,
            firmware: identity.firmware ?? BootIdentity.unknown
        )
    }

    func blockUntilRecorderDrains() {
        guard !self.gate.recorderBehind, let recorder = self.session.recorder, let context = self.context else { return }
        self.gate.recorder(behind: true)
        self.session.logger.debug("recorder behind; pausing reads")
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        recorder.whenBelowLowWatermark {
            eventLoop.execute {
                loopBound.value.gate.recorder(behind: false)
                loopBound.value.resumeReadingIfPossible()
            }
        }
    }
}
