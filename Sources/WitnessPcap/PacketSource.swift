import CPcap

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One captured packet: when, and the bytes from the link-layer header on.
public struct CapturedPacket: Sendable {
    public var microseconds: Int64
    public var bytes: [UInt8]
    /// The packet's length on the wire; more than `bytes.count` when the snapshot length cut it.
    public var originalLength: Int
}

/// A pcap error that says what and where.
public struct PacketSourceError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reads packets through libpcap: from a pcap or pcapng file, or live from an interface.
public final class PacketSource {
    public enum Next {
        case packet(CapturedPacket)
        /// Live capture only: nothing arrived within the read timeout.
        case timeout
        case end
    }

    private let handle: OpaquePointer
    /// What the packets are read from, for messages.
    public let name: String

    private init(handle: OpaquePointer, name: String) {
        self.handle = handle
        self.name = name
    }

    deinit { pcap_close(self.handle) }

    /// Opens a pcap or pcapng file.
    public static func open(file path: String) throws -> PacketSource {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let handle = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_MICRO), &errorBuffer) else {
            throw PacketSourceError("cannot read \(path): \(Self.text(errorBuffer))")
        }
        return PacketSource(handle: handle, name: path)
    }

    /// Starts capturing on `interface` (needs CAP_NET_RAW or root; the error says so).
    public static func live(interface: String, snapshotLength: Int32 = 262_144, promiscuous: Bool = false) throws -> PacketSource {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let handle = pcap_create(interface, &errorBuffer) else {
            throw PacketSourceError("cannot capture on \(interface): \(Self.text(errorBuffer))")
        }
        pcap_set_snaplen(handle, snapshotLength)
        pcap_set_promisc(handle, promiscuous ? 1 : 0)
        pcap_set_timeout(handle, 200)
        pcap_set_immediate_mode(handle, 1)
        pcap_set_buffer_size(handle, 16 << 20)
        let status = pcap_activate(handle)
        if status < 0 {
            let detail = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            switch status {
            case PCAP_ERROR_PERM_DENIED:
                throw PacketSourceError(
                    "no permission to capture on \(interface): run as root or give the binary the capability "
                        + "(sudo setcap cap_net_raw,cap_net_admin=eip $(which ocpp-witness)) (\(detail))"
                )
            case PCAP_ERROR_NO_SUCH_DEVICE:
                throw PacketSourceError("no such interface: \(interface) (\(detail))")
            default:
                throw PacketSourceError("cannot capture on \(interface): \(detail)")
            }
        }
        return PacketSource(handle: handle, name: interface)
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// libpcap's link-layer type (DLT_*) of the packets.
    public var linkType: Int32 { pcap_datalink(self.handle) }

    /// The link type's name, for messages.
    public var linkTypeName: String {
        guard let name = pcap_datalink_val_to_name(self.linkType) else { return "DLT \(self.linkType)" }
        return String(cString: name)
    }

    /// Keeps only packets matching a BPF filter expression (tcpdump syntax).
    public func setFilter(_ expression: String) throws {
        var program = bpf_program()
        guard pcap_compile(self.handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw PacketSourceError("invalid filter '\(expression)': \(String(cString: pcap_geterr(self.handle)))")
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(self.handle, &program) == 0 else {
            throw PacketSourceError("cannot apply filter '\(expression)': \(String(cString: pcap_geterr(self.handle)))")
        }
    }

    public func next() throws -> Next {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(self.handle, &header, &data) {
        case 1:
            guard let header, let data else { return .timeout }
            let length = Int(header.pointee.caplen)
            let time = Int64(header.pointee.ts.tv_sec) * 1_000_000 + Int64(header.pointee.ts.tv_usec)
            return .packet(
                CapturedPacket(
                    microseconds: time, bytes: Array(UnsafeBufferPointer(start: data, count: length)),
                    originalLength: Int(header.pointee.len)
                )
            )
        case 0:
            return .timeout
        case PCAP_ERROR_BREAK:
            return .end
        default:
            let detail = String(cString: pcap_geterr(self.handle))
            // A file that ends in the middle of a packet record is reported by libpcap as an error.
            throw PacketSourceError("\(self.name): \(detail)")
        }
    }

    /// Makes a blocked `next()` return `.end` (safe from another thread).
    public func stop() {
        pcap_breakloop(self.handle)
    }
}
