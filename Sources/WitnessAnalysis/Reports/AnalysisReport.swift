import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessPolicy

/// A charger vendor/model/firmware talking to a backend.
public struct PairKey: Sendable, Hashable, Comparable {
    public var charger: ChargerIdentity
    public var backend: String

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.charger, lhs.backend) < (rhs.charger, rhs.backend) }
}

/// Counts for one pair, merged from its connections.
public struct PairStatistics: Sendable {
    public var chargePoints: Set<String> = []
    public var connections = 0
    public var messagesToCSMS = 0
    public var messagesToCharger = 0
    public var deviations: [String: Int] = [:]
    /// Findings by severity, those the policy's fault explains left out: they count against neither vendor.
    public var severities: [Severity: Int] = [:]
    /// Findings per side responsible (docs/reports.md, "Whose side").
    public var sides: [Deviation.Side: Int] = [:]
    /// Findings on the charger's side per rule.
    public var chargerRules: [String: Int] = [:]
    /// The OCPP versions its connections spoke.
    public var versions: Set<OCPPVersion> = []
    public var latencies: [String: LatencyHistogram] = [:]
    /// Connections per OCPP security profile (0: none, 1: Basic over ws, 2: Basic over TLS, 3: client certificate).
    public var securityProfiles: [Int: Int] = [:]
    /// Each transaction's meter cadence and measurands (docs/reports.md, "Meter cadence").
    public var cadence = CadenceTable()
    /// The backend's commands by action: sent, answered, accepted, carried out, and how fast (docs/reports.md, "Remote commands").
    public var commands: [String: CommandStatistics] = [:]
    /// The feature matrix: each feature of the versions the pair spoke, claimed, declared and observed (docs/reports.md, "Features").
    public var features: [FeatureRow] = []
    /// Each stopped transaction's billing row (docs/billing.md).
    public var billing: [BillingRow] = []

    /// The policies of the proxy runs its connections were recorded under (empty text: none).
    public var policies: Set<String> = []
    /// When its first connection was seen (the capture's clock, microseconds).
    public var firstSeen: Int64?

    mutating func absorb(_ state: ConnectionState) {
        self.chargePoints.insert(state.chargePoint)
        self.policies.insert(state.policy)
        self.firstSeen = min(self.firstSeen ?? state.openedAt, state.openedAt)
        if let profile = state.securityProfile { self.securityProfiles[profile, default: 0] += 1 }
        self.connections += 1
        self.messagesToCSMS += state.messages[.toCSMS]
        self.messagesToCharger += state.messages[.toCharger]
        for (rule, count) in state.deviations { self.deviations[rule, default: 0] += count }
        for (severity, count) in state.severities { self.severities[severity, default: 0] += count }
        for (side, count) in state.sides { self.sides[side, default: 0] += count }
        for (rule, count) in state.chargerRules { self.chargerRules[rule, default: 0] += count }
        self.versions.insert(state.version)
        for (action, histogram) in state.latencies { self.latencies[action, default: LatencyHistogram()].merge(histogram) }
    }
}

public struct PairReport: Sendable, Comparable {
    public var key: PairKey
    public var statistics: PairStatistics
    /// One entry per test area, in the order of `WitnessArea.allCases`.
    public var areas: [AreaResult]
    public var scope: WitnessScope?

    public init(key: PairKey, statistics: PairStatistics, areas: [AreaResult] = WitnessArea.allCases.map { AreaResult(area: $0, checks: []) }, scope: WitnessScope? = nil) {
        self.key = key
        self.statistics = statistics
        self.areas = areas
        self.scope = scope
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.key < rhs.key }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.key == rhs.key }

    public func area(_ area: WitnessArea) -> AreaResult? { self.areas.first { $0.area == area } }

    /// The required areas of the scope that did not run: while there is one, the pair's witness test is incomplete.
    public var missingAreas: [WitnessArea] {
        guard let scope = self.scope else { return [] }
        return scope.areas.filter { self.area($0)?.verdict ?? .notRun == .notRun }
    }

    /// `fail` with any error or a failed test area, `warn` with warnings only, else `pass`.
    public var verdict: String {
        if (self.statistics.severities[.error] ?? 0) > 0 { return "fail" }
        if self.areas.contains(where: { $0.verdict == .fail }) { return "fail" }
        if (self.statistics.severities[.warning] ?? 0) > 0 { return "warn" }
        return "pass"
    }
}

/// Everything the analyzer found in a set of captures.
public struct AnalysisReport: Sendable {
    public var files: [String]
    public var records: Int
    public var profile: ValidationProfile
    /// Listed deviations (at most the configured number per rule and charge point), in capture order.
    public var deviations: [Deviation]
    /// Complete counts per rule.
    public var countsByRule: [String: Int]
    /// Complete counts per side responsible (docs/reports.md, "Whose side").
    public var countsBySide: [Deviation.Side: Int] = [:]
    public var pairs: [PairReport]
    public var readIssues: [CaptureReadIssue]
    /// How many witness checks the report judged (0: no policy with checks was given).
    public var checksLoaded: Int = 0
    public var scope: WitnessScope?
    /// Each charger model's firmware versions compared against the same backend (docs/reports.md, "Firmware regressions").
    public var firmware: [FirmwareComparison] = []
    /// Stopped transactions past the billing rows kept (`BillingLedger.rowsKept`): not in any sheet.
    public var billingRowsDropped = 0

