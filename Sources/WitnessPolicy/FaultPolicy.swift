import Foundation
import OCPPWire

/// A fault policy: a seed and rules, each a matcher and a fault. Loaded from YAML (see docs/policies.md).
public struct FaultPolicy: Sendable {
    public var seed: UInt64
    public var rules: [FaultRule]
    /// The pass conditions judged from the capture by `report` (they change nothing in the traffic).
    public var checks: [WitnessCheck]
    /// What the site needs of its chargers' metering and allows offline (judged by `report`, like the checks).
    public var site: SiteDeclaration
    /// Where the policy came from (a file path), for capture headers and messages.
    public var source: String

    public init(seed: UInt64, rules: [FaultRule], checks: [WitnessCheck] = [], site: SiteDeclaration = SiteDeclaration(), source: String = "") {
        self.seed = seed
        self.site = site
        self.rules = rules
        self.checks = checks
        self.source = source
    }

    /// Whether any rule needs the charger's vendor/model/firmware from its BootNotification.
    public var needsIdentity: Bool { self.rules.contains { $0.match.vendor != nil || $0.match.model != nil || $0.match.firmware != nil } }

    /// Whether any rule waits for a transaction to have run for a while.
    public var tracksTransactions: Bool { self.rules.contains { $0.match.transactionFor != nil } }
}

public struct FaultRule: Sendable {
    public var name: String
    public var match: FaultMatch
    public var fault: Fault
}
