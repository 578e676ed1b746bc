import NIOCore
import OCPPWire

/// One frame as it arrived: its header and all its bytes on the wire, the payload still masked if it was.
struct WireFrame {
    var header: WebSocketFrameHeader
    /// Header and payload, as read.
    var wire: ByteBuffer
    /// The frame is a message the relay inflated: it came compressed on the wire.
    var inflated = false

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
