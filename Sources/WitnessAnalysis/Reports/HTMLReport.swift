import Foundation
import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessPolicy

extension AnalysisReport {
    /// A self-contained page (no network): pair matrix, deviations with their messages, latency charts.
    public var html: String {
        let esc = Self.xml
        var body: [String] = []
        body.append("<h1>OCPP Witness report</h1>")
        body.append(
            "<p class=\"meta\">\(self.files.count) capture file(s), \(self.records) records, profile <code>\(self.profile.rawValue)</code>, generated \(esc(Timestamp.now().rfc3339)) by ocpp-witness \(CaptureFormat.toolVersion).</p>"
        )
        body.append(
            "<div class=\"totals\"><span class=\"sev error\">\(self.count(.error)) errors</span><span class=\"sev warning\">\(self.count(.warning)) warnings</span><span class=\"sev info\">\(self.count(.info)) notes</span></div>"
        )

        // Pair matrix: chargers down, backends across.
        let backends = Array(Set(self.pairs.map(\.key.backend))).sorted()
        let chargers = Array(Set(self.pairs.map(\.key.charger))).sorted()
        body.append("<h2>Charger × backend</h2><table class=\"matrix\"><tr><th>charger (vendor · model · firmware)</th>")
        body.append(backends.map { "<th>\(esc($0))</th>" }.joined())
        body.append("</tr>")
        for charger in chargers {
            body.append("<tr><th class=\"row\">\(esc(charger.vendor)) · \(esc(charger.model)) · \(esc(charger.firmware))</th>")
            for backend in backends {
                guard let pair = self.pairs.first(where: { $0.key.charger == charger && $0.key.backend == backend }) else {
                    body.append("<td class=\"none\">—</td>")
                    continue
                }
                let stats = pair.statistics
                body.append(
                    "<td class=\"verdict \(pair.verdict)\"><b>\(pair.verdict.uppercased())</b><br>\(stats.chargePoints.count) charger(s), \(stats.messagesToCSMS + stats.messagesToCharger) messages<br>\(stats.severities[.error] ?? 0) errors, \(stats.severities[.warning] ?? 0) warnings"
                        + (self.regression(of: pair.key).map { "<br><a class=\"regression\" href=\"#firmware\">REGRESSION from \(esc($0.before))</a>" } ?? "") + "</td>"
                )
            }
            body.append("</tr>")
        }
        body.append("</table>")
        body.append(self.areaMatrixHTML(chargers: chargers, backends: backends))
        body.append(FeatureMatrix.sideBySideHTML(self))
        body.append(self.firmwareHTML)

        // What was exercised and the deviations per pair.
        for (index, pair) in self.pairs.enumerated() {
            let stats = pair.statistics
            body.append("<section><h2 id=\"pair-\(index)\">\(esc(pair.key.charger.label)) × \(esc(pair.key.backend)) <span class=\"verdict \(pair.verdict)\">\(pair.verdict)</span></h2>")
            body.append(
                "<p>Charge points: \(esc(stats.chargePoints.sorted().joined(separator: ", "))). Connections: \(stats.connections). Messages: \(stats.messagesToCSMS) to the backend, \(stats.messagesToCharger) to chargers. Security profiles: \(Self.securityProfiles(stats.securityProfiles)).</p>"
            )
            body.append(Self.areaChecksHTML(pair, index: index))
            if !stats.deviations.isEmpty {
                body.append("<table><tr><th>rule</th><th>severity</th><th>count</th><th>meaning</th></tr>")
                for rule in stats.deviations.keys.sorted() {
                    let info = RuleCatalog.byId[rule]
                    body.append(
                        "<tr><td><code>\(esc(rule))</code></td><td class=\"sev \(info?.severity.rawValue ?? "")\">\(info?.severity.rawValue ?? "")</td><td>\(stats.deviations[rule] ?? 0)</td><td>\(esc(info?.summary ?? ""))</td></tr>"
                    )
                }
                body.append("</table>")
            }
            body.append(CommandTable.html(stats.commands))
            body.append(FeatureMatrix.html(stats.features))
            body.append(stats.cadence.html)
            body.append(BillingSheet.html(stats.billing))
            if !stats.latencies.isEmpty {
                body.append("<h3>Response times per action</h3>")
                body.append(Self.latencyChart(stats.latencies))
            }
            body.append("</section>")
        }

        body.append("<h2>Deviations</h2>")
        if self.deviations.isEmpty {
            body.append("<p>None.</p>")
        } else {
            body.append("<table class=\"deviations\"><tr><th>time</th><th>rule</th><th>side</th><th>charge point</th><th>dir</th><th>action</th><th>path</th><th>detail</th><th>message</th></tr>")
            for deviation in self.deviations {
                // The file's name and line; the full path is in the tooltip.
                let ref = deviation.ref ?? ""
                let shortRef = ref.split(separator: "/").last.map(String.init) ?? ref
                let message = deviation.evidence.map {
                    "<details><summary title=\"\(esc(ref))\">\(esc(shortRef))</summary><pre>\(esc($0))</pre></details>"
                } ?? "<span title=\"\(esc(ref))\">\(esc(shortRef))</span>"
                let ts = deviation.ts ?? ""
                let time = ts.count >= 23 ? String(ts.dropFirst(11).prefix(12)) : ts
                body.append(
                    "<tr class=\"sev-\(deviation.severity.rawValue)\"><td class=\"nowrap\" title=\"\(esc(ts))\">\(esc(time))</td><td><code title=\"\(esc(RuleCatalog.byId[deviation.rule]?.clause ?? ""))\">\(esc(deviation.rule))</code><br><small>\(esc(RuleCatalog.byId[deviation.rule]?.clause ?? ""))</small></td><td title=\"\(esc(deviation.sideReason))\">\(esc(deviation.side.rawValue))</td><td class=\"nowrap\">\(esc(deviation.chargePoint ?? ""))</td><td>\(esc(deviation.direction?.rawValue ?? ""))</td><td>\(esc(deviation.action ?? ""))</td><td><code>\(esc(deviation.path ?? ""))</code></td><td>\(esc(deviation.detail))</td><td>\(message)</td></tr>"
                )
            }
            body.append("</table>")
            if self.deviations.count < self.totalDeviations {
                body.append("<p>\(self.totalDeviations - self.deviations.count) more deviations are counted but not listed.</p>")
            }
        }
        if !self.readIssues.isEmpty {
            body.append("<h2>Capture read issues</h2><ul>" + self.readIssues.map { "<li>\(esc($0.description))</li>" }.joined() + "</ul>")
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>OCPP Witness report</title>
            <style>
            body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1440px;color:#1d2330;padding:0 16px}
            h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
            .meta{color:#5b6475}table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:left;vertical-align:top}
            th{background:#f3f5f9}.matrix td{text-align:center}.matrix th.row{text-align:left}
            .verdict.pass{background:#e3f6e8;color:#17652f}.verdict.warn{background:#fff4d6;color:#7a5500}.verdict.fail{background:#fde4e4;color:#9b1c1c}
            span.verdict{font-size:12px;padding:2px 8px;border-radius:10px;vertical-align:middle}
            span.side{font-size:12px;font-weight:600;padding:0 6px;border-radius:8px;background:#eef1f6}span.side.fault{background:#f1ecfb}
            .totals .sev{display:inline-block;margin-right:12px;padding:4px 10px;border-radius:6px;font-weight:600}
            .sev.error{background:#fde4e4;color:#9b1c1c}.sev.warning{background:#fff4d6;color:#7a5500}.sev.info{background:#e6effb;color:#1f4f8f}
            tr.sev-error td:first-child{border-left:4px solid #d64545}tr.sev-warning td:first-child{border-left:4px solid #e0a800}tr.sev-info td:first-child{border-left:4px solid #4a7fd0}
            pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fb;padding:6px;margin:4px 0;font-size:12px}
            code{font-size:12px}.nowrap{white-space:nowrap}svg text{font:12px system-ui,sans-serif;fill:#1d2330}
            .areas{display:grid;grid-template-columns:repeat(3,1fr);gap:3px;min-width:330px}.areas a{display:block;padding:2px 4px;border-radius:4px;font-size:11px;text-decoration:none;text-align:left}
            .area.pass{background:#e3f6e8;color:#17652f}.area.fail{background:#fde4e4;color:#9b1c1c;font-weight:600}.area.inconclusive{background:#fff4d6;color:#7a5500}.area.notRun{background:#eef0f4;color:#6b7385}
            td.area{white-space:nowrap}.scope{font-size:12px;margin-top:4px}
            a.regression{display:inline-block;margin-top:4px;padding:1px 6px;border-radius:6px;background:#9b1c1c;color:#fff;font-size:11px;font-weight:600;text-decoration:none}
            td.feature{white-space:nowrap;font-size:12px}td.feature.works,td.feature.usedButNotClaimed{background:#e3f6e8;color:#17652f}
            td.feature.claimedButRefused,td.feature.backendRefused{background:#fde4e4;color:#9b1c1c;font-weight:600}
            td.feature.notSupported,td.feature.notAnswered{background:#fff4d6;color:#7a5500}td.feature.notExercised,td.feature.notClaimed{background:#eef0f4;color:#6b7385}
            </style></head><body>
            \(body.joined(separator: "\n"))
            </body></html>

            """
    }

    /// Each charger model's firmware versions against the same backend, with what got worse.
    var firmwareHTML: String {
        guard !self.firmware.isEmpty else { return "" }
        let esc = Self.xml
        var html = ["<h2 id=\"firmware\">Firmware regressions</h2><table><tr><th>charger</th><th>backend</th><th>before → after</th><th>verdict</th><th>what got worse</th></tr>"]
        for comparison in self.firmware {
            let verdict = comparison.notCompared != nil ? "not compared" : comparison.regressions.isEmpty ? "no regression" : "regression"
            let cssClass = comparison.isRegression ? "fail" : comparison.notCompared != nil ? "notRun" : "pass"
            let details = comparison.notCompared.map { "<p>\(esc($0))</p>" }
                ?? "<ul>" + comparison.regressions.map { regression in
                    "<li><b>\(esc(regression.kind.rawValue))</b> \(esc(regression.detail))"
                        + regression.refs.map { " <code title=\"\(esc($0))\">\(esc($0.split(separator: "/").last.map(String.init) ?? $0))</code>" }.joined() + "</li>"
                }.joined() + "</ul>"
            html.append(
                "<tr><td>\(esc(comparison.vendor)) · \(esc(comparison.model))</td><td>\(esc(comparison.backend))</td><td>\(esc(comparison.before)) → \(esc(comparison.after))</td><td class=\"area \(cssClass)\">\(verdict)</td><td>\(comparison.regressions.isEmpty && comparison.notCompared == nil ? "" : details)</td></tr>"
            )
        }
        html.append("</table>")
        return html.joined()
    }

    /// "profile 3 (client certificate) ×2, profile 0 (no credentials) ×1".
    static func securityProfiles(_ profiles: [Int: Int]) -> String {
        let names = [0: "no credentials", 1: "Basic auth over ws", 2: "Basic auth over TLS", 3: "client certificate"]
        guard !profiles.isEmpty else { return "unknown" }
        return profiles.keys.sorted(by: >).map { "profile \($0) (\(names[$0] ?? "?")) ×\(profiles[$0] ?? 0)" }.joined(separator: ", ")
    }

    /// Chargers down, backends across; in each cell a badge per test area linking to its checks.
    func areaMatrixHTML(chargers: [ChargerIdentity], backends: [String]) -> String {
        let esc = Self.xml
        var html = ["<h2>Witness test areas</h2>"]
        html.append(
            self.checksLoaded == 0
                ? "<p>No policy with checks was given (<code>report --policy FILE</code>), so every area is notRun.</p>"
                : "<p>\(self.checksLoaded) check(s) judged. A cell links to its evidence; <b>notRun</b> means the stimulus never happened.</p>"
        )
        if let scope = self.scope {
            html.append("<p>Scope <b>\(esc(scope.name))</b> (\(esc(scope.description))): required \(esc(scope.areas.map(\.title).joined(separator: ", "))).</p>")
        }
        html.append("<table class=\"matrix areas-matrix\"><tr><th>charger (vendor · model · firmware)</th>" + backends.map { "<th>\(esc($0))</th>" }.joined() + "</tr>")
        for charger in chargers {
            html.append("<tr><th class=\"row\">\(esc(charger.vendor)) · \(esc(charger.model)) · \(esc(charger.firmware))</th>")
            for backend in backends {
                guard let index = self.pairs.firstIndex(where: { $0.key.charger == charger && $0.key.backend == backend }) else {
                    html.append("<td class=\"none\">—</td>")
                    continue
                }
                let pair = self.pairs[index]
                let badges = pair.areas.map { area in
                    "<a class=\"area \(area.verdict.rawValue)\" href=\"#pair-\(index)-\(area.area.rawValue)\" title=\"\(esc(area.area.title)): \(area.verdict.rawValue)\">\(esc(area.area.title)): \(area.verdict.rawValue)</a>"
                }.joined()
                let scope = pair.scope.map { _ in
                    pair.missingAreas.isEmpty
                        ? "<div class=\"scope\">scope complete</div>"
                        : "<div class=\"scope\">incomplete: \(esc(pair.missingAreas.map(\.title).joined(separator: ", "))) not run</div>"
                } ?? ""
                html.append("<td><div class=\"areas\">\(badges)</div>\(scope)</td>")
            }
            html.append("</tr>")
        }
        html.append("</table>")
        return html.joined(separator: "\n")
    }

    /// A pair's checks, area by area, each with its sentence and the capture lines behind it.
    static func areaChecksHTML(_ pair: PairReport, index: Int) -> String {
        let esc = Self.xml
        var html = ["<h3>Test areas</h3><table><tr><th>area</th><th>verdict</th><th>check</th><th>verdict</th><th>detail</th><th>evidence</th></tr>"]
        for area in pair.areas {
            let anchor = "pair-\(index)-\(area.area.rawValue)"
            let head = "<td class=\"area \(area.verdict.rawValue)\" id=\"\(anchor)\">\(esc(area.area.title))</td><td class=\"area \(area.verdict.rawValue)\">\(area.verdict.rawValue)</td>"
            guard !area.checks.isEmpty else {
                html.append("<tr>\(head)<td colspan=\"4\">no check for this area in the policies given</td></tr>")
                continue
            }
            for (number, check) in area.checks.enumerated() {
                let refs = check.refs.map { "<code title=\"\(esc($0))\">\(esc($0.split(separator: "/").last.map(String.init) ?? $0))</code>" }.joined(separator: " ")
                html.append(
                    "<tr>\(number == 0 ? head : "<td></td><td></td>")<td>\(esc(check.name))</td><td class=\"area \(check.verdict.rawValue)\">\(check.verdict.rawValue)</td><td>\(esc(check.detail))\(check.side.map { "<br><span class=\"side \($0.rawValue)\">\($0.rawValue)'s side</span> " + esc(check.sideReason ?? "") } ?? "")</td><td>\(refs)</td></tr>"
                )
            }
        }
        html.append("</table>")
        return html.joined(separator: "\n")
    }

    /// Horizontal bars per action: p50 solid, p99 light, on a shared millisecond scale.
    static func latencyChart(_ latencies: [String: LatencyHistogram]) -> String {
        let actions = latencies.keys.sorted()
        let rowHeight = 22
        let labelWidth = 200
        let barWidth = 520
        let height = actions.count * rowHeight + 30
        let maximum = max(latencies.values.map { $0.percentile(0.99) }.max() ?? 1, 0.001)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(labelWidth + barWidth + 300)\" height=\"\(height)\" role=\"img\" aria-label=\"response times per action\">"
        for (index, action) in actions.enumerated() {
            guard let histogram = latencies[action] else { continue }
            let y = index * rowHeight + 4
            let p50 = histogram.percentile(0.5)
            let p99 = histogram.percentile(0.99)
            let w50 = max(1, Int(Double(barWidth) * p50 / maximum))
            let w99 = max(1, Int(Double(barWidth) * p99 / maximum))
            svg += "<text x=\"0\" y=\"\(y + 14)\">\(xml(action))</text>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y)\" width=\"\(w99)\" height=\"16\" fill=\"#b9cdef\"/>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y)\" width=\"\(w50)\" height=\"16\" fill=\"#3f6fc4\"/>"
            svg += "<text x=\"\(labelWidth + w99 + 6)\" y=\"\(y + 13)\">p50 \(ms(p50)) · p99 \(ms(p99)) ms (n=\(histogram.count))</text>"
        }
        svg += "<text x=\"\(labelWidth)\" y=\"\(height - 4)\">0 ms</text><text x=\"\(labelWidth + barWidth - 60)\" y=\"\(height - 4)\">\(ms(maximum)) ms</text>"
        return svg + "</svg>"
    }
}
