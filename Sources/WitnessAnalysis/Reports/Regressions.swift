import OCPPSchema
import OCPPWire
import WitnessPolicy

/// What changed between two firmware versions of one charger model against the same backend under the same
/// policy (docs/reports.md, "Firmware regressions"). Between other runs firmware and backend (or the test
/// itself) are confounded, and the comparison says so instead of judging.
public struct FirmwareComparison: Sendable {
    public var vendor: String
    public var model: String
    public var backend: String
    /// The firmware seen first, and the one seen after it.
    public var before: String
    public var after: String
    /// Nil when the two were compared; else why not.
    public var notCompared: String?
    public var regressions: [Regression]

    public var isRegression: Bool { self.notCompared == nil && !self.regressions.isEmpty }

    /// One behaviour that was good before and is not after.
    public struct Regression: Sendable {
        public enum Kind: String, Sendable {
            /// A check passed before and fails after.
            case check
            /// A finding (error or warning of the charger's side) that did not occur before.
            case finding
            /// Commands answered or carried out slower, or carried out less often.
            case command
            /// Periodic meter readings at another interval.
            case cadence
            /// A feature that worked before and is refused or fails after.
            case feature
        }

        public var kind: Kind
        public var subject: String
        /// One sentence with the numbers before and after.
        public var detail: String
        /// Capture lines before and after.
        public var refs: [String]

        var json: JSONValue {
            ["kind": .string(self.kind.rawValue), "subject": .string(self.subject), "detail": .string(self.detail), "refs": .array(self.refs.map(JSONValue.string))]
        }
    }

    var json: JSONValue {
        [
            "vendor": .string(self.vendor), "model": .string(self.model), "backend": .string(self.backend), "before": .string(self.before),
            "after": .string(self.after), "compared": .bool(self.notCompared == nil), "notCompared": self.notCompared.map(JSONValue.string) ?? .null,
            "regression": .bool(self.isRegression), "regressions": .array(self.regressions.map(\.json)),
        ]
    }
}

/// Finds the firmware comparisons of a report's pairs.
enum Regressions {
    /// How much slower a command may get before it is a regression: its p95 grows by more than half and by more
    /// than a second; its share carried out drops by more than 10 points.
    static let slowerBy = 1.5
    static let slowerAtLeastMs = 1000.0
    static let carriedOutDrop = 0.10
    /// Fewer commands than this on either side compare nothing: one slow answer is no trend.
    static let fewest = 5

    static func compare(_ pairs: [PairReport], intervalTolerance: Double) -> [FirmwareComparison] {
        // A charger that names no model or firmware cannot be compared by firmware.
        let known = pairs.filter { [$0.key.charger.vendor, $0.key.charger.model, $0.key.charger.firmware].allSatisfy { $0 != ChargerIdentity.unknown.firmware } }
        let groups = Dictionary(grouping: known) {
            [$0.key.charger.vendor, $0.key.charger.model, $0.key.backend]
        }
        var comparisons: [FirmwareComparison] = []
        for (_, group) in groups.sorted(by: { $0.key.joined(separator: "\u{1}") < $1.key.joined(separator: "\u{1}") }) where group.count > 1 {
            // In the order the firmware versions were first seen: each is compared with the one before it.
            let ordered = group.sorted { ($0.statistics.firstSeen ?? .max, $0.key) < ($1.statistics.firstSeen ?? .max, $1.key) }
            for (before, after) in zip(ordered, ordered.dropFirst()) {
                comparisons.append(Self.compare(before, after, intervalTolerance: intervalTolerance))
            }
        }
        return comparisons
    }

    static func compare(_ before: PairReport, _ after: PairReport, intervalTolerance: Double) -> FirmwareComparison {
        var comparison = FirmwareComparison(
            vendor: after.key.charger.vendor, model: after.key.charger.model, backend: after.key.backend, before: before.key.charger.firmware,
            after: after.key.charger.firmware, notCompared: nil, regressions: []
        )
        guard before.statistics.versions == after.statistics.versions else {
            func names(_ versions: Set<OCPPVersion>) -> String { versions.map(\.rawValue).sorted().joined(separator: ", ") }
            comparison.notCompared = "the firmware versions spoke different OCPP versions (\(names(before.statistics.versions)) before, \(names(after.statistics.versions)) after): their rules and settings differ"
            return comparison
        }
        guard before.statistics.policies == after.statistics.policies else {
            func names(_ policies: Set<String>) -> String { policies.sorted().map { $0.isEmpty ? "no policy" : $0 }.joined(separator: ", ") }
            comparison.notCompared = "recorded under different policies (\(names(before.statistics.policies)) before, \(names(after.statistics.policies)) after): the test changed with the firmware"
            return comparison
        }
        comparison.regressions = Self.checks(before, after) + Self.findings(before, after) + Self.commands(before, after)
            + Self.cadence(before, after, tolerance: intervalTolerance) + Self.features(before, after)
        return comparison
    }