    /// The comparisons that found a regression.
    public var regressions: [FirmwareComparison] { self.firmware.filter(\.isRegression) }

    /// The comparison in which `pair` is the later firmware and regressed, if any.
    public func regression(of pair: PairKey) -> FirmwareComparison? {
        self.regressions.first {
            $0.vendor == pair.charger.vendor && $0.model == pair.charger.model && $0.after == pair.charger.firmware && $0.backend == pair.backend
        }
    }

    public var totalDeviations: Int { self.countsByRule.values.reduce(0, +) }

    public func count(_ severity: Severity) -> Int {
        self.pairs.reduce(0) { $0 + ($1.statistics.severities[severity] ?? 0) }
    }

    // MARK: JSON

    public var json: JSONValue {
        let pairs: [JSONValue] = self.pairs.map { pair in
            let stats = pair.statistics
            var latency = JSONObject()
            for action in stats.latencies.keys.sorted() {
                guard let histogram = stats.latencies[action] else { continue }
                latency[action] = [
                    "count": .int(histogram.count), "p50": .double(Self.round(histogram.percentile(0.5))),
                    "p90": .double(Self.round(histogram.percentile(0.9))), "p99": .double(Self.round(histogram.percentile(0.99))),
                    "max": .double(Self.round(histogram.maximum)),
                ]
            }
            var byRule = JSONObject()
            for rule in stats.deviations.keys.sorted() { byRule[rule] = .int(stats.deviations[rule] ?? 0) }
            return [
                "charger": [
                    "vendor": .string(pair.key.charger.vendor), "model": .string(pair.key.charger.model),
                    "firmware": .string(pair.key.charger.firmware),
                ],
                "backend": .string(pair.key.backend),
                "chargePoints": .array(stats.chargePoints.sorted().map(JSONValue.string)),
                "connections": .int(stats.connections),
                "messages": ["toCSMS": .int(stats.messagesToCSMS), "toCharger": .int(stats.messagesToCharger)],
                "deviations": .object(byRule),
                "bySide": .object(JSONObject(Deviation.Side.allCases.map { JSONObject.Member(key: $0.rawValue, value: .int(stats.sides[$0] ?? 0)) })),
                "latencyMs": .object(latency),
                "securityProfiles": .object(JSONObject(stats.securityProfiles.keys.sorted().map { JSONObject.Member(key: String($0), value: .int(stats.securityProfiles[$0] ?? 0)) })),
                "verdict": .string(pair.verdict),
                "regression": .bool(self.regression(of: pair.key) != nil),
                "cadence": stats.cadence.json,
                "commands": .object(JSONObject(stats.commands.keys.sorted().map { JSONObject.Member(key: $0, value: stats.commands[$0]?.json ?? .null) })),
                "features": .array(stats.features.map(\.json)),
                "billing": .array(stats.billing.map(\.json)),
                "areas": .array(pair.areas.map(\.json)),
                "scope": pair.scope.map { scope in
                    [
                        "name": .string(scope.name), "complete": .bool(pair.missingAreas.isEmpty),
                        "missing": .array(pair.missingAreas.map { .string($0.rawValue) }),
                    ]
                } ?? .null,
            ]
        }
        var counts = JSONObject()
        for rule in self.countsByRule.keys.sorted() { counts[rule] = .int(self.countsByRule[rule] ?? 0) }
        return [
            "tool": .string("ocpp-witness \(CaptureFormat.toolVersion)"),
            // 2: deviations carry `side` and `sideReason`, the summary `bySide` (docs/reports.md, "JSON report").
            "reportFormat": 2,
            "generated": .string(Timestamp.now().rfc3339),
            "profile": .string(self.profile.rawValue),
            "checks": .int(self.checksLoaded),
            "scope": self.scope.map { .string($0.name) } ?? .null,
            "captures": .array(self.files.map(JSONValue.string)),
            "records": .int(self.records),
            "summary": [
                "deviations": .int(self.totalDeviations), "errors": .int(self.count(.error)), "warnings": .int(self.count(.warning)),
                "info": .int(self.count(.info)), "byRule": .object(counts), "listed": .int(self.deviations.count), "regressions": .int(self.regressions.count),
                "billingRowsDropped": .int(self.billingRowsDropped),
                "bySide": .object(JSONObject(Deviation.Side.allCases.map { JSONObject.Member(key: $0.rawValue, value: .int(self.countsBySide[$0] ?? 0)) })),
            ],
            "deviations": .array(self.deviations.map(\.json)),
            "pairs": .array(pairs),
            "firmware": .array(self.firmware.map(\.json)),
            "readIssues": .array(self.readIssues.map { .string($0.description) }),
        ]
    }

    static func round(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
