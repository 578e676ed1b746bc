import Atomics

/// How many of one connection's records wait in the recorder's queue, written or not yet.
///
/// The relay counts a record in when it queues it and the writer thread counts it out once written, so when
/// the recorder falls behind the proxy can pause the connections that filled the queue instead of every
/// connection: a charger flooding the proxy must not stall the others' recording, and with it their reads.
public final class RecorderShare: Sendable {
    private let queued = ManagedAtomic(0)

    public init() {}

    /// Records of this connection queued and not yet written.
    public var count: Int { self.queued.load(ordering: .relaxed) }

    /// Counts a record in, before it is handed to `CaptureWriter.admit`.
    public func enqueued() { self.queued.wrappingIncrement(ordering: .relaxed) }
    func written() { self.queued.wrappingDecrement(ordering: .relaxed) }
}

/// What the recorder's queue says to a record it took.
public enum RecorderAdmission: Sendable, Equatable {
    /// Below the high watermark.
    case accepted
    /// Above the high watermark: the connections holding more than their share of the queue should stop
    /// reading until `whenBelowLowWatermark` calls back.
    case behind
    /// At twice the high watermark: every connection should stop reading.
    case full
}