    private static func checks(_ before: PairReport, _ after: PairReport) -> [FirmwareComparison.Regression] {
        let passed = Dictionary(before.areas.flatMap(\.checks).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        return after.areas.flatMap(\.checks).compactMap { check in
            // A failure of the backend's side (or the policy's) says nothing of the firmware.
            guard check.verdict == .fail, check.side == .charger, let earlier = passed[check.name], earlier.verdict == .pass else { return nil }
            return .init(
                kind: .check, subject: check.name, detail: "\(check.name) passed with \(before.key.charger.firmware) and fails with \(after.key.charger.firmware): \(check.detail)",
                refs: Array(earlier.refs.prefix(2)) + check.refs
            )
        }
    }

    /// Rules of the charger's side (errors and warnings) that occur after and did not before; findings the policy's
    /// fault explains or that are the backend's do not count.
    private static func findings(_ before: PairReport, _ after: PairReport) -> [FirmwareComparison.Regression] {
        after.statistics.chargerRules.keys.sorted().compactMap { rule in
            guard (before.statistics.chargerRules[rule] ?? 0) == 0, let count = after.statistics.chargerRules[rule], count > 0,
                let info = RuleCatalog.byId[rule], info.severity != .info
            else { return nil }
            return .init(kind: .finding, subject: rule, detail: "\(rule) (\(info.summary)): none with \(before.key.charger.firmware), \(count) with \(after.key.charger.firmware)", refs: [])
        }
    }

    private static func commands(_ before: PairReport, _ after: PairReport) -> [FirmwareComparison.Regression] {
        var found: [FirmwareComparison.Regression] = []
        for (action, now) in after.statistics.commands.sorted(by: { $0.key < $1.key }) {
            guard let then = before.statistics.commands[action] else { continue }
            for (what, old, new) in [("answer", then.toAnswer, now.toAnswer), ("effect", then.toEffect, now.toEffect)]
            where old.count >= Self.fewest && new.count >= Self.fewest {
                let p95Before = old.percentile(0.95)
                let p95After = new.percentile(0.95)
                if p95After > p95Before * Self.slowerBy, p95After - p95Before > Self.slowerAtLeastMs {
                    found.append(
                        .init(
                            kind: .command, subject: action,
                            detail: "\(action): time to the \(what) p95 \(Self.ms(p95Before)) ms with \(before.key.charger.firmware), \(Self.ms(p95After)) ms with \(after.key.charger.firmware)",
                            refs: []
                        )
                    )
                }
            }
            let judgedBefore = then.sent - then.notObservable - then.undecided
            let judgedAfter = now.sent - now.notObservable - now.undecided
            if judgedBefore >= Self.fewest, judgedAfter >= Self.fewest {
                let shareBefore = Double(then.carriedOut) / Double(judgedBefore)
                let shareAfter = Double(now.carriedOut) / Double(judgedAfter)
                if shareBefore - shareAfter > Self.carriedOutDrop {
                    found.append(
                        .init(
                            kind: .command, subject: action,
                            detail: "\(action): carried out \(then.carriedOut) of \(judgedBefore) with \(before.key.charger.firmware), \(now.carriedOut) of \(judgedAfter) with \(after.key.charger.firmware)",
                            refs: []
                        )
                    )
                }
            }
        }
        return found
    }

    /// The median of the transactions' median periodic intervals, before and after, each against the interval
    /// configured for it where the capture or the site says (a backend that configures another interval for the new
    /// firmware is no regression of it).
    private static func cadence(_ before: PairReport, _ after: PairReport, tolerance: Double) -> [FirmwareComparison.Regression] {
        func median(_ pair: PairReport) -> (interval: Double, ratio: Double?, ref: String)? {
            let rows = pair.statistics.cadence.rows.filter { ($0.medianInterval ?? 0) > 0 }
            guard !rows.isEmpty else { return nil }
            let sorted = rows.sorted { $0.medianInterval ?? 0 < $1.medianInterval ?? 0 }
            let row = sorted[sorted.count / 2]
            let ratios = rows.compactMap { row in row.configuredInterval.flatMap { $0 > 0 ? (row.medianInterval ?? 0) / $0 : nil } }.sorted()
            return (row.medianInterval ?? 0, ratios.count == rows.count ? ratios[ratios.count / 2] : nil, row.startRef)
        }
        guard let old = median(before), let new = median(after) else { return [] }
        let changed: Bool
        if let oldRatio = old.ratio, let newRatio = new.ratio {
            changed = oldRatio > 0 && abs(newRatio - oldRatio) / oldRatio > tolerance
        } else {
            changed = abs(new.interval - old.interval) / old.interval > tolerance
        }
        guard changed else { return [] }
        let against = old.ratio != nil && new.ratio != nil
            ? " (\(Self.seconds(old.ratio ?? 0))× and \(Self.seconds(new.ratio ?? 0))× the configured interval)" : ""
        return [
            .init(
                kind: .cadence, subject: "meter cadence",
                detail: "periodic readings every \(Self.seconds(old.interval)) s (median) with \(before.key.charger.firmware), every \(Self.seconds(new.interval)) s with \(after.key.charger.firmware)" + against,
                refs: [old.ref, new.ref]
            )
        ]
    }

    /// Features that worked before and are refused, or refused by the charger, after.
    private static func features(_ before: PairReport, _ after: PairReport) -> [FirmwareComparison.Regression] {
        after.statistics.features.compactMap { row in
            guard [.claimedButRefused, .notSupported].contains(row.verdict),
                let earlier = before.statistics.features.first(where: { $0.feature.name == row.feature.name && $0.version == row.version }),
                [.works, .usedButNotClaimed].contains(earlier.verdict)
            else { return nil }
            return .init(
                kind: .feature, subject: row.feature.label,
                detail: "\(row.feature.label) worked with \(before.key.charger.firmware) and is refused with \(after.key.charger.firmware): \(row.sentence)",
                refs: [earlier.firstWorking?.ref, row.chargerRefusal?.ref].compactMap { $0 }
            )
        }
    }

    static func ms(_ value: Double) -> String { String(Int(value.rounded())) }
    static func seconds(_ value: Double) -> String { Analyzer.format((value * 10).rounded() / 10) }
}
