import Foundation
import OCPPSchema
import OCPPWire
import WitnessPolicy

/// Output formats of `ocpp-witness report`.
public enum ReportFormat: String, Sendable, CaseIterable {
    case json, md, html, junit
}

extension AnalysisReport {
    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .json: return JSONWriter.string(self.json) + "\n"
        case .md: return self.markdown
        case .junit: return self.junit
        case .html: return self.html
        }
    }

    // MARK: Markdown

    public var markdown: String {
        var lines = [
            "# OCPP Witness report", "",
            "\(self.files.count) capture file(s), \(self.records) records, profile `\(self.profile.rawValue)`: "
                + "**\(self.count(.error)) errors, \(self.count(.warning)) warnings, \(self.count(.info)) notes**.", "",
            "## Pairs", "",
            "| charger (vendor model firmware) | backend | charge points | messages | errors | warnings | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for pair in self.pairs {
            let stats = pair.statistics
            lines.append(
                "| \(Self.md(pair.key.charger.label)) | \(Self.md(pair.key.backend)) | \(stats.chargePoints.count) | \(stats.messagesToCSMS + stats.messagesToCharger) | \(stats.severities[.error] ?? 0) | \(stats.severities[.warning] ?? 0) | **\(pair.verdict)**"
                    + (self.regression(of: pair.key).map { " · **regression** from \(Self.md($0.before))" } ?? "") + " |"
            )
        }
        lines += self.areaMarkdown
        lines += self.firmwareMarkdown
        lines += ["", "## Deviations by rule", "", "| rule | severity | count | clause |", "|---|---|---|---|"]
        for rule in self.countsByRule.keys.sorted() {
            lines.append("| `\(rule)` | \(RuleCatalog.byId[rule]?.severity.rawValue ?? "?") | \(self.countsByRule[rule] ?? 0) | \(RuleCatalog.byId[rule]?.clause ?? "") |")
        }
        lines += ["", "## Findings by side", "", "| side | findings | of which listed |", "|---|---|---|"]
        for side in Deviation.Side.allCases {
            let listed = self.deviations.filter { $0.side == side }
            lines.append("| \(side.rawValue) | \(self.countsBySide[side] ?? 0) | \(listed.count) |")
        }
        for side in Deviation.Side.allCases {
            let listed = self.deviations.filter { $0.side == side && $0.severity != .info }
            guard !listed.isEmpty else { continue }
            lines += ["", "### \(side == .fault ? "The policy's faults" : "The \(side.rawValue)'s") (\(listed.count) errors and warnings listed)", ""]
            for deviation in listed.prefix(20) {
                lines.append("- `\(deviation.rule)` \(Self.md(deviation.chargePoint ?? "")): \(Self.md(deviation.detail)) (\(Self.md(deviation.sideReason)); \(Self.md(deviation.ref ?? "")))")
            }
            if listed.count > 20 { lines.append("- and \(listed.count - 20) more") }
        }
        lines += ["", "## Deviations", "", "| rule | side | charge point | dir | action | id | path | detail | ref |", "|---|---|---|---|---|---|---|---|---|"]
        for deviation in self.deviations {
            lines.append(
                "| `\(deviation.rule)` | \(deviation.side.rawValue) | \(Self.md(deviation.chargePoint ?? "")) | \(deviation.direction?.rawValue ?? "") | \(Self.md(deviation.action ?? "")) | \(Self.md(deviation.messageId ?? "")) | `\(Self.md(deviation.path ?? ""))` | \(Self.md(deviation.detail)) | \(Self.md(deviation.ref ?? "")) |"
            )
        }
        if self.deviations.count < self.totalDeviations {
            lines.append("")
            lines.append("\(self.totalDeviations - self.deviations.count) more deviations are counted above but not listed.")
        }
        let commanded = self.pairs.filter { !$0.statistics.commands.isEmpty }
        if !commanded.isEmpty {
            lines += ["", "## Remote commands", ""]
            for pair in commanded {
                lines += ["### \(Self.md(pair.key.charger.label)) × \(Self.md(pair.key.backend))", ""] + CommandTable.markdown(pair.statistics.commands) + [""]
            }
        }
        let featured = self.pairs.filter { !FeatureMatrix.shown($0.statistics.features).isEmpty }
        if !featured.isEmpty {
            lines += ["", "## Features", ""]
            for pair in featured {
                lines += ["### \(Self.md(pair.key.charger.label)) × \(Self.md(pair.key.backend))", ""] + FeatureMatrix.markdown(pair.statistics.features) + [""]
            }
            lines += FeatureMatrix.sideBySideMarkdown(self)
        }
        let billed = self.pairs.filter { !$0.statistics.billing.isEmpty }
        if !billed.isEmpty {
            lines += ["", "## Billing", ""]
            for pair in billed {
                lines += ["### \(Self.md(pair.key.charger.label)) × \(Self.md(pair.key.backend))", ""] + BillingSheet.markdown(pair.statistics.billing) + [""]
            }
        }
        let cadence = self.pairs.filter { !$0.statistics.cadence.rows.isEmpty }
        if !cadence.isEmpty {
            lines += ["", "## Meter cadence", ""]
            for pair in cadence {
                lines += ["### \(Self.md(pair.key.charger.label)) × \(Self.md(pair.key.backend))", ""] + pair.statistics.cadence.markdown + [""]
            }
        }
        lines += ["", "## Response times (ms)", ""]
        for pair in self.pairs where !pair.statistics.latencies.isEmpty {
            lines += ["### \(Self.md(pair.key.charger.label)) × \(Self.md(pair.key.backend))", "", "| action | count | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"]
            for action in pair.statistics.latencies.keys.sorted() {
                guard let h = pair.statistics.latencies[action] else { continue }
                lines.append("| \(action) | \(h.count) | \(Self.ms(h.percentile(0.5))) | \(Self.ms(h.percentile(0.9))) | \(Self.ms(h.percentile(0.99))) | \(Self.ms(h.maximum)) |")
            }
            lines.append("")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Each charger model's firmware versions against the same backend: what got worse.
    var firmwareMarkdown: [String] {
        guard !self.firmware.isEmpty else { return [] }
        var lines = ["", "## Firmware regressions", ""]
        for comparison in self.firmware {
            let title = "\(comparison.vendor) \(comparison.model) × \(comparison.backend): \(comparison.before) → \(comparison.after)"
            if let reason = comparison.notCompared {
                lines += ["- \(Self.md(title)): not compared, \(Self.md(reason))."]
            } else if comparison.regressions.isEmpty {
                lines += ["- \(Self.md(title)): no regression."]
            } else {
                lines += ["", "### \(Self.md(title)): **regression**", "", "| kind | what | detail | evidence |", "|---|---|---|---|"]
                for regression in comparison.regressions {
                    lines.append("| \(regression.kind.rawValue) | \(Self.md(regression.subject)) | \(Self.md(regression.detail)) | \(Self.md(regression.refs.joined(separator: " "))) |")
                }
                lines.append("")
            }
        }
        return lines
    }

    /// The witness test: the matrix of pairs × areas, then each pair's checks with their evidence.
    var areaMarkdown: [String] {
        let scope = self.scope.map { " Scope `\($0.name)` (\($0.description)): required \($0.areas.map(\.rawValue).joined(separator: ", "))." } ?? ""
        var lines = [
            "", "## Witness test areas", "",
            self.checksLoaded == 0
                ? "No policy with checks was given (`report --policy FILE`), so every area is notRun." + scope
                : "\(self.checksLoaded) check(s) judged.\(scope)",
            "",
            "| charger | backend | " + WitnessArea.allCases.map(\.title).joined(separator: " | ") + (self.scope == nil ? " |" : " | scope |"),
            "|---|---|" + String(repeating: "---|", count: WitnessArea.allCases.count + (self.scope == nil ? 0 : 1)),
        ]
        for pair in self.pairs {
            var row = "| \(Self.md(pair.key.charger.label)) | \(Self.md(pair.key.backend)) | "
                + pair.areas.map { $0.verdict == .fail ? "**fail**" : $0.verdict.rawValue }.joined(separator: " | ") + " |"
            if self.scope != nil {
                row += pair.missingAreas.isEmpty ? " complete |" : " incomplete: \(pair.missingAreas.map(\.rawValue).joined(separator: ", ")) not run |"
            }
            lines.append(row)
        }
        for pair in self.pairs where pair.areas.contains(where: { !$0.checks.isEmpty }) {
            lines += ["", "### Checks: \(Self.md(pair.key.charger.label)) × \(Self.md(pair.key.backend))", "", "| area | check | verdict | detail | evidence |", "|---|---|---|---|---|"]
            for area in pair.areas {
                for check in area.checks {
                    lines.append("| \(area.area.rawValue) | \(Self.md(check.name)) | \(check.verdict == .fail ? "**fail**" : check.verdict.rawValue) | \(Self.md(check.detail + check.sideSentence)) | \(Self.md(check.refs.joined(separator: " "))) |")
                }
            }
        }
        return lines
    }

    // MARK: JUnit

    /// One test suite per pair, one test case per rule family (a family with errors fails) and per
    /// witness check (a failed check fails, one that did not run or proved nothing is skipped).
    public var junit: String {
        var suites: [String] = []
        var totalTests = 0
        var totalFailures = 0
        for pair in self.pairs {
            let name = "\(pair.key.charger.label) × \(pair.key.backend)"
            var cases: [String] = []
            var failures = 0
            for family in ["schema", "rpc", "tx", "security"] {
                let errors = self.deviations.filter {
                    $0.severity == .error && $0.rule.hasPrefix(family + ".") && pair.statistics.chargePoints.contains($0.chargePoint ?? "")
                }
                let counted = pair.statistics.deviations.filter { $0.key.hasPrefix(family + ".") && RuleCatalog.byId[$0.key]?.severity == .error }
                let count = counted.values.reduce(0, +)
                var testCase = "    <testcase classname=\"\(Self.xml(name))\" name=\"\(family)\""
                if count > 0 {
                    failures += 1
                    let body = errors.prefix(50).map { "\($0.rule) \($0.chargePoint ?? "") \($0.action ?? "") \($0.path ?? ""): \($0.detail) [\($0.ref ?? "")]" }
                    testCase += ">\n      <failure message=\"\(count) \(family) error(s): \(Self.xml(counted.keys.sorted().joined(separator: ", ")))\">\(Self.xml(body.joined(separator: "\n")))</failure>\n    </testcase>"
                } else {
                    testCase += "/>"
                }
                cases.append(testCase)
            }
            // One test case per area and check; a check that did not run is skipped, not passed.
            for area in pair.areas {
                for check in area.checks {
                    var testCase = "    <testcase classname=\"\(Self.xml(name)).\(area.area.rawValue)\" name=\"\(Self.xml(check.name))\""
                    let body = Self.xml(check.detail + check.sideSentence + (check.refs.isEmpty ? "" : " [" + check.refs.joined(separator: " ") + "]"))
                    switch check.verdict {
                    case .pass: testCase += "/>"
                    case .fail:
                        failures += 1
                        testCase += ">\n      <failure message=\"\(area.area.rawValue): \(Self.xml(check.name)) failed\">\(body)</failure>\n    </testcase>"
                    case .inconclusive, .notRun:
                        testCase += ">\n      <skipped message=\"\(check.verdict.rawValue)\">\(body)</skipped>\n    </testcase>"
                    }
                    cases.append(testCase)
                }
            }
            let features = FeatureMatrix.junit(pair.statistics.features, suite: name)
            cases += features.cases
            failures += features.failures
            totalTests += cases.count
            totalFailures += failures
            suites.append("  <testsuite name=\"\(Self.xml(name))\" tests=\"\(cases.count)\" failures=\"\(failures)\">\n\(cases.joined(separator: "\n"))\n  </testsuite>")
        }
        if !self.firmware.isEmpty {
            // One test case per firmware comparison: a regression fails it, one not compared is skipped.
            var cases: [String] = []
            var failures = 0
            for comparison in self.firmware {
                var testCase = "    <testcase classname=\"firmware\" name=\"\(Self.xml("\(comparison.vendor) \(comparison.model) × \(comparison.backend): \(comparison.before) → \(comparison.after)"))\""
                if let reason = comparison.notCompared {
                    testCase += ">\n      <skipped message=\"not compared\">\(Self.xml(reason))</skipped>\n    </testcase>"
                } else if comparison.regressions.isEmpty {
                    testCase += "/>"
                } else {
                    failures += 1
                    let body = comparison.regressions.map { "\($0.kind.rawValue) \($0.subject): \($0.detail)" + ($0.refs.isEmpty ? "" : " [" + $0.refs.joined(separator: " ") + "]") }
                    testCase += ">\n      <failure message=\"\(comparison.regressions.count) regression(s)\">\(Self.xml(body.joined(separator: "\n")))</failure>\n    </testcase>"
                }
                cases.append(testCase)
            }
            totalTests += cases.count
            totalFailures += failures
            suites.append("  <testsuite name=\"firmware regressions\" tests=\"\(cases.count)\" failures=\"\(failures)\">\n\(cases.joined(separator: "\n"))\n  </testsuite>")
        }
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ocpp-witness\" tests=\"\(totalTests)\" failures=\"\(totalFailures)\">\n\(suites.joined(separator: "\n"))\n</testsuites>\n"
    }

    // MARK: Helpers

    static func md(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }

    static func xml(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n", "\t", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func ms(_ value: Double) -> String { String(format: "%.2f", value) }
}
