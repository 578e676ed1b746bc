import NIOCore
import OCPPWire
import WitnessCapture

/// An IPv4 address and TCP port.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var address: [UInt8]
    public var port: UInt16

    public init(address: [UInt8], port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `a.b.c.d:port` (the form capture records use for IPv4 peers).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]),
            let address = Self.parseIPv4(String(text[..<colon]))
        else { return nil }
        self.init(address: address, port: port)
    }

    static func parseIPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    public var description: String {
        (self.address.count == 4 ? self.address.map(String.init).joined(separator: ".") : "[" + Self.ipv6(self.address) + "]")
            + ":\(self.port)"
    }

    private static func ipv6(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// TCP header flags.
package struct TCPFlags: OptionSet, Sendable, Hashable {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }
    package static let fin = TCPFlags(rawValue: 0x01)
    package static let syn = TCPFlags(rawValue: 0x02)
    package static let rst = TCPFlags(rawValue: 0x04)
    package static let psh = TCPFlags(rawValue: 0x08)
    package static let ack = TCPFlags(rawValue: 0x10)
}

/// Builds IPv4/TCP packets with correct lengths and checksums.
enum PacketBuilder {
    static func ipv4TCP(
        from source: Endpoint, to destination: Endpoint, sequence: UInt32, acknowledgement: UInt32, flags: TCPFlags,
        identification: UInt16, payload: ArraySlice<UInt8>
    ) -> [UInt8] {
        let tcpLength = 20 + payload.count
        let totalLength = 20 + tcpLength
        var packet: [UInt8] = []
        packet.reserveCapacity(totalLength)
        // IPv4 header
        packet += [0x45, 0]
        packet += be16(UInt16(totalLength))
        packet += be16(identification)
        packet += [0x40, 0]  // don't fragment
        packet += [64, 6]  // TTL, protocol TCP
        packet += [0, 0]  // checksum, below
        packet += source.address
        packet += destination.address
        let ipChecksum = checksum(packet[0..<20], initial: 0)
        packet[10] = UInt8(ipChecksum >> 8)
        packet[11] = UInt8(ipChecksum & 0xFF)
        // TCP header
        packet += be16(source.port)
        packet += be16(destination.port)
        packet += be32(sequence)
        packet += be32(flags.contains(.ack) ? acknowledgement : 0)
        packet += [5 << 4, flags.rawValue]
        packet += be16(65535)  // window
        packet += [0, 0]  // checksum, below
        packet += [0, 0]  // urgent pointer
        packet += payload
        var pseudo: UInt32 = 0
        for pair in stride(from: 0, to: 4, by: 2) {
            pseudo += UInt32(source.address[pair]) << 8 | UInt32(source.address[pair + 1])
            pseudo += UInt32(destination.address[pair]) << 8 | UInt32(destination.address[pair + 1])
        }
        pseudo += 6 + UInt32(tcpLength)
        let tcpChecksum = checksum(packet[20...], initial: pseudo)
        packet[36] = UInt8(tcpChecksum >> 8)
        packet[37] = UInt8(tcpChecksum & 0xFF)
        return packet
    }

    /// The Internet checksum (RFC 1071) of `bytes`, starting from a partial sum.
    static func checksum(_ bytes: ArraySlice<UInt8>, initial: UInt32) -> UInt16 {
        var sum = initial
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.endIndex { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}

/// WebSocket (RFC 6455) pieces the exporter writes on the wire.
enum WebSocketWire {
    static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Opcode numbers by capture name.
    static func opcode(_ name: String) -> UInt8? {
        switch name {
        case "continuation": 0x0
        case "text": 0x1
        case "binary": 0x2
        case "close": 0x8
        case "ping": 0x9
        case "pong": 0xA
        default: nil
        }
    }

    /// One final frame carrying `payload`, masked with `maskKey` when given (client to server).
    static func frame(opcode: UInt8, payload: [UInt8], maskKey: [UInt8]?) -> [UInt8] {
        let mask = maskKey.flatMap { $0.count == 4 ? WebSocketMask($0[0], $0[1], $0[2], $0[3]) : nil }
        let frame = WebSocketFrameHeader.frame(opcode: WebSocketWireOpcode(rawValue: opcode), maskKey: mask, payload: ByteBuffer(bytes: payload))
        return Array(buffer: frame)
    }

    /// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
    static func accept(key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + acceptGUID).utf8)))
    }
}
