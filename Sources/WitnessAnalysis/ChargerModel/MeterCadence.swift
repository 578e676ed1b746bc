import Foundation
import OCPPWire
import WitnessPolicy

/// What a transaction's meter readings looked like: the intervals between its periodic readings by their own
/// timestamps, its clock-aligned readings against their grid, the measurands, phases and units present, and
/// values that are not decimals. Bounded per transaction whatever its length (docs/reports.md, "Meter cadence").
struct MeterCadence {
    /// Distinct periodic reading times.
    var periodic = 0
    var firstPeriodic: (ts: Int64, ref: String, run: Int)?
    var lastPeriodic: (ts: Int64, ref: String, run: Int)?
    /// Intervals between consecutive periodic readings, in tenths of a second, counted (at most `intervalsKept` values).
    var intervals: [Int64: Int] = [:]
    static let intervalsKept = 64
    /// The longest interval, and the longest that does not overlap an outage of the charger.
    var worstGap: Gap?
    var worstOnlineGap: Gap?
    var clockAligned = 0
    var offGrid: (timestamp: String, ref: String)?
    var offGridCount = 0
    /// Measurand (with phase, `Voltage L1-N`) → units seen; at most `measurandsKept`.
    var measurands: [String: Set<String>] = [:]
    static let measurandsKept = 24
    /// Configured measurands missing from periodic readings: the first reading lacking one, and all missing.
    var missing: (ref: String, measurands: Set<String>)?
    /// The measurands of the latest periodic reading time so far: a charger may split one reading over several
    /// messages with one timestamp (2.0.1 J02.FR.14), so a time is judged when the next one comes, or at the stop.
    var pending: (ts: Int64, present: Set<String>, ref: String)?
    var stopMissing: (ref: String, measurands: [String])?
    var notDecimal = 0
    var notDecimalReported = false

    struct Gap {
        var micros: Int64
        var from: String
        var to: String
    }

    /// The median interval in seconds (the upper one of an even count; nil with fewer than `intervalsNeeded` intervals).
    var medianSeconds: Double? {
        let total = self.intervals.values.reduce(0, +)
        guard total >= Self.intervalsNeeded else { return nil }
        var seen = 0
        for (tenths, count) in self.intervals.sorted(by: { $0.key < $1.key }) {
            seen += count
            if seen * 2 > total { return Double(tenths) / 10 }
        }
        return nil
    }

    /// Intervals a median needs before it is judged: one may be cut short by a stop or a restart, and of
    /// three the median is one that was not.
    static let intervalsNeeded = 3

    /// A periodic reading at `ts` in proxy run `run`; `overlapsOutage` says whether a time overlaps an outage.
    /// The time since the previous reading is an interval; a gap is online when it overlaps no outage and the
    /// proxy watched all of it (one run).
    mutating func periodicReading(at ts: Int64, ref: String, run: Int, overlapsOutage: (Int64, Int64) -> Bool) {
        if let last = self.lastPeriodic {
            guard ts > last.ts else { return }
            let micros = ts - last.ts
            let online = last.run == run && !overlapsOutage(last.ts, ts)
            // An interval the charger spent offline (it may not queue readings then) is no sample of its cadence.
            let tenths = (micros + 50_000) / 100_000
            if online, self.intervals[tenths] != nil || self.intervals.count < Self.intervalsKept { self.intervals[tenths, default: 0] += 1 }
            let gap = Gap(micros: micros, from: last.ref, to: ref)
            if micros > (self.worstGap?.micros ?? 0) { self.worstGap = gap }
            if online, micros > (self.worstOnlineGap?.micros ?? 0) { self.worstOnlineGap = gap }
        }
        self.periodic += 1
        if self.firstPeriodic == nil { self.firstPeriodic = (ts, ref, run) }
        self.lastPeriodic = (ts, ref, run)
    }

    /// A gap at the start (from the transaction's start to its first periodic reading) or at the end (from the
    /// last to the stop), or the whole transaction without one, counted like the gaps between readings.
    mutating func boundaryGap(from: (ts: Int64, ref: String), to: (ts: Int64, ref: String), online: Bool) {
        guard to.ts > from.ts else { return }
        let gap = Gap(micros: to.ts - from.ts, from: from.ref, to: to.ref)
        if gap.micros > (self.worstGap?.micros ?? 0) { self.worstGap = gap }
        if online, gap.micros > (self.worstOnlineGap?.micros ?? 0) { self.worstOnlineGap = gap }
    }

    /// At most `unitsKept` units per measurand (a charger changing its unit with every reading grows nothing).
    static let unitsKept = 4

