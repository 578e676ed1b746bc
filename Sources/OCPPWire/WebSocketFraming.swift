import NIOCore

/// The header of one WebSocket frame (RFC 6455 section 5.2), read from the bytes as they arrived.
///
/// The proxy forwards frames as the bytes it received, so it only needs to know where a frame ends, what
/// kind it is and, when something reads the payload, the masking key; the pcap decoder reads captures
/// with the same rules.
package struct WebSocketFrameHeader: Sendable, Hashable {
    package var fin: Bool
    /// RSV1–RSV3 as they sit in the first byte (`0x70` mask); non-zero only with a negotiated extension.
    package var reservedBits: UInt8
    package var opcode: WebSocketWireOpcode
    package var maskKey: WebSocketMask?
    /// Bytes of the header itself: 2 to 14.
    package var length: Int
    package var payloadLength: Int

    package var frameLength: Int { self.length + self.payloadLength }

    package init(fin: Bool, reservedBits: UInt8, opcode: WebSocketWireOpcode, maskKey: WebSocketMask?, length: Int, payloadLength: Int) {
        self.fin = fin
        self.reservedBits = reservedBits
        self.opcode = opcode
        self.maskKey = maskKey
        self.length = length
        self.payloadLength = payloadLength
    }

    /// The outcome of looking at the start of a byte stream.
    package enum Parse: Sendable, Hashable {
        /// The header is not complete yet.
        case needMore
        case header(WebSocketFrameHeader)
        /// The header announces a payload over the limit; the announced length is given.
        case tooLong(UInt64)
    }

    /// Reads the header at the start of `bytes`; the payload need not have arrived.
    package static func parse(_ bytes: UnsafeRawBufferPointer, maximumPayload: Int) -> Parse {
        guard bytes.count >= 2 else { return .needMore }
        let b0 = bytes[0]
        let b1 = bytes[1]
        var length = 2
        var payload = UInt64(b1 & 0x7F)
        if payload == 126 {
            guard bytes.count >= 4 else { return .needMore }
            payload = UInt64(bytes[2]) << 8 | UInt64(bytes[3])
            length = 4
        } else if payload == 127 {
            guard bytes.count >= 10 else { return .needMore }
            payload = 0
            for index in 2..<10 { payload = payload << 8 | UInt64(bytes[index]) }
            length = 10
        }
        guard payload <= UInt64(maximumPayload) else { return .tooLong(payload) }
        var maskKey: WebSocketMask?
        if b1 & 0x80 != 0 {
            guard bytes.count >= length + 4 else { return .needMore }
            maskKey = WebSocketMask(bytes[length], bytes[length + 1], bytes[length + 2], bytes[length + 3])
            length += 4
        }
        return .header(
            WebSocketFrameHeader(
                fin: b0 & 0x80 != 0, reservedBits: b0 & 0x70, opcode: WebSocketWireOpcode(rawValue: b0 & 0x0F), maskKey: maskKey,
                length: length, payloadLength: Int(payload)
            )
        )
    }

    /// Reads the header at the reader index of `buffer`, without moving it.
    package static func parse(_ buffer: ByteBuffer, maximumPayload: Int) -> Parse {
        buffer.withUnsafeReadableBytes { Self.parse($0, maximumPayload: maximumPayload) }
    }

    /// Appends a whole frame carrying `payload` (given unmasked) to `out`, masked when `maskKey` is set.
    package static func write(
        fin: Bool = true, opcode: WebSocketWireOpcode, maskKey: WebSocketMask?, payload: ByteBuffer, into out: inout ByteBuffer
    ) {
        let count = payload.readableBytes
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        out.writeInteger((fin ? 0x80 : 0) | opcode.rawValue)
        switch count {
        case ..<126:
            out.writeInteger(maskBit | UInt8(count))
        case ..<65536:
            out.writeInteger(maskBit | 126)
            out.writeInteger(UInt16(count))
        default:
            out.writeInteger(maskBit | 127)
            out.writeInteger(UInt64(count))
        }
        guard let maskKey else {
            out.writeImmutableBuffer(payload)
            return
        }
        out.writeInteger(UInt32(maskKey.b0) << 24 | UInt32(maskKey.b1) << 16 | UInt32(maskKey.b2) << 8 | UInt32(maskKey.b3))
        let start = out.writerIndex
        out.writeImmutableBuffer(payload)
        maskKey.apply(to: &out, at: start, length: count)
    }

    /// A whole frame carrying `payload` (given unmasked), masked when `maskKey` is set.
    package static func frame(
        fin: Bool = true, opcode: WebSocketWireOpcode, maskKey: WebSocketMask?, payload: ByteBuffer,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var out = allocator.buffer(capacity: payload.readableBytes + 14)
        Self.write(fin: fin, opcode: opcode, maskKey: maskKey, payload: payload, into: &out)
        return out
    }
}

