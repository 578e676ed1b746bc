import WitnessPolicy
import NIOConcurrencyHelpers

/// The policy in force, replaceable while the proxy runs (SIGHUP, file change, admin API). Connections
/// read it per message, so a new policy applies to traffic from the next message on.
public final class FaultInjection: Sendable {
    private let current: NIOLockedValueBox<ChaosEngine?>
    private let text = NIOLockedValueBox<String?>(nil)

    public init(_ engine: ChaosEngine? = nil, text: String? = nil) {
        self.current = NIOLockedValueBox(engine)
        self.text.withLockedValue { $0 = text }
    }

    /// The YAML of the policy in force, as it was loaded.
    public var policyText: String? { self.text.withLockedValue { $0 } }

    /// Puts the policy in `yaml` in force; an invalid one throws `PolicyErrors` and the old one stays.
    public func replace(yaml: String, source: String) throws {
        let policy = try PolicyLoader.parse(yaml, file: source)
        self.replace(with: policy)
        self.text.withLockedValue { $0 = yaml }
    }

    public var engine: ChaosEngine? { self.current.withLockedValue { $0 } }

    /// Puts `policy` in force (nil removes all faults); counters and generators start afresh.
    public func replace(with policy: FaultPolicy?) {
        let engine = policy.map(ChaosEngine.init)
        self.current.withLockedValue { current in
            current?.retireMetrics()
            current = engine
        }
        if policy == nil { self.text.withLockedValue { $0 = nil } }
    }
}
