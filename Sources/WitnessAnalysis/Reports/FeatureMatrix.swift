import OCPPWire
import WitnessPolicy

/// The feature matrix in Markdown, HTML and JUnit: per pair, and side by side for the pairs of one charger model
/// (docs/reports.md, "Features").
enum FeatureMatrix {
    static let columns = ["feature", "claim", "enabled", "declared", "used by charger / backend / policy", "charger answered (ok / refused / error)", "backend answered (ok / refused / error)", "verdict", "evidence"]

    /// Rows worth a line: every feature used, claimed or declared, and those every implementation must support.
    static func shown(_ rows: [FeatureRow]) -> [FeatureRow] {
        rows.filter { $0.used || $0.claim != .unknown || $0.declared != nil }
    }

    static func cells(_ row: FeatureRow) -> [String] {
        func answers(_ answers: FeatureAnswers) -> String { "\(answers.answered) / \(answers.refused) / \(answers.errors)" }
        let evidence = [row.chargerRefusal?.ref ?? row.backendRefusal?.ref ?? row.firstWorking?.ref, row.claimRef].compactMap { $0 }
        return [
            row.feature.label + (row.version == .v16 ? "" : " (\(row.version.rawValue))"), row.claim.rawValue, row.enabled.map { $0 ? "yes" : "no" } ?? "",
            row.declared?.rawValue ?? "", "\(row.byCharger) / \(row.byBackend) / \(row.byPolicy)", answers(row.chargerAnswers), answers(row.backendAnswers),
            row.verdict.rawValue, evidence.joined(separator: " "),
        ]
    }

    static func markdown(_ rows: [FeatureRow]) -> [String] {
        let shown = Self.shown(rows)
        guard !shown.isEmpty else { return [] }
        var lines = ["| " + Self.columns.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: Self.columns.count)]
        for row in shown {
            var cells = Self.cells(row).map(AnalysisReport.md)
            if [.claimedButRefused, .backendRefused].contains(row.verdict) { cells[7] = "**\(cells[7])**" }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines
    }

    static func html(_ rows: [FeatureRow]) -> String {
        let shown = Self.shown(rows)
        guard !shown.isEmpty else { return "" }
        let esc = AnalysisReport.xml
        var html = ["<h3>Features</h3><table class=\"features\"><tr>" + Self.columns.map { "<th>\(esc($0))</th>" }.joined() + "</tr>"]
        for row in shown {
            let cells = Self.cells(row)
            html.append(
                "<tr>" + cells.enumerated().map { index, cell in
                    switch index {
                    case 7: return "<td class=\"feature \(row.verdict.rawValue)\" title=\"\(esc(row.sentence))\">\(esc(cell))</td>"
                    case 8: return "<td>" + cell.split(separator: " ").map { "<code title=\"\(esc(String($0)))\">\(esc(String($0.split(separator: "/").last ?? $0)))</code>" }.joined(separator: " ") + "</td>"
                    default: return "<td>\(esc(cell))</td>"
                    }
                }.joined() + "</tr>"
            )
        }
        html.append("</table>")
        return html.joined()
    }