/// A WebSocket opcode as the four bits on the wire; reserved values stay representable so they can be
/// forwarded and reported.
package struct WebSocketWireOpcode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    package var rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    package static let continuation = Self(rawValue: 0x0)
    package static let text = Self(rawValue: 0x1)
    package static let binary = Self(rawValue: 0x2)
    package static let close = Self(rawValue: 0x8)
    package static let ping = Self(rawValue: 0x9)
    package static let pong = Self(rawValue: 0xA)

    /// Close, ping, pong and the reserved 0xB–0xF: at most 125 bytes and never fragmented.
    package var isControl: Bool { self.rawValue & 0x08 != 0 }

    package var description: String {
        switch self {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        default: "reserved opcode 0x\(String(self.rawValue, radix: 16))"
        }
    }
}

/// The four-byte masking key of a client-to-server frame.
package struct WebSocketMask: Sendable, Hashable {
    package var b0: UInt8, b1: UInt8, b2: UInt8, b3: UInt8

    package init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        (self.b0, self.b1, self.b2, self.b3) = (b0, b1, b2, b3)
    }

    package static func random() -> Self {
        var generator = SystemRandomNumberGenerator()
        let value = UInt32.random(in: .min ... .max, using: &generator)
        return Self(UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value))
    }

    /// XORs `length` bytes of `buffer` from index `start` with the key; masking and unmasking are the same.
    package func apply(to buffer: inout ByteBuffer, at start: Int, length: Int) {
        let offset = start - buffer.readerIndex
        buffer.withUnsafeMutableReadableBytes { bytes in
            self.apply(to: UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
        }
    }

    /// XORs every byte of `region` with the key, the key's first byte on the region's first.
    package func apply(to region: UnsafeMutableRawBufferPointer) {
        let key = (self.b0, self.b1, self.b2, self.b3)
        // The key repeated over eight bytes, in memory order, for a word at a time.
        let word = UInt64(
            littleEndian: UInt64(key.0) | UInt64(key.1) << 8 | UInt64(key.2) << 16 | UInt64(key.3) << 24
                | UInt64(key.0) << 32 | UInt64(key.1) << 40 | UInt64(key.2) << 48 | UInt64(key.3) << 56
        )
        let length = region.count
        var index = 0
        while index + 8 <= length {
            let value = region.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            region.storeBytes(of: value ^ word, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < length {
            let byte: UInt8
            switch index & 3 {
            case 0: byte = key.0
            case 1: byte = key.1
            case 2: byte = key.2
            default: byte = key.3
            }
            region[index] ^= byte
            index += 1
        }
    }

    /// A copy of `payload` with the key applied: the unmasked bytes of a masked payload.
    package func applied(to payload: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var copy = allocator.buffer(capacity: payload.readableBytes)
        copy.writeImmutableBuffer(payload)
        self.apply(to: &copy, at: copy.readerIndex, length: copy.readableBytes)
        return copy
    }
}
