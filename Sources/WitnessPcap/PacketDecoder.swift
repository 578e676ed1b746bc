/// A TCP segment taken out of a captured packet.
package struct TCPSegment: Sendable {
    package var source: Endpoint
    package var destination: Endpoint
    package var sequence: UInt32
    package var acknowledgement: UInt32
    package var flags: TCPFlags
    package var payload: ArraySlice<UInt8>
}

/// Why a packet was not turned into a TCP segment.
public enum PacketSkip: String, Error, Sendable, Hashable, CaseIterable {
    /// Not IPv4 or IPv6 (ARP, LLDP...).
    case notIP
    /// IP, but not TCP.
    case notTCP
    /// An IPv4 fragment; reassembling IP fragments is not supported.
    case ipFragment
    /// The packet is shorter than its headers say (snapshot length, or corrupt).
    case truncated
    /// A link-layer type the decoder does not know.
    case unsupportedLinkType
}

/// Strips link-layer and IP headers down to TCP, for the link types tcpdump and Wireshark write on Linux.
package enum PacketDecoder {
    // libpcap DLT values, as pcap_datalink() reports them.
    static let dltNull: Int32 = 0
    static let dltEthernet: Int32 = 1
    static let dltRaw: Int32 = 12
    static let dltRawOpenBSD: Int32 = 14
    static let dltLoop: Int32 = 108
    static let dltLinuxSLL: Int32 = 113
    static let dltRawLinktype: Int32 = 101
    static let dltIPv4: Int32 = 228
    static let dltIPv6: Int32 = 229
    static let dltLinuxSLL2: Int32 = 276

    package static func isSupported(linkType: Int32) -> Bool {
        [dltNull, dltEthernet, dltRaw, dltRawOpenBSD, dltLoop, dltLinuxSLL, dltRawLinktype, dltIPv4, dltIPv6, dltLinuxSLL2]
            .contains(linkType)
    }

    package static func decode(_ bytes: [UInt8], linkType: Int32) -> Result<TCPSegment, PacketSkip> {
        let ipStart: Int
        switch linkType {
        case dltEthernet:
            guard bytes.count >= 14 else { return .failure(.truncated) }
            var offset = 12
            var etherType = be16(bytes, offset)
            while etherType == 0x8100 || etherType == 0x88A8 {  // VLAN tags
                offset += 4
                guard bytes.count >= offset + 2 else { return .failure(.truncated) }
                etherType = be16(bytes, offset)
            }
            guard etherType == 0x0800 || etherType == 0x86DD else { return .failure(.notIP) }
            ipStart = offset + 2
        case dltLinuxSLL:
            guard bytes.count >= 16 else { return .failure(.truncated) }
            let proto = be16(bytes, 14)
            guard proto == 0x0800 || proto == 0x86DD else { return .failure(.notIP) }
            ipStart = 16
        case dltLinuxSLL2:
            guard bytes.count >= 20 else { return .failure(.truncated) }
            let proto = be16(bytes, 0)
            guard proto == 0x0800 || proto == 0x86DD else { return .failure(.notIP) }
            ipStart = 20
        case dltNull, dltLoop:
            ipStart = 4
        case dltRaw, dltRawOpenBSD, dltRawLinktype, dltIPv4, dltIPv6:
            ipStart = 0
        default:
            return .failure(.unsupportedLinkType)
        }
        guard bytes.count > ipStart else { return .failure(.truncated) }
        switch bytes[ipStart] >> 4 {
        case 4: return ipv4(bytes, at: ipStart)
        case 6: return ipv6(bytes, at: ipStart)
        default: return .failure(.notIP)
        }
    }

    private static func ipv4(_ bytes: [UInt8], at start: Int) -> Result<TCPSegment, PacketSkip> {
        guard bytes.count >= start + 20 else { return .failure(.truncated) }
        let headerLength = Int(bytes[start] & 0x0F) * 4
        let totalLength = Int(be16(bytes, start + 2))
        guard bytes[start + 9] == 6 else { return .failure(.notTCP) }
        let fragment = be16(bytes, start + 6)
        guard fragment & 0x3FFF == 0 else { return .failure(.ipFragment) }  // MF set or an offset
        guard headerLength >= 20, totalLength >= headerLength, bytes.count >= start + totalLength else {
            return .failure(.truncated)
        }
        let source = Array(bytes[(start + 12)..<(start + 16)])
        let destination = Array(bytes[(start + 16)..<(start + 20)])
        // Ethernet pads short frames: the IP total length, not the packet length, ends the datagram.
        return tcp(bytes, at: start + headerLength, end: start + totalLength, source: source, destination: destination)
    }

    private static func ipv6(_ bytes: [UInt8], at start: Int) -> Result<TCPSegment, PacketSkip> {
        guard bytes.count >= start + 40 else { return .failure(.truncated) }
        let payloadLength = Int(be16(bytes, start + 4))
        guard bytes.count >= start + 40 + payloadLength else { return .failure(.truncated) }
        var next = bytes[start + 6]
        var offset = start + 40
        // Hop-by-hop, routing and destination options headers may precede TCP.
        while next == 0 || next == 43 || next == 60 {
            guard bytes.count >= offset + 2 else { return .failure(.truncated) }
            next = bytes[offset]
            offset += (Int(bytes[offset + 1]) + 1) * 8
        }
        if next == 44 { return .failure(.ipFragment) }
        guard next == 6 else { return .failure(.notTCP) }
        let source = Array(bytes[(start + 8)..<(start + 24)])
        let destination = Array(bytes[(start + 24)..<(start + 40)])
        return tcp(bytes, at: offset, end: start + 40 + payloadLength, source: source, destination: destination)
    }

    private static func tcp(_ bytes: [UInt8], at start: Int, end: Int, source: [UInt8], destination: [UInt8]) -> Result<TCPSegment, PacketSkip> {
        guard end >= start + 20 else { return .failure(.truncated) }
        let dataOffset = Int(bytes[start + 12] >> 4) * 4
        guard dataOffset >= 20, start + dataOffset <= end else { return .failure(.truncated) }
        return .success(
            TCPSegment(
                source: Endpoint(address: source, port: be16(bytes, start)),
                destination: Endpoint(address: destination, port: be16(bytes, start + 2)),
                sequence: be32(bytes, start + 4), acknowledgement: be32(bytes, start + 8),
                flags: TCPFlags(rawValue: bytes[start + 13] & 0x1F), payload: bytes[(start + dataOffset)..<end]
            )
        )
    }

    static func be16(_ bytes: [UInt8], _ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
    static func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
}
