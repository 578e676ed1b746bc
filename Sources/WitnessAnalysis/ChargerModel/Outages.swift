/// When each charge point was offline, as the capture shows it: the periods in one proxy run in which the
/// proxy had no connection of it, from the close of its last connection to the opening of the next. What
/// happened between proxy runs was not watched and is no outage here. Bounded: the last `kept` periods per
/// charge point, and charge points are released with the rest of the analyzer's state.
struct Outages {
    struct Period {
        var start: Int64
        var end: Int64
        /// `capture-file:line` of the open record that ended it (of the fault that began it, for a blackhole).
        var endRef: String
        /// The policy's blackhole outage fault cut the charger off while its connection stayed open.
        var blackhole = false
        /// The proxy run it happened in (`Outages.runs` when it was recorded).
        var run = 0

        /// How its end reads in a finding: "it reconnected at cap.jsonl:12".
        var ending: String {
            self.blackhole ? "the policy's blackhole outage cut it off from its backend (\(self.endRef))" : "it reconnected at \(self.endRef)"
        }
    }

    static let kept = 8
    /// Proxy runs begun so far: a reconnection of an earlier run delivered nothing of this one.
    private var runs = 0
    private var open: [String: Int] = [:]
    /// How far behind the proxy's clock each charger's clock runs, at least: the smallest delay between the
    /// time a live message says and the time the proxy saw it (negative when the charger's clock leads).
    private var lags: [String: Int64] = [:]
    private var since: [String: Int64] = [:]
    private var periods: [String: [Period]] = [:]

    mutating func opened(_ chargePoint: String, at ts: Int64, ref: String) {
        self.open[chargePoint, default: 0] += 1
        guard let start = self.since.removeValue(forKey: chargePoint), ts > start else { return }
        var periods = self.periods[chargePoint] ?? []
        periods.append(Period(start: start, end: ts, endRef: ref, run: self.runs))
        if periods.count > Self.kept { periods.removeFirst() }
        self.periods[chargePoint] = periods
    }

    /// The policy's blackhole outage fault (`fault.kind: outage, mode: blackhole`) cut the charge point off from
    /// `start` to `end`: nothing got through, though its connection stayed open.
    mutating func cutOff(_ chargePoint: String, from start: Int64, to end: Int64, ref: String) {
        var periods = self.periods[chargePoint] ?? []
        periods.append(Period(start: start, end: end, endRef: ref, blackhole: true, run: self.runs))
        periods.sort { $0.end < $1.end }
        if periods.count > Self.kept { periods.removeFirst() }
        self.periods[chargePoint] = periods
    }

    mutating func closed(_ chargePoint: String, at ts: Int64) {
        let open = max(0, (self.open[chargePoint] ?? 1) - 1)
        self.open[chargePoint] = open
        if open == 0 { self.since[chargePoint] = ts }
    }

    /// A new proxy run: nobody watched the time in between, and no connection is open.
    mutating func newRun() {
        self.runs += 1
        self.open.removeAll()
        self.since.removeAll()
    }

    /// A message dated `dated` by the charger that the proxy saw at `seenAt` while connected.
    mutating func observe(_ chargePoint: String, dated: Int64, seenAt: Int64) {
        guard (self.open[chargePoint] ?? 0) > 0 else { return }
        self.lags[chargePoint] = min(self.lags[chargePoint] ?? .max, seenAt - dated)
    }

    /// What to add to a time the charger's clock gave to read it on the proxy's (0 until a live message told).
    func lag(of chargePoint: String) -> Int64 { self.lags[chargePoint] ?? 0 }

    mutating func release(_ chargePoint: String) {
        self.lags.removeValue(forKey: chargePoint)
        self.open.removeValue(forKey: chargePoint)
        self.since.removeValue(forKey: chargePoint)
        self.periods.removeValue(forKey: chargePoint)
    }

    /// The outage without a connection `ts` falls in, with `tolerance` kept clear of both of its ends. A
    /// blackhole leaves the connection open: the charger cannot tell it from a slow backend, so the rules that
    /// need the charger to know it was offline (the offline flag, an offline start, a start stamped at delivery)
    /// do not count it; `overlaps` does.
    func period(of chargePoint: String, containing ts: Int64, tolerance: Int64) -> Period? {
        self.periods[chargePoint]?.last { !$0.blackhole && ts > $0.start + tolerance && ts < $0.end - tolerance }
    }

    /// How long after a reconnection a charger's queue is still being delivered.
    static let reconnectionWindow: Int64 = 300_000_000

    /// The outage without a connection whose reconnection a time `dated` is stamped with: the last one that
    /// ended before the message arrived (`arrival`), when `dated` is not before its end (less the tolerance).
    func reconnection(of chargePoint: String, before arrival: Int64, dated: Int64, tolerance: Int64) -> Period? {
        guard let period = self.periods[chargePoint]?.last(where: { !$0.blackhole && $0.end <= arrival + tolerance }), period.run == self.runs else { return nil }
        return dated >= period.end - tolerance ? period : nil
    }

    /// Whether an outage, a blackhole included, overlaps the time from `from` to `to` (the proxy's clock).
    func overlaps(_ chargePoint: String, from: Int64, to: Int64) -> Bool {
        self.periods[chargePoint]?.contains { $0.start < to && $0.end > from } ?? false
    }

    /// The outage during which something dated `ts` happened before the reconnection: from its start (less the
    /// tolerance) to its end (less the tolerance), for a time that cannot be the reconnection's.
    func period(of chargePoint: String, before ts: Int64, tolerance: Int64) -> Period? {
        self.periods[chargePoint]?.last { !$0.blackhole && ts >= $0.start - tolerance && ts < $0.end - tolerance }
    }
}
