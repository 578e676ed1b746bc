import NIOCore
import OCPPWire
import Testing

@Suite("WebSocket framing on bytes")
struct WebSocketFramingTests {
    /// RFC 6455 section 5.7's examples, byte for byte.
    @Test("the RFC's single-frame examples parse to their header, masked and unmasked")
    func rfcExamples() throws {
        let unmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        let masked: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        guard case .header(let plain) = WebSocketFrameHeader.parse(ByteBuffer(bytes: unmasked), maximumPayload: 1000) else {
            Issue.record("unmasked example did not parse")
            return
        }
        #expect(plain == WebSocketFrameHeader(fin: true, reservedBits: 0, opcode: .text, maskKey: nil, length: 2, payloadLength: 5))
        guard case .header(let header) = WebSocketFrameHeader.parse(ByteBuffer(bytes: masked), maximumPayload: 1000) else {
            Issue.record("masked example did not parse")
            return
        }
        #expect(header.maskKey == WebSocketMask(0x37, 0xfa, 0x21, 0x3d))
        #expect(header.length == 6)
        var payload = ByteBuffer(bytes: masked[6...])
        header.maskKey?.apply(to: &payload, at: payload.readerIndex, length: payload.readableBytes)
        #expect(String(buffer: payload) == "Hello")
        // Writing the same frame with the same key gives the same bytes.
        let written = WebSocketFrameHeader.frame(opcode: .text, maskKey: header.maskKey, payload: ByteBuffer(string: "Hello"))
        #expect(Array(buffer: written) == masked)
    }

    @Test("7-, 16- and 64-bit lengths round-trip; a header cut short at any byte asks for more", arguments: [0, 125, 126, 65535, 65536, 70000])
    func lengths(count: Int) throws {
        let payload = ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        for mask in [nil, WebSocketMask(1, 2, 3, 4)] {
            let frame = WebSocketFrameHeader.frame(fin: false, opcode: .binary, maskKey: mask, payload: payload)
            guard case .header(let header) = WebSocketFrameHeader.parse(frame, maximumPayload: 1 << 20) else {
                Issue.record("frame of \(count) bytes did not parse")
                return
            }
            #expect(!header.fin)
            #expect(header.opcode == .binary)
            #expect(header.payloadLength == count)
            #expect(header.frameLength == frame.readableBytes)
            #expect(header.maskKey == mask)
            for cut in 0..<header.length {
                #expect(WebSocketFrameHeader.parse(frame.getSlice(at: 0, length: cut) ?? ByteBuffer(), maximumPayload: 1 << 20) == .needMore)
            }
            var body = frame.getSlice(at: header.length, length: count) ?? ByteBuffer()
            mask?.apply(to: &body, at: body.readerIndex, length: body.readableBytes)
            #expect(body == payload)
        }
    }

    @Test("a header announcing more than the limit is refused before its payload arrives")
    func tooLong() {
        let header: [UInt8] = [0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0]
        #expect(WebSocketFrameHeader.parse(ByteBuffer(bytes: header), maximumPayload: 1 << 20) == .tooLong(1 << 32))
    }

    @Test("masking a word at a time matches the byte-by-byte rule at every length and offset")
    func maskMatchesDefinition() {
        let key = WebSocketMask(0xA1, 0x02, 0xF3, 0x44)
        let keyBytes: [UInt8] = [0xA1, 0x02, 0xF3, 0x44]
        for length in 0..<40 {
            for offset in 0..<3 {
                let bytes = (0..<(offset + length)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
                var buffer = ByteBuffer(bytes: bytes)
                key.apply(to: &buffer, at: offset, length: length)
                var expected = bytes
                for index in 0..<length { expected[offset + index] ^= keyBytes[index & 3] }
                #expect(Array(buffer: buffer) == expected, "length \(length) offset \(offset)")
            }
        }
    }

    @Test("opcodes name themselves; reserved ones keep their number and count as control from 0x8 up")
    func opcodes() {
        #expect(WebSocketWireOpcode.close.isControl)
        #expect(!WebSocketWireOpcode.binary.isControl)
        #expect(WebSocketWireOpcode(rawValue: 0x3).description == "reserved opcode 0x3")
        #expect(WebSocketWireOpcode(rawValue: 0xB).isControl)
    }
}
