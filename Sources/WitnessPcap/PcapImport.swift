import Foundation
import NIOConcurrencyHelpers
import OCPPWire
import WitnessCapture

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a pcap or pcapng file into a capture.
public enum PcapImporter {
    /// Decodes every packet of `path` (optionally through a BPF `filter`) into `writer`.
    /// Problems inside the traffic become `error` records; only an unreadable file throws.
    public static func importFile(_ path: String, filter: String?, into writer: CaptureWriter, redactSecrets: Bool = true) throws
        -> TrafficDecoder.Statistics
    {
        Self.importPackets(from: try Self.open(path, filter: filter), into: writer, redactSecrets: redactSecrets)
    }

    /// Opens a capture file for import: it exists, libpcap reads it, its link type is one the decoder knows
    /// and the filter compiles. Open it before creating the output, so a bad file leaves nothing behind.
    public static func open(_ path: String, filter: String?) throws -> PacketSource {
        try Self.prepared(PacketSource.open(file: path), filter: filter)
    }

    /// `source` once its link type is one the decoder knows and `filter` is set on it.
    static func prepared(_ source: PacketSource, filter: String?) throws -> PacketSource {
        try checkLinkType(source)
        if let filter { try source.setFilter(filter) }
        return source
    }

    /// Decodes every packet of an opened file into `writer`; a file cut mid-packet ends with a
    /// `truncatedFile` error record after what could be decoded.
    public static func importPackets(from source: PacketSource, into writer: CaptureWriter, redactSecrets: Bool = true)
        -> TrafficDecoder.Statistics
    {
        let decoder = TrafficDecoder(redactSecrets: redactSecrets) { writer.record($0) }
        var readError: (any Error)?
        loop: while true {
            do {
                switch try source.next() {
                case .packet(let packet): decoder.consume(packet, linkType: source.linkType)
                case .timeout: continue
                case .end: break loop
                }
            } catch {
                // A file cut mid-packet: keep what was decoded, report where it stopped.
                readError = error
                break loop
            }
        }
        decoder.finish()
        if let readError {
            writer.record(
                .connection(
                    .error, connection: nil, chargePoint: nil,
                    fields: ["error": "truncatedFile", "detail": .string("\(readError)"), "source": "pcap"]
                )
            )
            var statistics = decoder.statistics
            statistics.errors["truncatedFile", default: 0] += 1
            return statistics
        }
        return decoder.statistics
    }

    static func checkLinkType(_ source: PacketSource) throws {
        guard PacketDecoder.isSupported(linkType: source.linkType) else {
            throw PacketSourceError(
                "\(source.name): link type \(source.linkTypeName) is not supported "
                    + "(Ethernet, Linux cooked SLL/SLL2, raw IP and BSD loopback are)"
            )
        }
    }
}

/// Records plain OCPP traffic from a network interface, on a thread of its own.
public final class PassiveCapture: @unchecked Sendable {
    private let source: PacketSource
    private let decoder: TrafficDecoder
    private let done = ConditionLock(value: false)
    private let lock = NIOLock()
    private var stopping = false
    private var failure: (any Error)?

    /// Opens `interface` (throws a clear error without capture privileges) and starts recording into `writer`.
    public convenience init(interface: String, filter: String?, writer: CaptureWriter, redactSecrets: Bool = true) throws {
        self.init(source: try Self.open(interface: interface, filter: filter), writer: writer, redactSecrets: redactSecrets)
    }

    /// Opens `interface` for capture with `filter`; throws a clear error without capture privileges. Open it
    /// before creating the output, so an interface that cannot be opened leaves nothing behind.
    public static func open(interface: String, filter: String?) throws -> PacketSource {
        try PcapImporter.prepared(PacketSource.live(interface: interface), filter: filter)
    }

    /// Starts recording an opened interface into `writer`.
    public init(source: PacketSource, writer: CaptureWriter, redactSecrets: Bool = true) {
        self.source = source
        self.decoder = TrafficDecoder(redactSecrets: redactSecrets) { writer.record($0) }
        let thread = Thread { [self] in self.run() }
        thread.name = "passive-capture"
        thread.start()
    }

    private func run() {
        while !self.lock.withLock({ self.stopping }) {
            do {
                if case .packet(let packet) = try self.source.next() {
                    self.lock.withLock { self.decoder.consume(packet, linkType: self.source.linkType) }
                } else if self.lock.withLock({ self.stopping }) {
                    break
                }
            } catch {
                self.lock.withLock { self.failure = error }
                break
            }
        }
        self.lock.withLock { self.decoder.finish() }
        self.done.lock()
        self.done.unlock(withValue: true)
    }

    public var statistics: TrafficDecoder.Statistics { self.lock.withLock { self.decoder.statistics } }

    /// Stops capturing and waits for the capture thread; returns the error that ended it early, if any.
    @discardableResult
    public func stop() -> (any Error)? {
        self.lock.withLock { self.stopping = true }
        self.source.stop()
        self.done.lock(whenValue: true)
        self.done.unlock()
        return self.lock.withLock { self.failure }
    }
}
