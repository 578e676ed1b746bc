import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessPolicy

/// Forwarding: each frame read goes to the partner as it arrived (or recompressed, or reframed, as the
/// session's compression mode asks), and whole messages go on to the fault policy and the record.
extension RelayHandler {
    func relay(_ frame: WireFrame) {
        // Nothing records, injects or waits for an answer: forward the bytes and keep count. Only control
        // frames are unmasked, for the close code.
        guard self.session.inspectsMessages else {
            self.forward(frame.wire)
            self.observe(frame, payload: frame.header.opcode.isControl ? frame.payload : frame.payloadOnWire)
            return
        }
        if let compression = self.session.compression, !frame.opcode.isControl, self.relayCompressed(frame, compression) { return }
        self.relayMessage(frame)
    }

    /// Takes the frames of compressed messages; false for frames of uncompressed ones, which go the plain way.
    func relayCompressed(_ frame: WireFrame, _ compression: RelayCompression) -> Bool {
        let step = self.deflate.add(frame)
        if case .plain = step { return false }
        if compression.mode == .passThrough { self.forward(frame.wire) }
        guard case .complete(let message) = step else { return true }
        let direction = self.side.inboundDirection
        if self.inflater == nil { self.inflater = try? MessageInflater(contextTakeover: compression.parameters.contextTakeover(direction)) }
        switch self.inflater?.inflate(message.data, maximumBytes: self.session.maximumMessageBytes) ?? .failure(.corrupt) {
        case .success(let text):
            switch compression.mode {
            case .passThrough:
                self.emit(opcode: message.opcode == .text ? .text : .binary, payload: text, fragments: message.fragments, compressed: true)
            case .decompressed:
                // From here the message is an uncompressed one of a single frame, masked as the sender masked it.
                let wire = WebSocketFrameHeader.frame(
                    opcode: message.opcode, maskKey: message.mask, payload: text, allocator: self.context?.channel.allocator ?? ByteBufferAllocator()
                )
                let header = WebSocketFrameHeader(
                    fin: true, reservedBits: 0, opcode: message.opcode, maskKey: message.mask, length: wire.readableBytes - text.readableBytes,
                    payloadLength: text.readableBytes
                )
                self.relayMessage(WireFrame(header: header, wire: wire, inflated: true))
            }
        case .failure(.tooLarge):
            self.framingError(
                "messageTooLarge",
                detail: "\(self.side.recordName) sent a compressed message that inflates to more than the \(self.session.maximumMessageBytes)-byte limit; closed with 1009",
                code: .messageTooLarge, reason: "message too large"
            )
        case .failure(.corrupt):
            let detail = "\(self.side.recordName) sent a compressed message (\(message.data.readableBytes) bytes) that does not inflate"
            if compression.mode == .passThrough {
                // Forwarded as it came: the other side meets the same broken stream and answers for itself.
                self.session.recordError("inflateFailed", detail: detail + "; forwarded as it came", direction: direction)
            } else {
                self.framingError("inflateFailed", detail: detail + "; closed with 1007", code: .dataInconsistentWithMessage, reason: "invalid compressed data")
            }
        }
        return true
    }

    func relayMessage(_ frame: WireFrame) {
        let payload = frame.payload
        // In a blackhole outage nothing gets through, in either direction.
        if let outages = self.session.outages, outages.active(for: self.session.chargePoint) == .blackhole {
            if frame.fin && !self.message.inMessage && frame.isDataFrame {
                self.observe(frame, payload: payload, fault: ["kind": "outage", "mode": "blackhole"])
            }
            return
        }
        // Answers to the proxy's own CALLs are recorded and kept from the other side.
        if frame.fin, frame.opcode == .text, !self.message.inMessage, let pending = self.session.injectedCalls[self.side.inboundDirection.reversed],
            !pending.isEmpty, let envelope = try? OCPPEnvelope.parse(payload).get(), envelope.messageType.isResponse,
            self.session.injectedCalls[self.side.inboundDirection.reversed]?.remove(envelope.messageId) != nil
        {
            self.observe(frame, payload: payload, fault: ["kind": "inject", "answer": true])
            return
        }
        // Faults apply to whole messages in one frame; fragmented messages pass unchanged.
        if let chaos = self.session.chaos, frame.fin, !self.message.inMessage, frame.isDataFrame {
            let (decision, envelope) = self.decide(chaos, frame: frame, payload: payload)
            if let decision {
                self.apply(decision, frame: frame, payload: payload, envelope: envelope)
                return
            }
            self.forward(frame.wire)
            self.observe(frame, payload: payload, envelope: envelope)
            return
        }
        self.forward(frame.wire)
        self.observe(frame, payload: payload)
    }

    /// Writes to the partner, or queues behind messages a delay fault is holding back.
    func forward(_ bytes: ByteBuffer) {
        guard let partner = self.partner else { return }
        if self.holding.holdsInOrder {
            self.hold(bytes, until: NIODeadline.now(), overtakable: false)
        } else {
            partner.write(bytes)
        }
    }
}
