import OCPPWire
import WitnessPolicy

/// The verdict of a witness check or area. A verdict is evidence: `pass` and `fail` name the capture
/// lines they rest on; a check whose stimulus never happened is `notRun`, never `pass`.
public enum CheckVerdict: String, Sendable, Hashable, CaseIterable {
    case pass, fail, inconclusive, notRun
}

/// What one check came to for one pair, over every time its stimulus happened.
public struct CheckResult: Sendable, Hashable {
    public var name: String
    public var area: WitnessArea
    public var description: String
    public var verdict: CheckVerdict
    /// One sentence: what happened, with the numbers that decided it.
    public var detail: String
    /// Capture lines (`file:line`) that prove the verdict: the stimulus and the event, for the occurrences shown.
    public var refs: [String]
    /// How many stimuli ended in each verdict.
    public var counts: [CheckVerdict: Int]
    /// For a failed check, the side responsible and why; for one left inconclusive because the policy's fault
    /// explains what did not happen, `fault` (docs/reports.md, "Whose side").
    public var side: Deviation.Side?
    public var sideReason: String?
    /// Occurrences that would have failed but that the policy's fault explains (counted inconclusive).
    public var explainedByFault = 0

    public init(
        name: String, area: WitnessArea, description: String, verdict: CheckVerdict, detail: String, refs: [String], counts: [CheckVerdict: Int]
    ) {
        self.name = name
        self.area = area
        self.description = description
        self.verdict = verdict
        self.detail = detail
        self.refs = refs
        self.counts = counts
    }

    /// " Side: charger (why)." for a failed check, or one the policy's fault explains; empty otherwise.
    public var sideSentence: String {
        guard let side else { return "" }
        return " Side: \(side.rawValue)" + (self.sideReason.map { " (\($0))." } ?? ".")
    }

    public var json: JSONValue {
        var counts = JSONObject()
        for verdict in [CheckVerdict.pass, .fail, .inconclusive] { counts[verdict.rawValue] = .int(self.counts[verdict] ?? 0) }
        if self.explainedByFault > 0 { counts["explainedByFault"] = .int(self.explainedByFault) }
        var object: JSONObject = [
            "name": .string(self.name), "verdict": .string(self.verdict.rawValue), "detail": .string(self.detail),
            "refs": .array(self.refs.map(JSONValue.string)), "stimuli": .object(counts), "description": .string(self.description),
        ]
        if let side { object["side"] = .string(side.rawValue) }
        if let sideReason { object["sideReason"] = .string(sideReason) }
        return .object(object)
    }
}

/// The checks of one test area for one pair, and the area's verdict.
public struct AreaResult: Sendable, Hashable {
    public var area: WitnessArea
    public var checks: [CheckResult]

    public init(area: WitnessArea, checks: [CheckResult]) {
        self.area = area
        self.checks = checks
    }

    /// `fail` when a check failed; `pass` when every check passed; `notRun` when none ran (or the area
    /// has no checks); otherwise `inconclusive`: some ran without proof either way, or some did not run.
    public var verdict: CheckVerdict {
        let verdicts = self.checks.map(\.verdict)
        if verdicts.contains(.fail) { return .fail }
        if verdicts.isEmpty || verdicts.allSatisfy({ $0 == .notRun }) { return .notRun }
        if verdicts.allSatisfy({ $0 == .pass }) { return .pass }
        return .inconclusive
    }

    public var json: JSONValue {
        ["area": .string(self.area.rawValue), "verdict": .string(self.verdict.rawValue), "checks": .array(self.checks.map(\.json))]
    }
}
