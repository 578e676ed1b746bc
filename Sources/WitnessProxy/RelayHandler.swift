import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture


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
    var context: ChannelHandlerContext?
    /// This side's bytes cut into frames, with the limits that hold as they arrive.
    var reader: FrameReader
    /// Whether this side's socket is read.
    var gate = ReadGate()
    /// Frames faults hold back on their way to the partner.
    var holding = HoldQueue()
    /// The data message being read, reassembled for the record.
    var message = MessageAssembly()
    /// Frames of compressed messages, collected for inflating.
    var deflate = DeflateAssembly()
    /// The inflater of this side's compressed messages, made with the first.
    var inflater: MessageInflater?
    /// Frames that arrived before the pair was linked (the backend may speak first).
    var early: [WireFrame] = []
    var needsFlush = false
    var closing = SideClosing.open
    var releaseTask: Scheduled<Void>?
    /// This side's own closing deadline, for when the proxy closes it (its pair may already be finished).
    var closeDeadline: Scheduled<Void>?

    init(side: RelaySide, session: RelaySession) {
        self.side = side
        self.session = session
        self.reader = FrameReader(maximumFrameBytes: session.maximumFrameBytes, maximumMessageBytes: session.maximumMessageBytes)
    }

    /// Links the two handlers of a pair and releases anything that arrived early.
    static func link(charger: RelayHandler, backend: RelayHandler) {
        charger.partner = backend
        backend.partner = charger
        let early = backend.early
        backend.early = []
        // Their headers are judged only now: until the pair is linked, permessage-deflate may not be settled.
        for frame in early where !backend.reader.stopped {
            if backend.failsOnViolation(frame.header) { break }
            backend.relay(frame)
        }
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
        let held = self.holding.removeAll()
        if held > 0 { _ = self.session.limits.heldBytesTotal.add(-held) }
        self.releaseTask?.cancel()
        self.releaseTask = nil
        self.closeDeadline?.cancel()
        self.closeDeadline = nil
        self.reader.stop()
        self.message = MessageAssembly()
        self.deflate = DeflateAssembly()
        self.inflater = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.reader.stopped else { return }
        self.process(self.reader.take(Self.unwrapInboundIn(data)))
    }

    /// Relays the whole frames at the start of `bytes` until a pause (`gate`); the rest waits in the reader, so
    /// a flood stops at the frame where the pause began, not a whole read later.
    func process(_ bytes: ByteBuffer, ignoringPause: Bool = false) {
        var buffer = bytes
        while buffer.readableBytes > 0 {
            if self.gate.paused && !ignoringPause {
                self.reader.keep(buffer)
                return
            }
            switch self.reader.next(&buffer) {
            case .needMore:
                self.reader.keep(buffer)
                return
            case .failed(let failure):
                self.failReading(failure)
                return
            case .frame(let frame):
                if self.partner != nil, self.failsOnViolation(frame.header) { return }
                // The message limit holds as the message arrives, compressed or not, before any of it is forwarded.
                if let failure = self.reader.admit(frame.header) {
                    self.failReading(failure)
                    return
                }
                if self.partner == nil {
                    self.early.append(frame)
                } else {
                    self.relay(frame)
                }
            }
            if self.reader.stopped { return }
        }
    }

    /// Fails the connection for what the reader found: both peers get a close frame with the code.
    func failReading(_ failure: FrameReader.Failure) {
        switch failure {
        case .frameTooLarge(let length):
            self.framingError(
                "frameTooLarge",
                detail: "\(self.side.recordName) sent a frame of \(length) bytes, over the \(self.session.maximumFrameBytes)-byte limit; connection closed with 1009",
                code: .messageTooLarge, reason: "frame too large"
            )
        case .brokenControlFrame(let what):
            self.framingError(
                "protocolError", detail: "\(self.side.recordName) broke the WebSocket framing: \(what)", code: .protocolError,
                reason: "protocol error"
            )
        case .messageTooLarge(let bytesSoFar):
            self.framingError(
                "messageTooLarge",
                detail: "\(self.side.recordName) sent a message over the \(self.session.maximumMessageBytes)-byte limit (\(bytesSoFar) bytes so far); closed with 1009",
                code: .messageTooLarge, reason: "message too large"
            )
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // What the peer sent before it went still goes on, paused or not.
        if self.partner != nil, let rest = self.reader.takeWaiting() {
            self.process(rest, ignoringPause: true)
            self.partner?.flushIfNeeded()
        }
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
        if self.closing == .whenWritable && context.channel.isWritable {
            context.close(promise: nil)
        }
        self.partner?.partnerWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.closing == .open {
            self.session.recordError(
                "transport", detail: "\(self.side.recordName) connection: \(error)", direction: self.side.inboundDirection
            )
        }
        context.close(promise: nil)
    }

    /// Records a frame this side should not have sent and fails the connection: both peers get a close frame
    /// with `code`, so the partner learns why instead of seeing a bare TCP close.
    func framingError(_ error: String, detail: String, code: WebSocketErrorCode, reason: String, violation: WebSocketViolation? = nil) {
        self.reader.stop()
        self.session.recordError(error, detail: detail, direction: self.side.inboundDirection, violation: violation)
        self.noteProxyClose(code, reason)
        self.closeWithFrame(code: code, reason: reason)
        self.partner?.closeWithFrame(code: code, reason: reason)
    }

    /// Records a frame header's breach of RFC 6455; true when `--strict-websocket` failed the connection for it.
    /// Without it a breach is recorded once per connection and kind (one finding per cause), and a peer that
    /// breaks it on every frame costs one bit test per frame after the first.
    func failsOnViolation(_ header: WebSocketFrameHeader) -> Bool {
        guard let breach = self.breach(in: header) else { return false }
        guard self.session.limits.strictWebSocket else {
            guard self.reader.isFirst(breach) else { return false }
            let violation = self.violation(breach, in: header)
            self.session.recordError(
                "protocolError",
                detail: violation.detail + "; forwarded as it came (\(violation.clause)); later frames like it on this connection are not recorded again",
                direction: self.side.inboundDirection, violation: violation
            )
            return false
        }
        let violation = self.violation(breach, in: header)
        self.framingError(
            "protocolError", detail: violation.detail + " (\(violation.clause)); closed with 1002 (--strict-websocket)", code: .protocolError,
            reason: "protocol error", violation: violation
        )
        return true
    }

    /// What in a frame's header breaks RFC 6455 for this side: masking (5.1) or reserved bits without an
    /// extension that defines them (5.2; permessage-deflate defines RSV1 on a message's first frame, RFC 7692 6).
    func breach(in header: WebSocketFrameHeader) -> FrameBreach? {
        if (self.side == .charger) == (header.maskKey == nil) { return .masking }
        let allowed: UInt8 = self.session.compression != nil && (header.opcode == .text || header.opcode == .binary) ? 0x40 : 0
        return header.reservedBits & ~allowed != 0 ? .reservedBits : nil
    }

    /// The finding for `breach`, with the rule, the clause and a sentence naming the frame.
    func violation(_ breach: FrameBreach, in header: WebSocketFrameHeader) -> WebSocketViolation {
        switch breach {
        case .masking where self.side == .charger:
            return WebSocketViolation(
                rule: "websocket.unmaskedFrame", clause: "RFC 6455 5.1",
                detail: "charger sent an unmasked \(header.opcode) frame; a client must mask every frame it sends"
            )
        case .masking:
            return WebSocketViolation(
                rule: "websocket.maskedFrame", clause: "RFC 6455 5.1",
                detail: "csms sent a masked \(header.opcode) frame; a server must not mask the frames it sends"
            )
        case .reservedBits:
            let allowed: UInt8 = self.session.compression != nil && (header.opcode == .text || header.opcode == .binary) ? 0x40 : 0
            let unexpected = header.reservedBits & ~allowed
            let bits = [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")].filter { UInt8($0.0) & unexpected != 0 }.map(\.1).joined(separator: ", ")
            let why = self.session.compression == nil ? "no extension was negotiated" : "permessage-deflate sets only RSV1, and only on a message's first frame"
            return WebSocketViolation(
                rule: "websocket.reservedBits", clause: self.session.compression == nil ? "RFC 6455 5.2" : "RFC 6455 5.2, RFC 7692 6",
                detail: "\(self.side.recordName) sent a \(header.opcode) frame with \(bits) set, though \(why)"
            )
        }
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if self.gate.readRequested() {
            context.read()
        }
    }

    // MARK: Writing and closing

    func write(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        context.write(Self.wrapOutboundOut(bytes), promise: nil)
        self.needsFlush = true
    }

    /// A whole frame the proxy sends on its own to this side's peer: masked towards the backend, whose
    /// client the proxy is, and unmasked towards the charger.
    func ownFrame(opcode: WebSocketWireOpcode, payload: ByteBuffer) -> ByteBuffer {
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

    func partnerWritabilityChanged(isWritable: Bool) {
        self.gate.partnerWritability(isWritable)
        self.resumeReadingIfPossible()
    }

    func resumeReadingIfPossible() {
        guard !self.gate.paused, self.context != nil else { return }
        // First what an earlier read brought in, which may pause this side again.
        if let waiting = self.reader.takeWaiting() {
            self.process(waiting)
            self.partner?.flushIfNeeded()
        }
        guard let context = self.context, self.gate.takeWaitingRead() else { return }
        context.read()
    }

    /// Closes this side's channel once what was written to it has left (within the closing deadline).
    func closeChannel() {
        guard self.closing == .open, let context = self.context else { return }
        self.closing = .closing
        self.carryOut(self.session.lifecycle.socketClosing(self.side))
        self.needsFlush = false
        context.flush()
        if context.channel.isWritable {
            context.close(promise: nil)
        } else {
            self.closing = .whenWritable
            self.closeWithin("read what was still being sent to it")
        }
    }

    func noteProxyClose(_ code: WebSocketErrorCode, _ reason: String) {
        if self.session.firstClose == nil && self.session.proxyClose == nil {
            self.session.proxyClose = (code, reason)
        }
    }

    func closeWithFrame(code: WebSocketErrorCode, reason: String) {
        guard self.closing == .open, let context = self.context else { return }
        self.closing = .closing
        self.carryOut(self.session.lifecycle.proxyClose(to: self.side))
        self.closeWithin("read the proxy's close frame")
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        let channel = context.channel
        // The write usually completes at once; closing on the next tick lets a partner's close frame, written
        // right after this one, go out before this side's close drops the partner.
        context.writeAndFlush(Self.wrapOutboundOut(self.ownFrame(opcode: .close, payload: data))).whenComplete { _ in
            channel.eventLoop.execute { channel.close(promise: nil) }
        }
    }

}

@available(*, unavailable)
extension RelayHandler: Sendable {}

/// How far one side's own close has gone.
enum SideClosing {
    case open
    /// The proxy is closing this side (with a close frame, a reset, or after its partner went).
    case closing
    /// The socket closes once what was written to it has left.
    case whenWritable
}

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
