import NIOConcurrencyHelpers
import NIOCore
import OCPPWire
import WitnessPolicy

/// Outages in force: for one charge point or for all. Read per message only while an outage exists.
final class OutageBoard: Sendable {
    private struct Outage {
        var until: NIODeadline
        var mode: OutageMode
    }

    private let outages = NIOLockedValueBox<[String: Outage]>([:])
    private static let everyone = "\u{0}all"

    func start(chargePoint: String?, duration: BoundedDuration, mode: OutageMode) {
        let until = NIODeadline.now() + .nanoseconds(duration.nanoseconds)
        self.outages.withLockedValue { $0[chargePoint ?? Self.everyone] = Outage(until: until, mode: mode) }
    }

    /// Ends the outage of `chargePoint` (nil: the one for all chargers) before its time.
    func end(chargePoint: String?) {
        self.outages.withLockedValue { _ = $0.removeValue(forKey: chargePoint ?? Self.everyone) }
    }

    /// The outage `chargePoint` is in now, if any.
    func active(for chargePoint: String) -> OutageMode? {
        self.outages.withLockedValue { outages in
            guard !outages.isEmpty else { return nil }
            let now = NIODeadline.now()
            outages = outages.filter { $0.value.until > now }
            return (outages[chargePoint] ?? outages[Self.everyone])?.mode
        }
    }
}
