import OCPPWire
import WitnessCapture

/// The policy's faults that touched each charge point's traffic, as spans on the capture's clock, so that a
/// failed check, an unanswered CALL or an effect that never came can say whether a fault explains it
/// (docs/reports.md, "Whose side"). A fault explains an outcome when it touched the stimulus or its answer, the
/// awaited event inside the window (a message of the awaited action, or the answer awaited), or cut the
/// connection inside the window (an outage, a disconnect); a fault that is itself the check's stimulus explains
/// nothing. Bounded: the latest `kept` touches per charge point.
final class FaultTouches {
    struct Touch: Sendable {
        /// When the fault hit, and until when it held (a delay's `ms`, an outage's `seconds`; else the same instant).
        var from: Int64
        var until: Int64
        var ref: String
        var rule: String
        var kind: String
        var action: String?
        var messageId: String?

        /// An outage or a disconnect: nothing the charge point was to send could come while it held.
        var cutsConnection: Bool { self.kind == "outage" || self.kind == "disconnect" }

        /// One sentence for a verdict: which fault, where.
        var sentence: String { "the policy's fault '\(self.rule)' (\(self.kind)) touched \(self.ref)" }
    }

    private var byChargePoint: [String: [Touch]] = [:]
    /// Outages for every charger (`scope: all`).
    private var everyone: [Touch] = []
    static let kept = 32

    /// Notes the fault on `record`, if any. A CALL the policy injected is a stimulus, not a fault that explains
    /// the charger's answer to it; an answer the proxy gave on a peer's behalf (`respond`) is one.
    func note(_ record: CaptureRecord, chargePoint: String, ts: Int64) {
        guard let fault = record.fault, let kind = fault["kind"]?.stringValue, kind != "inject" else { return }
        var until = ts
        if let ms = fault["ms"]?.doubleValue, ms.isFinite, ms > 0 { until = ts + Int64(min(ms, 86_400_000) * 1000) }
        if kind == "outage", let seconds = fault["seconds"]?.doubleValue, seconds.isFinite, seconds > 0 {
            until = ts + Int64(min(seconds, 30 * 86_400) * 1_000_000)
        }
        let touch = Touch(
            from: ts, until: until, ref: record.reference, rule: fault["rule"]?.stringValue ?? "?", kind: kind,
            action: record.action, messageId: record.messageId
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

    /// The fault that explains an outcome on `chargePoint` awaited from `from` to `through`, if any (docs/reports.md,
    /// "Whose side"): one that touched the `stimulus` (unless it made it: a `respond` or an injected CALL is the test
    /// itself, and with `stimulusIsFault` the stimulus is the fault), one that touched another of `refs` (its answer,
    /// the event a check caught), or one inside the window that cut the connection or touched the awaited event (a
    /// message of one of `actions`, or with `messageId`). A delay explains an event that came `lateBy` late when it
    /// held a message at least that long, and one that never came when it held a message past `through`.
    func explanation(
        for chargePoint: String, stimulus: String? = nil, refs: [String] = [], from: Int64, through: Int64, actions: Set<String> = [],
        messageId: String? = nil, stimulusIsFault: Bool = false, lateBy: Int64? = nil
    ) -> Touch? {
        let touches = (self.byChargePoint[chargePoint] ?? []) + self.everyone
        func held(_ touch: Touch) -> Bool {
            guard touch.kind == "delay" else { return true }
            return lateBy.map { touch.until - touch.from >= $0 } ?? (touch.until > through)
        }
        func explains(_ touch: Touch) -> Bool {
            if touch.ref == stimulus {
                return !stimulusIsFault && touch.kind != "respond" && touch.kind != "duplicate" && held(touch)
            }
            guard held(touch) else { return false }
            if refs.contains(touch.ref) { return true }
            guard touch.from <= through, touch.until >= from else { return false }
            return touch.cutsConnection || touch.action.map(actions.contains) ?? false || (messageId != nil && touch.messageId == messageId)
        }
        return touches.filter(explains).min { $0.from < $1.from }
    }
}
