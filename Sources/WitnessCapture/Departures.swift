import HeapModule

/// Which charge points have been gone longer than the state retention, from a capture's records: a charge
/// point departs when its last open connection closes (an outage the proxy injects closes or refuses its
/// connections, so it is a departure too) and returns when a connection of it opens again. What is kept per
/// charge point for judging it (its transactions, the live page's frames) is released once it has been gone
/// for `retention`; live analysis, the live page and `report` all ask this type, so they release alike.
///
/// Times are the records' own (microseconds since 1970), never the clock of the machine reading them, so a
/// report made later from the capture releases exactly where live analysis did.
public struct Departures: Sendable {
    /// How long a charge point may be gone before its state is released, in microseconds.
    public var retentionMicros: Int64
    /// Open connections per charge point; a charge point with none is absent.
    private var open: [String: Int] = [:]
    /// When each departed charge point's last connection closed.
    private var departed: [String: Int64] = [:]
    /// The same departures, earliest first, at most one entry per charge point: one whose charge point has
    /// returned is dropped when it comes up, one whose charge point left again later is put back at that time.
    /// A charger that reconnects every few seconds so adds nothing.
    private var queue = Heap<Departure>()
    private var queued: Set<String> = []

    private struct Departure: Comparable, Sendable {
        var at: Int64
        var chargePoint: String
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.at, lhs.chargePoint) < (rhs.at, rhs.chargePoint) }
    }

    /// A retention that never releases (captures whose header does not say what live analysis used).
    public static let never = Departures(retentionSeconds: .infinity)

    /// Whether anything is ever released.
    public var releases: Bool { self.retentionMicros != .max }

    /// The default retention: a day. A charger that queues its transactions through a night offline is still
    /// judged as the same charger when it returns.
    public static let defaultRetentionSeconds: Double = 86_400

    /// The capture header field that records the retention live analysis used, in seconds.
    public static let headerField = "stateRetentionSeconds"

    public init(retentionSeconds: Double) {
        self.retentionMicros = Self.micros(retentionSeconds)
    }

    /// Seconds (finite, not negative; `BoundedDuration` bounds what users give) as microseconds.
    public static func micros(_ seconds: Double) -> Int64 {
        if seconds == .infinity { return .max }
        return seconds.isFinite ? Int64(min(max(0, seconds), 1e12) * 1_000_000) : 0
    }

    /// Charge points whose last connection closed and that have not been released yet.
    public var departedCount: Int { self.departed.count }
    /// Entries waiting in the queue: at most one per charge point, however often it reconnects.
    public var queuedCount: Int { self.queue.count }

    public mutating func opened(_ chargePoint: String) {
        self.open[chargePoint, default: 0] += 1
        self.departed.removeValue(forKey: chargePoint)
    }

    /// A connection of `chargePoint` closed at `ts`. A close without an open (a capture that begins while the
    /// connection was open) counts as the last one.
    public mutating func closed(_ chargePoint: String, at ts: Int64) {
        let left = (self.open[chargePoint] ?? 1) - 1
        guard left <= 0 else {
            self.open[chargePoint] = left
            return
        }
        self.open.removeValue(forKey: chargePoint)
        self.departed[chargePoint] = ts
        if self.queued.insert(chargePoint).inserted {
            self.queue.insert(Departure(at: ts, chargePoint: chargePoint))
        }
    }

    /// The charge points that have been gone longer than the retention at `now`, earliest departure first;
    /// they are forgotten here, as their state is wherever it is kept.
    public mutating func due(at now: Int64) -> [String] {
        guard self.releases else { return [] }
        var due: [String] = []
        // Departed before this are due; saturating, since a damaged capture's times can be anything.
        let (cutoff, overflow) = now.subtractingReportingOverflow(self.retentionMicros)
        let limit = overflow ? Int64.min : cutoff
        while let first = self.queue.min, first.at < limit {
            self.queue.removeMin()
            guard let departed = self.departed[first.chargePoint] else {
                self.queued.remove(first.chargePoint)
                continue
            }
            guard departed == first.at else {
                // It came back and left again: due from its last departure.
                self.queue.insert(Departure(at: departed, chargePoint: first.chargePoint))
                continue
            }
            self.queued.remove(first.chargePoint)
            self.departed.removeValue(forKey: first.chargePoint)
            due.append(first.chargePoint)
        }
        return due
    }
}
