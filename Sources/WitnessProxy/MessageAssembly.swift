import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture

/// The data message one side is sending, reassembled from its frames for the record (the frames themselves are
/// forwarded as they arrive). A value with no I/O (RelayStateTests).
struct MessageAssembly {
    enum Step {
        /// More frames of the message are to come.
        case partial
        /// The message is whole.
        case complete(opcode: FrameOpcode, data: ByteBuffer, fragments: Int)
        /// A continuation frame with no message to continue (RFC 6455 5.4).
        case orphanContinuation
    }

    private(set) var opcode: FrameOpcode?
    private var data = ByteBuffer()
    private var fragments = 0

    /// Whether a message has begun and not ended.
    var inMessage: Bool { self.opcode != nil }

    /// A text or binary frame begins a message (one begun before and never finished is dropped, as its
    /// sender dropped it).
    mutating func begin(_ opcode: FrameOpcode, payload: ByteBuffer, fin: Bool) -> Step {
        guard !fin else {
            if self.opcode != nil { self = MessageAssembly() }
            return .complete(opcode: opcode, data: payload, fragments: 1)
        }
        self.opcode = opcode
        self.data = payload
        self.fragments = 1
        return .partial
    }

    /// A continuation frame adds to the message.
    mutating func add(_ payload: ByteBuffer, fin: Bool) -> Step {
        guard let opcode = self.opcode else { return .orphanContinuation }
        self.fragments += 1
        var part = payload
        self.data.writeBuffer(&part)
        guard fin else { return .partial }
        defer { self = MessageAssembly() }
        return .complete(opcode: opcode, data: self.data, fragments: self.fragments)
    }
}

/// A compressed message (RSV1 on its first frame, RFC 7692) being read: its first frame's opcode and mask, the
/// compressed bytes so far (unmasked) and its frames.
struct CompressedMessage {
    var opcode: WebSocketWireOpcode
    var mask: WebSocketMask?
    var data: ByteBuffer
    var fragments: Int
}

/// Sorts one side's frames on a connection that negotiated permessage-deflate: frames of compressed messages are
/// collected until the message is whole (for inflating); frames of uncompressed messages go the plain way. A
/// value with no I/O (RelayStateTests).
struct DeflateAssembly {
    enum Step {
        /// Not a frame of a compressed message: relayed as any other.
        case plain
        /// A frame of a compressed message that is not whole yet.
        case partial
        case complete(CompressedMessage)
    }

    private var current: CompressedMessage?
    /// Whether the data message being read is uncompressed (its continuation frames go the plain way).
    private var plainMessage = false

    mutating func add(_ frame: WireFrame) -> Step {
        if frame.isDataFrame {
            guard frame.header.reservedBits & 0x40 != 0 else {
                self.plainMessage = true
                self.current = nil
                return .plain
            }
            self.plainMessage = false
            self.current = CompressedMessage(opcode: frame.opcode, mask: frame.header.maskKey, data: ByteBuffer(), fragments: 0)
        } else if frame.opcode == .continuation {
            guard !self.plainMessage, self.current != nil else { return .plain }
        } else {
            return .plain
        }
        var part = frame.payload
        self.current?.data.writeBuffer(&part)
        self.current?.fragments += 1
        guard frame.fin, let message = self.current else { return .partial }
        self.current = nil
        return .complete(message)
    }
}
