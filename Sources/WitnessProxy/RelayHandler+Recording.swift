import Logging
import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessChaos

/// Recording: messages reassembled from their frames, described, and handed to the capture writer; reads
/// pause while the writer is behind.
extension RelayHandler {
    func observe(_ frame: WireFrame, payload: ByteBuffer, fault: JSONObject? = nil) {
        switch frame.opcode {
        case .text, .binary:
            self.messageOpcode = frame.opcode == .text ? .text : .binary
            self.messageData = payload
            self.messageFragments = 1
        case .continuation:
            guard self.messageOpcode != nil else {
                self.session.recordError(
                    "protocolError", detail: "continuation frame without a message to continue",
                    direction: self.side.inboundDirection
                )
                return
            }
            self.messageFragments += 1
            // The relay has already failed a message over the limit, before any of it went on.
            var part = payload
            self.messageData.writeBuffer(&part)
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
        guard frame.fin, let opcode = self.messageOpcode else { return }
        self.pendingFault = fault
        self.messageOpcode = nil
        let data = self.messageData
        self.messageData = ByteBuffer()
        let fault = self.pendingFault
        self.pendingFault = nil
        self.emit(opcode: opcode, payload: data, fragments: self.messageFragments, fault: fault)
    }

    func emit(
        opcode: FrameOpcode, payload: ByteBuffer, fragments: Int, direction: Direction? = nil, injected: Bool = false,
        fault: JSONObject? = nil
    ) {
        let direction = direction ?? self.side.inboundDirection
        if opcode == .text || opcode == .binary {
            if direction == .toCSMS { self.session.messagesToCSMS += 1 } else { self.session.messagesToCharger += 1 }
        }
        // A peer's text message that is not UTF-8 (inflated, unmasked: as the application reads it) is recorded
        // below (its frame record says invalidUTF8, the finding); as an RFC 6455 server must, the strict proxy
        // then fails the connection with 1007. Its frames have gone on as they arrived.
        let failsUTF8 =
            opcode == .text && !injected && self.session.limits.strictWebSocket && !self.closing
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
        guard self.session.recorder != nil || self.session.faults != nil else {
            self.parsedEnvelope = nil
            return
        }
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
        event.compressed = self.emittingCompressed && !injected
        // Injected frames are parsed afresh; the cache belongs to the message that was read.
        let cached = injected ? nil : self.parsedEnvelope
        self.parsedEnvelope = nil
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
        let station = boot["chargingStation"]
        self.session.identity = (
            vendor: boot["chargePointVendor"]?.stringValue ?? station?["vendorName"]?.stringValue ?? "",
            model: boot["chargePointModel"]?.stringValue ?? station?["model"]?.stringValue ?? "",
            firmware: boot["firmwareVersion"]?.stringValue ?? station?["firmwareVersion"]?.stringValue ?? ""
        )
    }

    func blockUntilRecorderDrains() {
        guard !self.recorderBlocked, let recorder = self.session.recorder, let context = self.context else { return }
        self.recorderBlocked = true
        self.session.logger.debug("recorder behind; pausing reads")
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        recorder.whenBelowLowWatermark {
            eventLoop.execute {
                loopBound.value.recorderBlocked = false
                loopBound.value.resumeReadingIfPossible()
            }
        }
    }
}
