import NIOCore
import OCPPWire
import WitnessChaos
import WitnessPolicy

/// What carrying out a policy's decision for one message means, worked out without a channel: the steps in
/// the order the relay takes them. `RelayHandler.apply` carries them out; tests read them directly.
struct FaultPlan {
    enum Step {
        /// Send these frame bytes on to the other side (behind any messages a delay holds back).
        case forward(ByteBuffer)
        /// Send these frame bytes on after `milliseconds`: in order with other held messages, or, when
        /// `overtakable`, at their own deadline, so later messages overtake them.
        case hold(ByteBuffer, milliseconds: Int, overtakable: Bool)
        /// Send these frame bytes on once the connection's bandwidth-limited link is free, plus `milliseconds`:
        /// limited messages follow one another, so the limit is on the connection's cumulative rate.
        case pace(ByteBuffer, milliseconds: Int)
        /// Record the message as it arrived, with the fault that hit it (nil: recorded without one).
        case record(fault: JSONObject?)
        /// Record a message the proxy sent in the message's own direction (a duplicate's copy).
        case recordCopy(opcode: WebSocketWireOpcode, payload: ByteBuffer, fault: JSONObject)
        /// Answer the sender on its peer's behalf with this text, and record the answer as injected.
        case answer(ByteBuffer, fault: JSONObject)
        /// Send a CALL of the proxy's own towards `target`, recorded as injected.
        case injectCall(action: String, payload: JSONValue, target: InjectTarget, fault: JSONObject)
        /// Start an outage, for this charge point or all of them.
        case outage(allChargers: Bool, duration: BoundedDuration, mode: OutageMode)
        /// Close these sides, with a close frame (carrying `reason`) or a TCP reset; the capture's close
        /// record says `recordedReason`.
        case close(DisconnectSide, code: UInt16, reason: String, recordedReason: String, reset: Bool)
    }

    var steps: [Step]

    /// The plan for `decision` on `frame`, whose unmasked payload is `payload`.
    init(_ decision: FaultDecision, frame: WireFrame, payload: ByteBuffer) {
        var record: JSONObject = ["rule": .string(decision.rule), "kind": .string(decision.fault.kind), "hit": .int(decision.hit)]
        switch decision.fault {
        case .drop:
            self.steps = [.record(fault: record)]
        case .delay(_, _, let reorder):
            record["ms"] = .int(decision.delayMilliseconds)
            self.steps = [.record(fault: record), .hold(frame.wire, milliseconds: decision.delayMilliseconds, overtakable: reorder)]
        case .duplicate:
            self.steps = [
                .forward(frame.wire), .forward(frame.wire), .record(fault: record),
                .recordCopy(opcode: frame.opcode == .text ? .text : .binary, payload: payload, fault: record),
            ]
        case .malformed(let malformation):
            let (text, binary) = MessageMutator.apply(malformation, to: String(buffer: payload))
            record["malformation"] = .string(malformation.name)
            record["delivered"] = .string(text)
            self.steps = [.forward(Self.reframed(frame, data: ByteBuffer(string: text), opcode: binary ? .binary : frame.opcode)), .record(fault: record)]
        case .respond(let response):
            // Only a CALL can be answered; anything else passes.
            guard let envelope = try? OCPPEnvelope.parse(payload).get(), envelope.messageType == .call else {
                self.steps = [.forward(frame.wire), .record(fault: nil)]
                return
            }
            self.steps = [.record(fault: record), .answer(ByteBuffer(string: MessageMutator.response(response, messageId: envelope.messageId)), fault: record)]
        case .slice(let size):
            record["fragments"] = .int(max(1, (payload.readableBytes + size - 1) / size))
            var parts: [Step] = []
            var rest = payload
            var first = true
            while rest.readableBytes > 0 || first {
                let part = rest.readSlice(length: min(size, rest.readableBytes)) ?? ByteBuffer()
                parts.append(.forward(Self.reframed(frame, data: part, opcode: first ? frame.opcode : .continuation, fin: rest.readableBytes == 0)))
                first = false
            }
            self.steps = parts + [.record(fault: record)]
        case .bandwidth(let rate):
            // The message takes as long as its bytes take at `rate`, after the limited messages before it.
            let milliseconds = max(1, payload.readableBytes * 1000 / rate)
            record["ms"] = .int(milliseconds)
            self.steps = [.record(fault: record), .pace(frame.wire, milliseconds: milliseconds)]
        case .outage(let seconds, let mode, let allChargers):
            record["seconds"] = .double(seconds)
            record["mode"] = .string(mode.rawValue)
            record["scope"] = .string(allChargers ? "all" : "charger")
            // The policy loader bounded the duration already; the clamp only keeps a policy built in code from trapping.
            let duration = (try? BoundedDuration(seconds: seconds, field: "duration of outage")) ?? .zero
            self.steps = [.record(fault: record), .outage(allChargers: allChargers, duration: duration, mode: mode)]
        case .inject(let action, let template, let copies, let target):
            record["action"] = .string(action)
            var injected = template
            if !copies.isEmpty {
                let trigger = (try? OCPPEnvelope.parse(payload).get())?.payloadRange.flatMap { range in
                    payload.withUnsafeReadableBytes { try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0[range])) }
                }
                switch InjectCopy.fill(template, copies: copies, from: trigger) {
                case .success(let filled):
                    injected = filled
                case .failure(let missing):
                    // Nothing to copy from: the CALL is not sent, and the triggering message says why.
                    record["skipped"] = .string("the triggering message has no \(missing.pointer)")
                    self.steps = [.forward(frame.wire), .record(fault: record)]
                    return
                }
            }
            self.steps = [.forward(frame.wire), .record(fault: nil), .injectCall(action: action, payload: injected, target: target, fault: record)]
        case .disconnect(let side, let code, let reason, let reset):
            record["side"] = .string(side.rawValue)
            record["code"] = .int(Int(code))
            if reset { record["mode"] = "reset" }
            self.steps = [
                .record(fault: record), .close(side, code: code, reason: reason, recordedReason: reason.isEmpty ? "fault \(decision.rule)" : reason, reset: reset),
            ]
        }
    }

    /// Frame bytes carrying `data` instead of the frame's payload, with the frame's flags and masking key.
    static func reframed(_ frame: WireFrame, data: ByteBuffer, opcode: WebSocketWireOpcode? = nil, fin: Bool? = nil) -> ByteBuffer {
        WebSocketFrameHeader.frame(
            fin: fin ?? frame.fin, opcode: opcode ?? frame.opcode, maskKey: frame.header.maskKey, payload: data, allocator: ByteBufferAllocator()
        )
    }
}
