import NIOCore
import OCPPWire

/// Cuts what one side sends into WebSocket frames and applies the limits that hold as the bytes arrive, before
/// any of a frame is forwarded: the frame limit, the control-frame rules (RFC 6455 5.5) and the message limit,
/// counted on the message as it arrives (compressed, when it is). A value with no I/O (RelayStateTests).
struct FrameReader {
    /// Why the reader stopped: each fails the connection.
    enum Failure: Equatable {
        /// A frame header announced more than the frame limit.
        case frameTooLarge(announced: UInt64)
        /// A control frame over 125 bytes or fragmented; the sentence names it.
        case brokenControlFrame(String)
        /// A data message past the message limit, with its bytes so far.
        case messageTooLarge(bytesSoFar: Int)
    }

    enum Next {
        /// A whole frame, taken from the buffer.
        case frame(WireFrame)
        /// The buffer ends inside a frame; nothing was taken.
        case needMore
        case failed(Failure)
    }

    let maximumFrameBytes: Int
    let maximumMessageBytes: Int
    /// Bytes a read brought in and the relay has not taken yet: the start of a frame, or whole frames that wait
    /// while reads are paused, so a flood stops at the frame where the pause began.
    private(set) var waiting = ByteBuffer()
    /// Set by a framing error: the rest of what this side sends is not read as frames.
    private(set) var stopped = false
    /// Bytes of the data message being read so far.
    private(set) var messageBytes = 0
    /// Kinds of RFC 6455 breach this side has on record already (`FrameBreach` bits).
    private var recordedBreaches: UInt8 = 0

    init(maximumFrameBytes: Int, maximumMessageBytes: Int) {
        self.maximumFrameBytes = maximumFrameBytes
        self.maximumMessageBytes = maximumMessageBytes
    }

    /// What to read now: the bytes that were waiting, followed by `read`. The waiting bytes are taken.
    mutating func take(_ read: ByteBuffer) -> ByteBuffer {
        guard self.waiting.readableBytes > 0 else { return read }
        var read = read
        var joined = self.waiting
        self.waiting = ByteBuffer()
        joined.writeBuffer(&read)
        return joined
    }

    /// Takes the bytes that were waiting, if any.
    mutating func takeWaiting() -> ByteBuffer? {
        guard self.waiting.readableBytes > 0, !self.stopped else { return nil }
        defer { self.waiting = ByteBuffer() }
        return self.waiting
    }

    /// Keeps `rest` until the relay reads on.
    mutating func keep(_ rest: ByteBuffer) {
        self.waiting = rest
    }

    /// Stops reading frames for good and lets go of what was waiting.
    mutating func stop() {
        self.stopped = true
        self.waiting = ByteBuffer()
    }

    /// Takes the next whole frame from the start of `buffer`, or says why not.
    mutating func next(_ buffer: inout ByteBuffer) -> Next {
        let header: WebSocketFrameHeader
        switch WebSocketFrameHeader.parse(buffer, maximumPayload: self.maximumFrameBytes) {
        case .needMore:
            return .needMore
        case .tooLong(let length):
            return .failed(.frameTooLarge(announced: length))
        case .header(let parsed):
            header = parsed
        }
        if header.opcode.isControl && (header.payloadLength > 125 || !header.fin) {
            let what = header.fin ? "a \(header.opcode) frame of \(header.payloadLength) bytes (control frames carry at most 125)" : "a fragmented \(header.opcode) frame"
            return .failed(.brokenControlFrame(what))
        }
        guard let wire = buffer.readSlice(length: header.frameLength) else { return .needMore }
        return .frame(WireFrame(header: header, wire: wire))
    }

    /// Counts a frame read by `next` towards its message; the failure when the message is now over the limit.
    /// (Separate from `next`, so that a frame's RFC 6455 breach is judged before its size, as it arrived.)
    mutating func admit(_ header: WebSocketFrameHeader) -> Failure? {
        if header.opcode == .text || header.opcode == .binary {
            self.messageBytes = header.payloadLength
        } else if header.opcode == .continuation {
            self.messageBytes += header.payloadLength
        }
        return self.messageBytes > self.maximumMessageBytes ? .messageTooLarge(bytesSoFar: self.messageBytes) : nil
    }

    /// Whether `breach` is the first of its kind on this connection (one finding per cause); it is then on record.
    mutating func isFirst(_ breach: FrameBreach) -> Bool {
        guard self.recordedBreaches & breach.rawValue == 0 else { return false }
        self.recordedBreaches |= breach.rawValue
        return true
    }
}

/// A kind of RFC 6455 breach in a frame header.
enum FrameBreach: UInt8 {
    /// Unmasked from the charger, or masked from the backend (5.1).
    case masking = 1
    /// RSV bits no negotiated extension defines (5.2).
    case reservedBits = 2
}
