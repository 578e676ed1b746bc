import OCPPWire
import WitnessCapture

/// The policy's faults that touched each charge point's traffic, as spans on the capture's clock, so that a
/// failed check, an unanswered CALL or an effect that never came can say whether a fault explains it
/// (docs/reports.md, "Whose side"). The capture records a message as it was received, before a fault held,
/// dropped or changed it: so what a fault explains is what the *other* side could not do. A fault explains an
/// outcome when it kept the stimulus from the peer (dropped, malformed, answered in its place, or held it long
/// enough), when the proxy itself made the answer or the event, or when it cut the connection inside the window
/// (an outage, a disconnect); a fault that is itself the check's stimulus, or the test's own message (an
/// injected CALL, an answer on a peer's behalf), explains nothing. Bounded: the latest `kept` per charge point.
final class FaultTouches {
    struct Touch: Sendable {
        /// When the fault hit, and until when it held (a delay's `ms`, an outage's `seconds`; else the same instant).
        var from: Int64
        var until: Int64
        var ref: String
        var rule: String
        var kind: String
        /// The proxy made this message (a copy, an answer on a peer's behalf, an injected CALL).
        var injected: Bool

        /// An outage or a disconnect: nothing the charge point was to send could come while it held.
        var cutsConnection: Bool { self.kind == "outage" || self.kind == "disconnect" }

        /// One sentence for a verdict: which fault, where.
        var sentence: String { "the policy's fault '\(self.rule)' (\(self.kind)) touched \(self.ref)" }
    }

    private var byChargePoint: [String: [Touch]] = [:]
    /// Outages for every charger (`scope: all`).
    private var everyone: [Touch] = []
    static let kept = 128

    /// Notes the fault on `record`, if any. The frames a blackhole outage swallows carry its kind alone: the
    /// outage's first record (with its rule and duration) stands for all of them.
    func note(_ record: CaptureRecord, chargePoint: String, ts: Int64) {
        guard let fault = record.fault, let kind = fault["kind"]?.stringValue else { return }
        if kind == "outage", fault["seconds"] == nil { return }
        var until = ts
        if let ms = fault["ms"]?.doubleValue, ms.isFinite, ms > 0 { until = ts + Int64(min(ms, 86_400_000) * 1000) }
        if kind == "outage", let seconds = fault["seconds"]?.doubleValue, seconds.isFinite, seconds > 0 {
            until = ts + Int64(min(seconds, 30 * 86_400) * 1_000_000)
        }
        let touch = Touch(
            from: ts, until: until, ref: record.reference, rule: fault["rule"]?.stringValue ?? "?", kind: kind, injected: record.injected
        )
        if kind == "outage", fault["scope"]?.stringValue == "all" {
            Self.append(touch, to: &self.everyone)
        } else {
            Self.append(touch, to: &self.byChargePoint[chargePoint, default: []])
        }
    }

    private static func append(_ touch: Touch, to touches: inout [Touch]) {
        if touches.count >= Self.kept { touches.removeFirst(touches.count - Self.kept + 1) }
        touches.append(touch)
    }

    func release(_ chargePoint: String) { self.byChargePoint.removeValue(forKey: chargePoint) }

    /// The fault on one capture line of `chargePoint`, if it is still known.
    func touch(at ref: String, of chargePoint: String) -> Touch? {
        self.byChargePoint[chargePoint]?.last { $0.ref == ref }
    }

    /// Whether any fault touched `chargePoint` (the common case, none, costs one lookup).
    func touched(_ chargePoint: String) -> Bool { self.byChargePoint[chargePoint] != nil }

    /// The fault that explains an outcome on `chargePoint` awaited from `from` to `through`, if any (docs/reports.md,
    /// "Whose side"):
    /// - on the `stimulus`, one that kept it from the peer: a drop, a malformation, a disconnect or outage, an answer
    ///   the proxy gave in the peer's place (`respond` on a message the peer sent), or a delay (or bandwidth limit)
    ///   that held it at least `lateBy` (an outcome that came late) or past `through` (one that never came); not with
    ///   `stimulusIsFault`, nor on a message the proxy made (the test itself);
    /// - on another of `refs` (the answer, the event a check caught), a message the proxy made;
    /// - inside the window, an outage or disconnect, unless its rule is one of `excludingRules` (the check's stimulus).
    func explanation(
        for chargePoint: String, stimulus: String? = nil, refs: [String] = [], from: Int64, through: Int64, stimulusIsFault: Bool = false,
        excludingRules: Set<String> = [], lateBy: Int64? = nil
    ) -> Touch? {
        let touches = (self.byChargePoint[chargePoint] ?? []) + self.everyone
        func explains(_ touch: Touch) -> Bool {
            if excludingRules.contains(touch.rule) { return false }
            if touch.ref == stimulus {
                guard !stimulusIsFault, !touch.injected else { return false }
                switch touch.kind {
                case "drop", "malformed", "disconnect", "outage", "respond": return true
                case "delay", "bandwidth": return lateBy.map { touch.until - touch.from >= $0 } ?? (touch.until > through)
                default: return false
                }
            }
            if refs.contains(touch.ref) { return touch.injected }
            return touch.cutsConnection && touch.from <= through && touch.until >= from
        }
        return touches.filter(explains).min { $0.from < $1.from }
    }
}
