import OCPPWire

/// The billing sheet in Markdown, HTML and CSV (docs/billing.md).
public enum BillingSheet {
    /// Stopped transactions kept per analysis; more are counted (`AnalysisReport.billingRowsDropped`), not listed.
    public static let rowsKept = BillingLedger.rowsKept

    static let columns = [
        "charge point", "connector", "transaction", "id token", "start", "stop", "register Wh", "interval Wh", "power Wh", "duration s", "charging s", "parking s",
        "backend", "expected", "difference", "findings",
    ]

    static func cells(_ row: BillingRow) -> [String] {
        func number(_ value: Double?) -> String { value.map(BillingRow.number) ?? "–" }
        return [
            row.chargePoint, row.connector ?? "", row.transaction, row.idToken ?? "", row.start ?? "", row.stop ?? "", number(row.registerWh), number(row.intervalWh),
            number(row.powerWh), number(row.durationSeconds), number(row.chargingSeconds), number(row.parkingSeconds),
            row.backendTotal.map { BillingRow.number($0) + (row.backendFinal ? "" : " (running)") } ?? "–", number(row.expected), number(row.difference),
            row.findings.joined(separator: " "),
        ]
    }

    static func markdown(_ rows: [BillingRow]) -> [String] {
        guard !rows.isEmpty else { return [] }
        var lines = ["| " + Self.columns.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: Self.columns.count)]
        for row in rows.prefix(200) { lines.append("| " + Self.cells(row).map(AnalysisReport.md).joined(separator: " | ") + " |") }
        if rows.count > 200 { lines += ["", "\(rows.count - 200) more transactions: `ocpp-witness billing` writes them all."] }
        return lines
    }

    static func html(_ rows: [BillingRow]) -> String {
        guard !rows.isEmpty else { return "" }
        let esc = AnalysisReport.xml
        var html = ["<h3>Billing</h3><table class=\"billing\"><tr>" + Self.columns.map { "<th>\(esc($0))</th>" }.joined() + "</tr>"]
        for row in rows.prefix(200) {
            let flagged = !row.findings.isEmpty
            html.append(
                "<tr" + (flagged ? " class=\"sev-warning\"" : "") + ">" + Self.cells(row).map { "<td>\(esc($0))</td>" }.joined() + "</tr>"
                    + (row.arithmetic.map { "<tr><td></td><td colspan=\"\(Self.columns.count - 1)\"><small>\(esc($0))</small></td></tr>" } ?? "")
            )
        }
        html.append("</table>")
        if rows.count > 200 { html.append("<p>\(rows.count - 200) more transactions: <code>ocpp-witness billing</code> writes them all.</p>") }
        return html.joined()
    }

    /// Every row of every pair as CSV: a header, then one line per transaction; numbers stay numbers.
    public static func csv(_ report: AnalysisReport) -> String {
        var lines = [BillingRow.csvColumns.joined(separator: ",")]
        for pair in report.pairs {
            for row in pair.statistics.billing { lines.append(row.csvCells.joined(separator: ",")) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ report: AnalysisReport) -> JSONValue {
        [
            "tool": .string("ocpp-witness"), "transactions": .array(report.pairs.flatMap { pair in pair.statistics.billing.map(\.json) }),
        ]
    }
}
