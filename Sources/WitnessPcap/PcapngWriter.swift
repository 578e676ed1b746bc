#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a pcapng file (draft-ietf-opsawg-pcapng): one section, one interface, Enhanced Packet blocks.
///
/// Blocks are little-endian; the byte-order magic in the Section Header tells readers so.
package final class PcapngWriter {
    /// Which way a packet went, for the Enhanced Packet block's `epb_flags` direction bits.
    package enum PacketDirection: UInt32, Sendable {
        case unknown = 0
        case inbound = 1
        case outbound = 2
    }

    package struct WriteError: Error, CustomStringConvertible {
        package var path: String
        package var reason: String
        package var description: String { "cannot write \(self.path): \(self.reason)" }
    }

    /// LINKTYPE_RAW: packets start with the IPv4 or IPv6 header.
    package static let linkTypeRawIP: UInt16 = 101

    package let path: String
    private let descriptor: CInt
    private var pending: [UInt8] = []
    package private(set) var packetsWritten = 0

    /// Creates (or truncates) `path` and writes the Section Header and Interface Description blocks.
    package init(path: String, application: String, interfaceName: String, linkType: UInt16 = PcapngWriter.linkTypeRawIP) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, reason: String(cString: strerror(errno))) }
        self.descriptor = fd

        var header = BlockBuilder(type: 0x0A0D_0D0A)
        header.append32(0x1A2B_3C4D)  // byte-order magic
        header.append16(1)  // major version
        header.append16(0)  // minor version
        header.append64(UInt64.max)  // section length not specified
        header.option(code: 4, Array(application.utf8))  // shb_userappl
        self.pending += header.finish()

        var interface = BlockBuilder(type: 1)
        interface.append16(linkType)
        interface.append16(0)
        interface.append32(262_144)  // snaplen
        interface.option(code: 2, Array(interfaceName.utf8))  // if_name
        interface.option(code: 9, [6])  // if_tsresol: microseconds
        self.pending += interface.finish()
    }

    deinit {
        #if canImport(Glibc)
        if self.descriptor >= 0 { Glibc.close(self.descriptor) }
        #elseif canImport(Darwin)
        if self.descriptor >= 0 { Darwin.close(self.descriptor) }
        #endif
    }

    /// Appends one packet with its timestamp (microseconds since the epoch), direction and comments.
    package func writePacket(_ packet: [UInt8], microseconds: Int64, direction: PacketDirection, comments: [String] = []) throws {
        var block = BlockBuilder(type: 6)
        let stamp = UInt64(bitPattern: microseconds)
        block.append32(0)  // interface id
        block.append32(UInt32(truncatingIfNeeded: stamp >> 32))
        block.append32(UInt32(truncatingIfNeeded: stamp))
        block.append32(UInt32(packet.count))  // captured length
        block.append32(UInt32(packet.count))  // original length
        block.appendPadded(packet)
        for comment in comments { block.option(code: 1, Array(comment.utf8)) }  // opt_comment
        if direction != .unknown {
            var flags: [UInt8] = []
            withUnsafeBytes(of: direction.rawValue.littleEndian) { flags.append(contentsOf: $0) }
            block.option(code: 2, flags)  // epb_flags
        }
        self.pending += block.finish()
        self.packetsWritten += 1
        if self.pending.count >= 1 << 16 { try self.flush() }
    }

    /// Writes what is buffered and closes the file.
    package func close() throws {
        try self.flush()
    }

    private func flush() throws {
        var offset = 0
        while offset < self.pending.count {
            let written = self.pending.withUnsafeBytes { raw in
                write(self.descriptor, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw WriteError(path: self.path, reason: String(cString: strerror(errno)))
            }
            offset += written
        }
        self.pending.removeAll(keepingCapacity: true)
    }
}

/// Builds one pcapng block: type, length, body, options, length again.
private struct BlockBuilder {
    private var bytes: [UInt8] = []
    private var hasOptions = false

    init(type: UInt32) {
        self.append32(type)
        self.append32(0)  // total length, patched in finish()
    }

    mutating func append16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { self.bytes.append(contentsOf: $0) } }
    mutating func append32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { self.bytes.append(contentsOf: $0) } }
    mutating func append64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { self.bytes.append(contentsOf: $0) } }

    mutating func appendPadded(_ data: [UInt8]) {
        self.bytes.append(contentsOf: data)
        let padding = (4 - data.count % 4) % 4
        self.bytes.append(contentsOf: repeatElement(0, count: padding))
    }

    /// An option; its length field has 16 bits, so a longer value (a 70,000-character charge point id from a
    /// damaged capture) is cut to the longest that fits, at a UTF-8 character boundary.
    mutating func option(code: UInt16, _ value: [UInt8]) {
        var value = value
        if value.count > Int(UInt16.max) {
            var end = Int(UInt16.max)
            while end > 0 && value[end] & 0xC0 == 0x80 { end -= 1 }
            value.removeSubrange(end...)
        }
        self.hasOptions = true
        self.append16(code)
        self.append16(UInt16(value.count))
        self.appendPadded(value)
    }

    mutating func finish() -> [UInt8] {
        if self.hasOptions {
            self.append32(0)  // opt_endofopt
        }
        let total = UInt32(self.bytes.count + 4)
        self.append32(total)
        withUnsafeBytes(of: total.littleEndian) { raw in
            for index in 0..<4 { self.bytes[4 + index] = raw[index] }
        }
        return self.bytes
    }
}
