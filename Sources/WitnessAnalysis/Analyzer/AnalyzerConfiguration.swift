import OCPPSchema
import WitnessPolicy

/// How the analyzer judges a capture.
public struct AnalyzerConfiguration: Sendable {
    public var profile: ValidationProfile
    /// A CALL without an answer after this long is `rpc.timeout`.
    public var responseTimeoutSeconds: Double
    /// Relative tolerance for `tx.energyMismatch`, with an absolute floor in Wh.
    public var energyTolerance: Double
    public var energyToleranceFloorWh: Double
    /// Timestamps more than this far after the proxy saw the message are `tx.timestampInFuture`.
    public var futureToleranceSeconds: Double
    /// Deviations listed per rule and charge point; counts stay complete beyond it.
    public var maximumListedPerRuleAndChargePoint: Int
    /// How far two timestamps of the charger's may disagree before an ordering rule (`tx.timestampOutside`)
    /// holds it against them: readings of one clock taken within one message, and clocks that report whole
    /// seconds, differ by this much without anything being wrong.
    public var clockToleranceSeconds: Double
    /// The witness checks (pass conditions of the test areas) of the policies given to `report`.
    public var checks: [WitnessCheck] = []
    /// The kind of site whose required areas a pair must have run (`report --scope`).
    public var scope: WitnessScope?
    /// How long a charge point may be gone (no connection open) before what is kept to judge it (its open
    /// transactions) is released, never shorter than the longest window of `checks`; nil: exactly what the
    /// capture header says live analysis used, and nothing is released for a header that does not say (a
    /// capture of an older version, whose live analysis released nothing).
    public var stateRetentionSeconds: Double?
    /// What the site declares of its chargers' metering and offline authorization (the policies' `site:`).
    public var site = SiteDeclaration()
    /// Meter public keys for signed meter values (`report --meter-key`): by charge point id, `*` for any.
    public var meterKeys: [String: String] = [:]
    /// Whether each stopped transaction's billing row is kept for the report (the live analysis keeps none: a fleet's
    /// rows over days are the report's and `billing`'s to make from the capture).
    public var keepsBillingRows = true
    /// The vendors' own feature matrices (`report --declaration`), held against what the capture shows.
    public var declarations: [VendorDeclaration] = []
    /// How far a transaction's median interval between periodic readings may be from the configured one, as a
    /// fraction of it, never less than the clock tolerance (`report --interval-tolerance`; nil: the site's, or 10%).
    public var intervalTolerance: Double?
    public static let defaultIntervalTolerance = 0.1
    /// How long an accepted command's effect may take (a reboot after Reset, a transaction after a remote start)
    /// before it is `command.notCarriedOut` (`report --command-window`).
    public var commandWindowSeconds: Double = 120

    /// The interval tolerance in force.
    public var intervalToleranceInForce: Double { self.intervalTolerance ?? self.site.intervalTolerance ?? Self.defaultIntervalTolerance }

    public init(
        profile: ValidationProfile = .strict, responseTimeoutSeconds: Double = 30, energyTolerance: Double = 0.005,
        energyToleranceFloorWh: Double = 10, futureToleranceSeconds: Double = 60, maximumListedPerRuleAndChargePoint: Int = 100,
        clockToleranceSeconds: Double = 1
    ) {
        self.clockToleranceSeconds = clockToleranceSeconds
        self.profile = profile
        self.responseTimeoutSeconds = responseTimeoutSeconds
        self.energyTolerance = energyTolerance
        self.energyToleranceFloorWh = energyToleranceFloorWh
        self.futureToleranceSeconds = futureToleranceSeconds
        self.maximumListedPerRuleAndChargePoint = maximumListedPerRuleAndChargePoint
    }
}
