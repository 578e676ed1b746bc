#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessChaos

/// Forwards WebSocket frames from one side of a pair to the other, unchanged, and records them.
///
/// The relay sits right above the socket (or TLS) and reads the frames itself: each complete frame is
/// written to the partner as the bytes it arrived as, still masked when the charger masked it, as soon as
/// it is read. Fragments stay fragments; whole messages are reassembled (and unmasked) only for the
/// record. Reading stops while the partner cannot take more data or the recorder is behind, so a slow
/// peer or a slow disk slows the sender instead of growing memory.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let side: RelaySide
    let session: RelaySession
    private(set) var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    /// Bytes of a frame that has not arrived whole yet.
    private var inbound = ByteBuffer()
    /// Set after a framing error: the rest of what this side sends is not read as frames.
    private var discarding = false
    /// Frames that arrived before the pair was linked (the backend may speak first).
    private var early: [WireFrame] = []
    private var pendingRead = false
    private var partnerWritable = true
    private var recorderBlocked = false
    private var needsFlush = false
    private var closing = false
    private var closeWhenWritable = false
    /// Frames held back behind a delayed message, in order, with when each may go.
    private var held: [(deadline: NIODeadline, bytes: ByteBuffer)] = []
    private var releaseTask: Scheduled<Void>?

    // Reassembly of the current data message, for the record only.
    private var messageOpcode: FrameOpcode?
    private var messageData = ByteBuffer()
    private var messageFragments = 0
    private var messageTooLarge = false
    private var pendingFault: JSONObject?
    /// The current message's envelope, when the fault decision already parsed it.
    private var parsedEnvelope: Result<OCPPEnvelope, MalformedMessage>?

    // A compressed message (RSV1 on its first frame) being read: its first frame's opcode and mask, the
    // compressed bytes so far (unmasked), and the inflater of this side's messages.
    private var compressed: (opcode: WebSocketWireOpcode, mask: WebSocketMask?, data: ByteBuffer, fragments: Int)?
    /// Whether the data message being read is uncompressed (its continuation frames go the plain way).
    private var plainMessage = false
    private var inflater: MessageInflater?
    /// The message being emitted was compressed on the wire.
    private var emittingCompressed = false

    init(side: RelaySide, session: RelaySession) {
        self.side = side
        self.session = session
    }

    /// Links the two handlers of a pair and releases anything that arrived early.
    static func link(charger: RelayHandler, backend: RelayHandler) {
        charger.partner = backend
        backend.partner = charger
        let early = backend.early
        backend.early = []
        for frame in early { backend.relay(frame) }
        charger.flushIfNeeded()
        if !(backend.context?.channel.isActive ?? false) {
            backend.session.finish(transportClosedBy: .backend)
            charger.closeChannel()
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// The two handlers of a pair point at each other; a handler taken out of its pipeline lets go of its
    /// partner and of whatever it still holds, so a closed pair (both handlers, their session, half-read
    /// and held-back frames) is freed.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
        self.early = []
        self.held = []
        self.releaseTask?.cancel()
        self.releaseTask = nil
        self.inbound = ByteBuffer()
        self.messageData = ByteBuffer()
        self.compressed = nil
        self.inflater = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.discarding else { return }
        var buffer = Self.unwrapInboundIn(data)
        if self.inbound.readableBytes > 0 {
            self.inbound.writeBuffer(&buffer)
            buffer = self.inbound
            self.inbound = ByteBuffer()
        }
        while buffer.readableBytes > 0 {
            let header: WebSocketFrameHeader
            switch WebSocketFrameHeader.parse(buffer, maximumPayload: self.session.maximumFrameBytes) {
            case .needMore:
                self.inbound = buffer
                return
            case .tooLong(let length):
                self.framingError(
                    "frameTooLarge",
                    detail: "\(self.side.recordName) sent a frame of \(length) bytes, over the \(self.session.maximumFrameBytes)-byte limit; connection closed with 1009",
                    code: .messageTooLarge, reason: "frame too large"
                )
                return
            case .header(let parsed):
                header = parsed
            }
            if header.opcode.isControl && (header.payloadLength > 125 || !header.fin) {
                let what = header.fin ? "a \(header.opcode) frame of \(header.payloadLength) bytes (control frames carry at most 125)" : "a fragmented \(header.opcode) frame"
                self.framingError(
                    "protocolError", detail: "\(self.side.recordName) broke the WebSocket framing: \(what)", code: .protocolError,
                    reason: "protocol error"
                )
                return
            }
            guard let wire = buffer.readSlice(length: header.frameLength) else {
                self.inbound = buffer
                return
            }
            let frame = WireFrame(header: header, wire: wire)
            if self.partner == nil {
                self.early.append(frame)
            } else {
                self.relay(frame)
            }
            if self.discarding { return }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.partner != nil {
            self.session.finish(transportClosedBy: self.side)
            self.partner?.closeChannel()
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ProxyOutageEvent {
            if self.session.proxyClose == nil { self.session.proxyClose = (.unexpectedServerError, "outage: backend unreachable") }
            self.resetConnection()
            return
        }
        if let request = event as? ProxyInjectEvent {
            let target = request.towardsCharger ? (self.side == .charger ? self : self.partner) : (self.side == .backend ? self : self.partner)
            target?.injectCall(action: request.action, payload: request.payload, fault: ["kind": "inject", "rule": "admin"])
            return
        }
        if let request = event as? ProxyDisconnectEvent {
            let code = WebSocketErrorCode(codeNumber: Int(request.code))
            if self.session.proxyClose == nil { self.session.proxyClose = (code, request.reason) }
            self.closeWithFrame(code: code, reason: request.reason)
            return
        }
        guard event is ProxyShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if self.session.proxyClose == nil {
            self.session.proxyClose = (WebSocketErrorCode.goingAway, "proxy shutting down")
        }
        self.closeWithFrame(code: .goingAway, reason: "proxy shutting down")
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if self.closeWhenWritable && context.channel.isWritable {
            context.close(promise: nil)
        }
        self.partner?.partnerWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.closing {
            self.session.recordError(
                "transport", detail: "\(self.side.recordName) connection: \(error)", direction: self.side.inboundDirection
            )
        }
        context.close(promise: nil)
    }

    /// Records a frame this side should not have sent, closes it with `code` and drops its partner.
    private func framingError(_ error: String, detail: String, code: WebSocketErrorCode, reason: String) {
        self.discarding = true
        self.inbound = ByteBuffer()
        self.session.recordError(error, detail: detail, direction: self.side.inboundDirection)
        self.noteProxyClose(code, reason)
        self.closeWithFrame(code: code, reason: reason)
        self.partner?.closeChannel()
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if self.partnerWritable && !self.recorderBlocked {
            context.read()
        } else {
            self.pendingRead = true
        }
    }

    // MARK: Forwarding

    private func relay(_ frame: WireFrame) {
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
    private func relayCompressed(_ frame: WireFrame, _ compression: RelayCompression) -> Bool {
        if frame.isDataFrame {
            guard frame.header.reservedBits & 0x40 != 0 else {
                self.plainMessage = true
                return false
            }
            self.plainMessage = false
            self.compressed = (frame.opcode, frame.header.maskKey, ByteBuffer(), 0)
        } else if frame.opcode == .continuation {
            guard !self.plainMessage, self.compressed != nil else { return false }
        } else {
            return false
        }
        if compression.mode == .passThrough { self.forward(frame.wire) }
        var part = frame.payload
        self.compressed?.data.writeBuffer(&part)
        self.compressed?.fragments += 1
        guard frame.fin, let message = self.compressed else { return true }
        self.compressed = nil
        let direction = self.side.inboundDirection
        if self.inflater == nil { self.inflater = try? MessageInflater(contextTakeover: compression.parameters.contextTakeover(direction)) }
        switch self.inflater?.inflate(message.data, maximumBytes: self.session.maximumMessageBytes) ?? .failure(.corrupt) {
        case .success(let text):
            self.emittingCompressed = true
            defer { self.emittingCompressed = false }
            switch compression.mode {
            case .passThrough:
                self.emit(opcode: message.opcode == .text ? .text : .binary, payload: text, fragments: message.fragments)
            case .decompressed:
                // From here the message is an uncompressed one of a single frame, masked as the sender masked it.
                let wire = WebSocketFrameHeader.frame(
                    opcode: message.opcode, maskKey: message.mask, payload: text, allocator: self.context?.channel.allocator ?? ByteBufferAllocator()
                )
                let header = WebSocketFrameHeader(
                    fin: true, reservedBits: 0, opcode: message.opcode, maskKey: message.mask, length: wire.readableBytes - text.readableBytes,
                    payloadLength: text.readableBytes
                )
                self.relayMessage(WireFrame(header: header, wire: wire))
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

    private func relayMessage(_ frame: WireFrame) {
        let payload = frame.payload
        // In a blackhole outage nothing gets through, in either direction.
        if let outages = self.session.outages, outages.active(for: self.session.chargePoint) == .blackhole {
            if frame.fin && self.messageOpcode == nil && frame.isDataFrame {
                self.observe(frame, payload: payload, fault: ["kind": "outage", "mode": "blackhole"])
            }
            return
        }
        // Answers to the proxy's own CALLs are recorded and kept from the other side.
        if frame.fin, frame.opcode == .text, self.messageOpcode == nil, let pending = self.session.injectedCalls[self.side.inboundDirection.reversed],
            !pending.isEmpty, let envelope = try? OCPPEnvelope.parse(payload).get(), envelope.messageType.isResponse,
            self.session.injectedCalls[self.side.inboundDirection.reversed]?.remove(envelope.messageId) != nil
        {
            self.observe(frame, payload: payload, fault: ["kind": "inject", "answer": true])
            return
        }
        // Faults apply to whole messages in one frame; fragmented messages pass unchanged.
        if let chaos = self.session.chaos, frame.fin, self.messageOpcode == nil, frame.isDataFrame,
            let decision = self.decide(chaos, frame: frame, payload: payload)
        {
            self.apply(decision, frame: frame, payload: payload)
            return
        }
        self.forward(frame.wire)
        self.observe(frame, payload: payload)
    }

    /// Frame bytes carrying `data` instead of the frame's payload, with the frame's flags and masking key.
    private func reframed(_ frame: WireFrame, data: ByteBuffer, opcode: WebSocketWireOpcode? = nil, fin: Bool? = nil) -> ByteBuffer {
        WebSocketFrameHeader.frame(
            fin: fin ?? frame.fin, opcode: opcode ?? frame.opcode, maskKey: frame.header.maskKey, payload: data,
            allocator: self.context?.channel.allocator ?? ByteBufferAllocator()
        )
    }

    /// Writes to the partner, or queues behind messages a delay fault is holding back.
    private func forward(_ bytes: ByteBuffer) {
        guard let partner = self.partner else { return }
        if self.held.isEmpty {
            partner.write(bytes)
        } else {
            self.held.append((NIODeadline.now(), bytes))
        }
    }

    // MARK: Faults

    private func decide(_ chaos: ChaosEngine, frame: WireFrame, payload: ByteBuffer) -> FaultDecision? {
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

    private func apply(_ decision: FaultDecision, frame: WireFrame, payload: ByteBuffer) {
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

    private func scheduleRelease() {
        guard self.releaseTask == nil, let first = self.held.first, let context = self.context else { return }
        self.releaseTask = context.eventLoop.assumeIsolated().scheduleTask(deadline: first.deadline) { [weak self] in
            self?.releaseTask = nil
            self?.releaseHeld()
        }
    }

    private func releaseHeld() {
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

    private func write(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        context.write(Self.wrapOutboundOut(bytes), promise: nil)
        self.needsFlush = true
    }

    /// A whole frame the proxy sends on its own to this side's peer: masked towards the backend, whose
    /// client the proxy is, and unmasked towards the charger.
    private func ownFrame(opcode: WebSocketWireOpcode, payload: ByteBuffer) -> ByteBuffer {
        WebSocketFrameHeader.frame(
            opcode: opcode, maskKey: self.side == .backend ? .random() : nil, payload: payload,
            allocator: self.context?.channel.allocator ?? ByteBufferAllocator()
        )
    }

    func flushIfNeeded() {
        guard self.needsFlush, let context = self.context else { return }
        self.needsFlush = false
        context.flush()
    }

    private func partnerWritabilityChanged(isWritable: Bool) {
        self.partnerWritable = isWritable
        self.resumeReadingIfPossible()
    }

    private func resumeReadingIfPossible() {
        guard self.partnerWritable, !self.recorderBlocked, self.pendingRead, let context = self.context else { return }
        self.pendingRead = false
        context.read()
    }

    /// Closes this side's channel once what was written to it has left.
    func closeChannel() {
        guard !self.closing, let context = self.context else { return }
        self.closing = true
        self.needsFlush = false
        context.flush()
        if context.channel.isWritable {
            context.close(promise: nil)
        } else {
            self.closeWhenWritable = true
        }
    }

    private func noteProxyClose(_ code: WebSocketErrorCode, _ reason: String) {
        if self.session.firstClose == nil && self.session.proxyClose == nil {
            self.session.proxyClose = (code, reason)
        }
    }

    func closeWithFrame(code: WebSocketErrorCode, reason: String) {
        guard !self.closing, let context = self.context else { return }
        self.closing = true
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(self.ownFrame(opcode: .close, payload: data))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    // MARK: Recording

    private func observe(_ frame: WireFrame, payload: ByteBuffer, fault: JSONObject? = nil) {
        switch frame.opcode {
        case .text, .binary:
            self.messageOpcode = frame.opcode == .text ? .text : .binary
            self.messageData = payload
            self.messageFragments = 1
            self.messageTooLarge = payload.readableBytes > self.session.maximumMessageBytes
        case .continuation:
            guard self.messageOpcode != nil else {
                self.session.recordError(
                    "protocolError", detail: "continuation frame without a message to continue",
                    direction: self.side.inboundDirection
                )
                return
            }
            self.messageFragments += 1
            if !self.messageTooLarge {
                var part = payload
                self.messageData.writeBuffer(&part)
                self.messageTooLarge = self.messageData.readableBytes > self.session.maximumMessageBytes
            }
        case .ping:
            self.emit(opcode: .ping, payload: payload, fragments: 1)
            return
        case .pong:
            self.emit(opcode: .pong, payload: payload, fragments: 1)
            return
        case .close:
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
        if self.messageTooLarge {
            self.session.recordError(
                "messageTooLarge",
                detail: "\(self.side.recordName) sent a message over the \(self.session.maximumMessageBytes)-byte limit; closed with 1009",
                direction: self.side.inboundDirection
            )
            self.noteProxyClose(.messageTooLarge, "message too large")
            self.closeWithFrame(code: .messageTooLarge, reason: "message too large")
            self.partner?.closeChannel()
            self.messageData = ByteBuffer()
            return
        }
        let data = self.messageData
        self.messageData = ByteBuffer()
        let fault = self.pendingFault
        self.pendingFault = nil
        self.emit(opcode: opcode, payload: data, fragments: self.messageFragments, fault: fault)
    }

    private func emit(
        opcode: FrameOpcode, payload: ByteBuffer, fragments: Int, direction: Direction? = nil, injected: Bool = false,
        fault: JSONObject? = nil
    ) {
        let direction = direction ?? self.side.inboundDirection
        if opcode == .text || opcode == .binary {
            if direction == .toCSMS { self.session.messagesToCSMS += 1 } else { self.session.messagesToCharger += 1 }
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
            event.seenNanos = NIODeadline.now().uptimeNanoseconds
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
        if !self.session.record(.frame(event)) {
            self.blockUntilRecorderDrains()
        }
    }

    private func noteIdentity(_ payload: ByteBuffer, _ envelope: OCPPEnvelope) {
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

    private func blockUntilRecorderDrains() {
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

@available(*, unavailable)
extension RelayHandler: Sendable {}

extension RelayHandler {
    /// Puts the relay between the socket (or TLS) and the WebSocket codec NIO's upgrader added: the relay
    /// reads and writes frames as bytes itself. The decoder is removed; the encoder cannot be, and stays
    /// idle behind the relay.
    static func install(_ relay: RelayHandler, on channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        let encoder = try sync.handler(type: WebSocketFrameEncoder.self)
        try sync.addHandler(relay, position: .before(encoder))
        sync.removeHandler(try sync.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self), promise: nil)
    }
}

/// One frame as it arrived: its header and all its bytes on the wire, the payload still masked if it was.
struct WireFrame {
    var header: WebSocketFrameHeader
    /// Header and payload, as read.
    var wire: ByteBuffer

    var fin: Bool { self.header.fin }
    var opcode: WebSocketWireOpcode { self.header.opcode }
    var isDataFrame: Bool { self.opcode == .text || self.opcode == .binary }

    /// The payload as it is on the wire (masked, when the sender masked it).
    var payloadOnWire: ByteBuffer {
        self.wire.getSlice(at: self.wire.readerIndex + self.header.length, length: self.header.payloadLength) ?? ByteBuffer()
    }

    /// The payload as the sender meant it: unmasked, in a copy when it was masked.
    var payload: ByteBuffer {
        guard let key = self.header.maskKey else { return self.payloadOnWire }
        return key.applied(to: self.payloadOnWire)
    }
}