    /// The measurands a periodic reading time has (in one or more messages), judged against `configured` once
    /// the time is complete.
    mutating func periodicMeasurands(at ts: Int64, _ present: Set<String>, ref: String, configured: [String]?) {
        // Only what is configured is kept: a charger naming new measurands in every message grows nothing.
        guard let configured else { return }
        let kept = present.intersection(configured)
        if let pending = self.pending, pending.ts == ts {
            self.pending?.present.formUnion(kept)
            return
        }
        self.settle(configured: configured)
        self.pending = (ts, kept, ref)
    }

    /// Judges the pending reading time's measurands (the next time came, or the transaction stopped).
    mutating func settle(configured: [String]?) {
        guard let pending = self.pending else { return }
        self.pending = nil
        guard let configured else { return }
        let missing = Set(configured).subtracting(pending.present)
        guard !missing.isEmpty else { return }
        if self.missing == nil { self.missing = (pending.ref, []) }
        self.missing?.measurands.formUnion(missing)
    }

    mutating func measurand(_ name: String, unit: String?) {
        let name = String(name.prefix(64))
        guard self.measurands[name] != nil || self.measurands.count < Self.measurandsKept else { return }
        var units = self.measurands[name] ?? []
        if let unit, units.count < Self.unitsKept { units.insert(String(unit.prefix(16))) }
        self.measurands[name] = units
    }

    /// Whether a 1.6 reading's text is a decimal number (`-12`, `0.5`), as OCPP 1.6 7.43 asks of raw values.
    static func isDecimal(_ text: String) -> Bool {
        var digits = 0
        var point = false
        for (index, byte) in text.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "-") where index == 0, UInt8(ascii: "+") where index == 0: continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1
            case UInt8(ascii: ".") where !point: point = true
            default: return false
            }
        }
        return digits > 0
    }

    /// Whether `ts` is on the grid of `interval` seconds that starts every midnight (1.6 3.16.2), in the time
    /// zone the timestamp names. `interval` is at most 30 days (`SettingValue.parse`); a day's grid holds at most one.
    static func onGrid(_ ts: Int64, timestamp: String, interval: Double, tolerance: Int64) -> Bool {
        guard interval > 0, interval <= SettingValue.longestSeconds else { return true }
        let step = Int64(interval * 1_000_000)
        let day: Int64 = 86_400_000_000
        guard step > 0 else { return true }
        let local = ts + Self.zoneOffsetMicros(timestamp)
        let sinceMidnight = ((local % day) + day) % day
        let remainder = sinceMidnight % step
        // Just before the next point of the grid, or before midnight, which starts the next day's grid.
        return remainder <= tolerance || min(step - remainder, day - sinceMidnight) <= tolerance
    }

    /// The offset of an RFC 3339 timestamp's zone (`+02:00`), in microseconds; 0 for `Z` or none.
    static func zoneOffsetMicros(_ timestamp: String) -> Int64 {
        let utf8 = Array(timestamp.utf8.suffix(6))
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "+") || utf8[0] == UInt8(ascii: "-"), utf8[3] == UInt8(ascii: ":"),
            let hours = Int64(String(decoding: utf8[1...2], as: UTF8.self)), let minutes = Int64(String(decoding: utf8[4...5], as: UTF8.self))
        else { return 0 }
        let sign: Int64 = utf8[0] == UInt8(ascii: "-") ? -1 : 1
        return sign * (hours * 3600 + minutes * 60) * 1_000_000
    }
}

/// One transaction's row of the cadence table of a report.
public struct CadenceRow: Sendable, Hashable {
    public var chargePoint: String
    public var transaction: String
    public var connector: String?
    public var startRef: String
    /// The configured interval and where it comes from (a capture line, or the site's policy).
    public var configuredInterval: Double?
    public var configuredFrom: String?
    public var periodicReadings: Int
    public var medianInterval: Double?
    public var worstGap: Double?
    public var clockAligned: Int
    public var offGrid: Int
    /// Measurands present (with phase), each with its units.
    public var measurands: [String: [String]]
    public var configuredMeasurands: [String]?
    public var missingMeasurands: [String]
    public var notDecimal: Int
    /// The findings on the transaction's metering (rule ids).
    public var findings: [String]
    /// Whether the transaction had stopped when the row was made.
    public var stopped: Bool

    var json: JSONValue {
        var measurands = JSONObject()
        for name in self.measurands.keys.sorted() { measurands[name] = .array((self.measurands[name] ?? []).map(JSONValue.string)) }
        return [
            "chargePoint": .string(self.chargePoint), "transaction": .string(self.transaction), "connector": self.connector.map(JSONValue.string) ?? .null,
            "start": .string(self.startRef), "configuredIntervalS": self.configuredInterval.map(JSONValue.double) ?? .null,
            "configuredFrom": self.configuredFrom.map(JSONValue.string) ?? .null, "periodicReadings": .int(self.periodicReadings),
            "medianIntervalS": self.medianInterval.map(JSONValue.double) ?? .null, "worstGapS": self.worstGap.map(JSONValue.double) ?? .null,
            "clockAligned": .int(self.clockAligned), "offGrid": .int(self.offGrid), "measurands": .object(measurands),
            "configuredMeasurands": self.configuredMeasurands.map { .array($0.map(JSONValue.string)) } ?? .null,
            "missingMeasurands": .array(self.missingMeasurands.map(JSONValue.string)), "notDecimal": .int(self.notDecimal),
            "findings": .array(self.findings.map(JSONValue.string)), "stopped": .bool(self.stopped),
        ]
    }
}