    /// The pairs of each charger model (vendor and model) seen with more than one backend or firmware, side by side:
    /// a row whose verdicts differ where the feature was used is "supported differently".
    static func models(_ pairs: [PairReport]) -> [(model: String, pairs: [PairReport])] {
        let grouped = Dictionary(grouping: pairs.filter { !$0.statistics.features.isEmpty }) { "\($0.key.charger.vendor) \($0.key.charger.model)" }
        return grouped.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value.sorted()) }
    }

    /// The features (label) any pair of the model used or claimed, with each pair's verdict (nil: not in its versions).
    static func sideBySide(_ pairs: [PairReport]) -> [(feature: String, verdicts: [FeatureVerdict?], differs: Bool)] {
        var labels: [String] = []
        for pair in pairs {
            for row in Self.shown(pair.statistics.features) where !labels.contains(Self.label(row)) { labels.append(Self.label(row)) }
        }
        return labels.map { label in
            let verdicts = pairs.map { pair in pair.statistics.features.first { Self.label($0) == label }?.verdict }
            let exercised = Set(verdicts.compactMap { $0 }.filter { ![.notExercised, .notClaimed, .notAnswered].contains($0) }.map(Self.outcome))
            return (label, verdicts, exercised.count > 1)
        }
    }

    /// Verdicts that say the same about whether the feature works with this pair.
    private static func outcome(_ verdict: FeatureVerdict) -> String {
        switch verdict {
        case .works, .usedButNotClaimed: "works"
        default: verdict.rawValue
        }
    }

    private static func label(_ row: FeatureRow) -> String { row.feature.label + (row.version == .v16 ? "" : " (\(row.version.rawValue))") }

    static func sideBySideMarkdown(_ report: AnalysisReport) -> [String] {
        var lines: [String] = []
        for (model, pairs) in Self.models(report.pairs) {
            lines += [
                "", "### \(AnalysisReport.md(model)): one model, \(pairs.count) pairs", "",
                "| feature | " + pairs.map { AnalysisReport.md("\($0.key.charger.firmware) × \($0.key.backend)") }.joined(separator: " | ") + " | |",
                "|---|" + String(repeating: "---|", count: pairs.count + 1),
            ]
            for (feature, verdicts, differs) in Self.sideBySide(pairs) {
                lines.append("| \(AnalysisReport.md(feature)) | " + verdicts.map { $0?.rawValue ?? "—" }.joined(separator: " | ") + " | \(differs ? "**supported differently**" : "") |")
            }
        }
        return lines.isEmpty ? [] : ["", "## Features side by side"] + lines
    }

    static func sideBySideHTML(_ report: AnalysisReport) -> String {
        let esc = AnalysisReport.xml
        var html: [String] = []
        for (model, pairs) in Self.models(report.pairs) {
            html.append("<h3>\(esc(model)): one model, \(pairs.count) pairs</h3><table class=\"features\"><tr><th>feature</th>")
            html.append(pairs.map { "<th>\(esc($0.key.charger.firmware)) × \(esc($0.key.backend))</th>" }.joined() + "<th></th></tr>")
            for (feature, verdicts, differs) in Self.sideBySide(pairs) {
                html.append(
                    "<tr><td>\(esc(feature))</td>" + verdicts.map { verdict in
                        verdict.map { "<td class=\"feature \($0.rawValue)\">\($0.rawValue)</td>" } ?? "<td class=\"none\">—</td>"
                    }.joined() + "<td>\(differs ? "<b>supported differently</b>" : "")</td></tr>"
                )
            }
            html.append("</table>")
        }
        return html.isEmpty ? "" : "<h2>Features side by side</h2>" + html.joined()
    }

    /// JUnit test cases: a feature refused against its claim fails, one not exercised is skipped.
    static func junit(_ rows: [FeatureRow], suite name: String) -> (cases: [String], failures: Int) {
        var cases: [String] = []
        var failures = 0
        for row in Self.shown(rows) {
            let xml = AnalysisReport.xml
            var testCase = "    <testcase classname=\"\(xml(name)).features\" name=\"\(xml(Self.label(row)))\""
            switch row.verdict {
            case .claimedButRefused, .backendRefused:
                failures += 1
                testCase += ">\n      <failure message=\"\(row.verdict.rawValue)\">\(xml(row.sentence))</failure>\n    </testcase>"
            case .notExercised, .notClaimed, .notAnswered:
                testCase += ">\n      <skipped message=\"\(row.verdict.rawValue)\">\(xml(row.sentence))</skipped>\n    </testcase>"
            case .works, .usedButNotClaimed, .notSupported:
                testCase += "/>"
            }
            cases.append(testCase)
        }
        return (cases, failures)
    }
}