/// A pair's cadence table: every transaction counted, the first `rowsKept` listed (those with findings kept first).
public struct CadenceTable: Sendable {
    public var rows: [CadenceRow] = []
    public var transactions = 0
    public var withFindings = 0
    static let rowsKept = 100

    mutating func add(_ row: CadenceRow) {
        self.transactions += 1
        if !row.findings.isEmpty { self.withFindings += 1 }
        if self.rows.count < Self.rowsKept {
            self.rows.append(row)
        } else if !row.findings.isEmpty, let clean = self.rows.lastIndex(where: { $0.findings.isEmpty }) {
            // A full table gives up a clean row for one with findings: those are what a buyer looks for.
            self.rows.remove(at: clean)
            self.rows.append(row)
        }
    }

    var json: JSONValue {
        ["transactions": .int(self.transactions), "withFindings": .int(self.withFindings), "listed": .int(self.rows.count), "rows": .array(self.rows.map(\.json))]
    }
}

extension CadenceRow {
    /// How the row reads in a table: the numbers a buyer compares, and a cell per concern.
    var intervalText: String {
        (self.medianInterval.map { Analyzer.format($0) + " s" } ?? "–") + " / " + (self.configuredInterval.map { Analyzer.format($0) + " s" } ?? "not configured")
    }

    var measurandsText: String {
        self.measurands.keys.sorted().map { name in
            let units = self.measurands[name] ?? []
            return units.isEmpty ? name : "\(name) (\(units.joined(separator: ", ")))"
        }.joined(separator: "; ")
    }
}

extension CadenceTable {
    /// Markdown lines: one row per transaction listed.
    var markdown: [String] {
        guard !self.rows.isEmpty else { return [] }
        var lines = [
            "| charge point | transaction | connector | periodic readings | interval median / configured | worst gap | clock-aligned (off grid) | measurands (units) | missing | not decimal | findings |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows {
            lines.append(
                "| \(AnalysisReport.md(row.chargePoint)) | \(AnalysisReport.md(row.transaction)) (\(AnalysisReport.md(row.startRef))) | \(AnalysisReport.md(row.connector ?? "")) | \(row.periodicReadings) | \(row.intervalText) | "
                    + "\(row.worstGap.map { Analyzer.format($0) + " s" } ?? "–") | \(row.clockAligned) (\(row.offGrid)) | \(AnalysisReport.md(row.measurandsText)) | "
                    + "\(AnalysisReport.md(row.missingMeasurands.joined(separator: ", "))) | \(row.notDecimal) | \(row.findings.map { "`\($0)`" }.joined(separator: " ")) |"
            )
        }
        if self.transactions > self.rows.count {
            lines.append("")
            lines.append("\(self.transactions) transactions, \(self.withFindings) with findings; \(self.rows.count) listed (those with findings first).")
        }
        return lines
    }

    /// An HTML table: one row per transaction listed.
    var html: String {
        guard !self.rows.isEmpty else { return "" }
        var html = [
            "<h3>Meter cadence</h3><table><tr><th>charge point</th><th>transaction</th><th>connector</th><th>periodic readings</th><th>interval median / configured</th><th>worst gap</th><th>clock-aligned (off grid)</th><th>measurands (units)</th><th>missing</th><th>not decimal</th><th>findings</th></tr>"
        ]
        for row in self.rows {
            let esc = AnalysisReport.xml
            html.append(
                "<tr><td>\(esc(row.chargePoint))</td><td>\(esc(row.transaction)) <span class=\"ref\">\(esc(row.startRef))</span></td><td>\(esc(row.connector ?? ""))</td><td>\(row.periodicReadings)</td>"
                    + "<td>\(esc(row.intervalText))</td><td>\(row.worstGap.map { Analyzer.format($0) + " s" } ?? "–")</td><td>\(row.clockAligned) (\(row.offGrid))</td>"
                    + "<td>\(esc(row.measurandsText))</td><td>\(esc(row.missingMeasurands.joined(separator: ", ")))</td><td>\(row.notDecimal)</td>"
                    + "<td>\(row.findings.map { "<code>\(esc($0))</code>" }.joined(separator: " "))</td></tr>"
            )
        }
        html.append("</table>")
        if self.transactions > self.rows.count {
            html.append("<p>\(self.transactions) transactions, \(self.withFindings) with findings; \(self.rows.count) listed (those with findings first).</p>")
        }
        return html.joined()
    }
}
