import Foundation
import OCPPWire
import WitnessModel
import WitnessPolicy

/// What a transaction's bill rests on, gathered while it runs: who charged, how long the EV was charging and how
/// long it stood connected without (docs/billing.md).
struct BillingState {
    var idToken: String?
    /// `charging`, `parking` (connected, not charging) or `other`, since when (the charger's clock).
    var state: String?
    var since: Int64?
    var chargingMicros: Int64 = 0
    var parkingMicros: Int64 = 0
    var sawState = false
    /// A state came without a timestamp of the charger's: the times would mix two clocks, so none are given.
    var untimed = false
    /// The sum of periodic Energy.Active.Import.Interval readings, where the charger sends them.
    var intervalWh: Double?
    /// The first register reading, where the start carried none (2.0.1 with TxStartedMeasurands empty).
    var firstRegisterWh: Double?
    /// Power readings integrated over time (trapezoids between readings, Wh), and the latest reading (W, the
    /// charger's clock).
    var powerWh: Double?
    var lastPower: (watts: Double, ts: Int64)?

    /// Adds a power reading at `ts`: the trapezoid since the last one (at most an hour apart, else the gap is not filled).
    mutating func power(_ watts: Double, at ts: Int64?) {
        guard let ts, watts.isFinite, abs(watts) < 1e9 else { return }
        if let last = self.lastPower, ts > last.ts, ts - last.ts <= 3_600_000_000 {
            self.powerWh = (self.powerWh ?? 0) + (last.watts + watts) / 2 * Double(ts - last.ts) / 3_600_000_000
        }
        if self.lastPower.map({ ts > $0.ts }) ?? true { self.lastPower = (watts, ts) }
    }

    /// The Power.Active.Import readings of a meterValue array with their times (W), but the Transaction.End one.
    static func powerReadings(_ meterValues: JSONValue?, version: OCPPVersion) -> [(watts: Double, ts: Int64?)] {
        MeterReadings.values("Power.Active.Import", unit: "W", in: meterValues, version: version, limit: 64) {
            $0["context"]?.stringValue != "Transaction.End"
        }.map { ($0.value, $0.ts) }
    }

    /// 1.6 StatusNotification statuses and 2.0.1 chargingState values, as billing counts them.
    static func category(_ status: String) -> String {
        switch status {
        case "Charging": return "charging"
        case "SuspendedEV", "SuspendedEVSE", "Finishing", "EVConnected": return "parking"
        default: return "other"
        }
    }

    /// The transaction's state changed at `ts` (the charger's clock; nil: the message had no timestamp). A change
    /// dated before the last one (delivered out of order) is left out rather than run the clock backwards.
    mutating func enter(_ status: String, at ts: Int64?) {
        guard let ts else {
            self.untimed = true
            return
        }
        if let since, ts < since { return }
        self.close(at: ts)
        self.state = Self.category(status)
        self.since = ts
        self.sawState = true
    }

    /// Adds the time since the last change to the state it was in (at most a week at a time, and a year in all).
    mutating func close(at ts: Int64?) {
        guard let ts, let since, let state, ts > since else { return }
        let elapsed = min(ts - since, 7 * 86_400_000_000)
        let year: Int64 = 366 * 86_400_000_000
        if state == "charging" { self.chargingMicros = min(self.chargingMicros + elapsed, year) }
        if state == "parking" { self.parkingMicros = min(self.parkingMicros + elapsed, year) }
        self.since = ts
    }

    /// Adds `wh` of an Energy.Active.Import.Interval reading.
    mutating func interval(_ wh: Double) {
        guard wh.isFinite, abs(wh) < 1e12 else { return }
        self.intervalWh = (self.intervalWh ?? 0) + wh
    }

    /// The periodic Energy.Active.Import.Interval readings of a meterValue array, in Wh: at the outlet, of no phase,
    /// `Sample.Periodic` only (clock-aligned ones cover the same energy, and the stop's readings repeat them).
    static func intervalReadings(_ meterValues: JSONValue?, version: OCPPVersion) -> [Double] {
        MeterReadings.values("Energy.Active.Import.Interval", unit: "Wh", in: meterValues, version: version) { sample in
            (sample["context"]?.stringValue ?? "Sample.Periodic") == "Sample.Periodic" && (sample["location"]?.stringValue ?? "Outlet") == "Outlet"
                && (sample["value"]?.stringValue.map(MeterCadence.isDecimal) ?? true)
        }.map(\.value)
    }
}

/// One transaction's line of the billing sheet: energy by each source, times, what the backend charged and what
/// the site's tariff says it should have (docs/billing.md).
public struct BillingRow: Sendable, Hashable {
    public var chargePoint: String
    public var transaction: String
    public var connector: String?
    public var idToken: String?
    public var version: OCPPVersion
    public var start: String?
    public var stop: String?
    public var startRef: String
    public var stopRef: String
    /// The register's energy from start to stop.
    public var registerWh: Double?
    /// The sum of the Energy.Active.Import.Interval readings, where there are any.
    public var intervalWh: Double?
    /// Power readings integrated over time (shown, not judged: readings minutes apart miss what happened between).
    public var powerWh: Double?
    public var durationSeconds: Double?
    /// Time charging and time connected without charging; nil where the capture shows no state.
    public var chargingSeconds: Double?
    public var parkingSeconds: Double?
    /// What the backend said it costs (2.0.1 totalCost of the Ended event's answer, else the latest running cost), and where.
    public var backendTotal: Double?
    public var backendFinal = false
    public var costRef: String?
    /// With a tariff: the price it gives, how, and the difference to the backend's.
    public var expected: Double?
    public var arithmetic: String?
    public var difference: Double?
    public var findings: [String] = []
    /// Whether signed meter values (OCMF) came with it, and whether every one verified (nil: some could not be checked).
    public var signed = false
    public var signatureValid: Bool?
    var pair: PairKey

    public static let csvColumns = [
        "chargePoint", "connector", "transaction", "idToken", "version", "start", "stop", "registerWh", "intervalWh", "powerWh", "durationS", "chargingS",
        "parkingS",
        "signed", "signatureValid", "backendTotal", "backendFinal", "expected", "difference", "startRef", "stopRef", "costRef", "findings",
    ]

    /// The CSV cells: numbers stay numbers, text is quoted.
    public var csvCells: [String] {
        // Quoted; a leading = + - @ or control character is escaped with ' so that a spreadsheet runs no formula.
        func text(_ value: String?) -> String {
            guard var value else { return "" }
            if let first = value.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { value = "'" + value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        func number(_ value: Double?) -> String { value.flatMap { $0.isFinite && abs($0) < 1e15 ? Self.number($0) : nil } ?? "" }
        return [
            text(self.chargePoint), text(self.connector), text(self.transaction), text(self.idToken), text(self.version.rawValue), text(self.start), text(self.stop),
            number(self.registerWh), number(self.intervalWh), number(self.powerWh), number(self.durationSeconds), number(self.chargingSeconds), number(self.parkingSeconds),
            String(self.signed), self.signatureValid.map(String.init) ?? "", number(self.backendTotal), self.backendTotal == nil ? "" : String(self.backendFinal), number(self.expected), number(self.difference),
            text(self.startRef), text(self.stopRef), text(self.costRef), text(self.findings.joined(separator: " ")),
        ]
    }

    static func number(_ value: Double) -> String {
        let rounded = (value * 10_000).rounded() / 10_000
        return rounded.plainText
    }

    public var json: JSONValue {
        func number(_ value: Double?) -> JSONValue { value.flatMap { $0.isFinite && abs($0) < 1e15 ? JSONValue.double((($0 * 10_000).rounded()) / 10_000) : nil } ?? .null }
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        return [
            "chargePoint": .string(self.chargePoint), "connector": text(self.connector), "transaction": .string(self.transaction), "idToken": text(self.idToken),
            "version": .string(self.version.rawValue), "start": text(self.start), "stop": text(self.stop), "startRef": .string(self.startRef),
            "stopRef": .string(self.stopRef), "registerWh": number(self.registerWh), "intervalWh": number(self.intervalWh), "powerWh": number(self.powerWh),
            "durationS": number(self.durationSeconds), "chargingS": number(self.chargingSeconds), "parkingS": number(self.parkingSeconds),
            "backendTotal": number(self.backendTotal), "backendFinal": self.backendTotal == nil ? .null : .bool(self.backendFinal), "costRef": text(self.costRef),
            "expected": number(self.expected), "arithmetic": text(self.arithmetic), "difference": number(self.difference),
            "findings": .array(self.findings.map(JSONValue.string)), "signed": .bool(self.signed),
            "signatureValid": self.signatureValid.map(JSONValue.bool) ?? .null,
        ]
    }
}

/// Every stopped transaction's billing row, and the costs the backend told (bounded: `rowsKept` rows; the costs
/// of transactions still running, `runningKept`).
struct BillingLedger {
    private(set) var rows: [BillingRow] = []
    private var index: [String: Int] = [:]
    private var running: [String: (total: Double, ref: String)] = [:]
    private(set) var dropped = 0
    static let rowsKept = 50_000
    static let runningKept = 10_000

    private static func key(_ chargePoint: String, _ transaction: String) -> String { chargePoint + "\u{1}" + transaction }

    mutating func add(_ row: BillingRow) {
        guard self.rows.count < Self.rowsKept else {
            self.dropped += 1
            return
        }
        var row = row
        let key = Self.key(row.chargePoint, row.transaction)
        if let cost = self.running.removeValue(forKey: key) {
            row.backendTotal = cost.total
            row.costRef = cost.ref
        }
        self.index[key] = self.rows.count
        self.rows.append(row)
    }

    /// The backend's cost for a transaction: `final` for the Ended event's answer (which comes after its row).
    mutating func cost(_ total: Double, of transaction: String, at chargePoint: String, ref: String, final: Bool) {
        guard total.isFinite, abs(total) < 1e12 else { return }
        let key = Self.key(chargePoint, transaction)
        if let position = self.index[key] {
            // A running cost after the final one does not replace it.
            guard final || !self.rows[position].backendFinal else { return }
            self.rows[position].backendTotal = total
            self.rows[position].backendFinal = final
            self.rows[position].costRef = ref
        } else if !final {
            // A transaction still running: kept until it stops; the oldest costs make room (a charger that never stops).
            if self.running[key] == nil, self.running.count >= Self.runningKept, let any = self.running.keys.first { self.running.removeValue(forKey: any) }
            self.running[key] = (total, ref)
        }
    }

    /// A charge point gone past the state retention: its running costs go with its transactions.
    mutating func release(_ chargePoint: String) {
        let prefix = chargePoint + "\u{1}"
        for key in self.running.keys where key.hasPrefix(prefix) { self.running.removeValue(forKey: key) }
    }

    /// Prices each row by `tariff` (nil: none declared) and returns the rows with their findings noted.
    mutating func judge(tariff: Tariff?) -> [(row: BillingRow, rule: String, detail: String)] {
        var findings: [(BillingRow, String, String)] = []
        for position in self.rows.indices {
            var row = self.rows[position]
            if let register = row.registerWh, let interval = row.intervalWh, abs(register - interval) > max(10, 0.01 * abs(register)) {
                row.findings.append("billing.energyMismatch")
                findings.append((
                    row, "billing.energyMismatch",
                    "transaction \(row.transaction): the register gives \(BillingRow.number(register)) Wh from start (\(row.startRef)) to stop (\(row.stopRef)), its interval readings add up to \(BillingRow.number(interval)) Wh"
                ))
            }
            // A register that runs backwards or is no number is the charger's finding (tx.*), not a price to judge.
            let energy = row.registerWh.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
            if let tariff, energy != nil || row.registerWh == nil, let (price, arithmetic) = tariff.price(wh: energy, chargingSeconds: row.chargingSeconds, parkingSeconds: row.parkingSeconds) {
                row.expected = price
                row.arithmetic = arithmetic
                if let total = row.backendTotal {
                    row.difference = total - price
                    // Only the final cost is the session's price; a running one is shown, not judged.
                    if row.backendFinal, abs(total - price) > tariff.rounding / 2 + 1e-9 {
                        row.findings.append("billing.priceMismatch")
                        findings.append((
                            row, "billing.priceMismatch",
                            "transaction \(row.transaction): the backend's total cost is \(BillingRow.number(total)) \(tariff.currency) (\(row.costRef ?? "?")), the site's tariff gives \(BillingRow.number(price)) \(tariff.currency): \(arithmetic)"
                        ))
                    }
                }
            }
            self.rows[position] = row
        }
        return findings
    }
}

extension Tariff {
    /// The price of a session, rounded to the tariff's step (half up), with the arithmetic in words; nil without the
    /// energy when the tariff charges for it.
    func price(wh: Double?, chargingSeconds: Double?, parkingSeconds: Double?) -> (Double, String)? {
        var parts: [String] = []
        var total = 0.0
        if self.sessionFee != 0 {
            total += self.sessionFee
            parts.append("session fee \(BillingRow.number(self.sessionFee))")
        }
        if self.perKWh != 0 {
            guard let wh else { return nil }
            let kwh = wh / 1000
            total += kwh * self.perKWh
            parts.append("\(BillingRow.number(kwh)) kWh × \(BillingRow.number(self.perKWh))")
        }
        if self.perChargingHour != 0 {
            guard let chargingSeconds else { return nil }
            let hours = chargingSeconds / 3600
            total += hours * self.perChargingHour
            parts.append("\(BillingRow.number(hours)) h charging × \(BillingRow.number(self.perChargingHour))")
        }
        if self.perParkingHour != 0 {
            guard let parkingSeconds else { return nil }
            let hours = max(0, parkingSeconds - self.parkingGraceSeconds) / 3600
            total += hours * self.perParkingHour
            parts.append("\(BillingRow.number(hours)) h parking after \(BillingRow.number(self.parkingGraceSeconds / 60)) min grace × \(BillingRow.number(self.perParkingHour))")
        }
        var words = parts.isEmpty ? "0" : parts.joined(separator: " + ")
        if !self.includesTax, self.taxRate != 0 {
            total *= 1 + self.taxRate
            words = "(\(words)) × \(BillingRow.number(1 + self.taxRate)) tax"
        }
        let step = self.rounding > 0 ? self.rounding : 0.01
        // Half up, to the step; the step's own binary error (0.01) is taken out to 6 decimals.
        let steps = (total / step * (1 + 1e-12)).rounded(.toNearestOrAwayFromZero)
        let rounded = (steps * step * 1_000_000).rounded() / 1_000_000
        return (rounded, "\(words) = \(BillingRow.number(total)), rounded to \(BillingRow.number(step)): \(BillingRow.number(rounded)) \(self.currency)")
    }
}

extension TransactionTracker {
    /// A stopped transaction's billing row.
    static func billingRow(_ transaction: Transaction, stopTs: Int64?, timestamp: String?, stopWh: Double?, ref: String, pair: PairKey) -> BillingRow {
        var billing = transaction.billing
        billing.close(at: stopTs)
        var duration: Double?
        if let start = transaction.startTs, let stopTs, stopTs >= start { duration = Double(stopTs - start) / 1_000_000 }
        var register: Double?
        if let start = transaction.startWh ?? billing.firstRegisterWh, let stopWh { register = stopWh - start }
        let timed = billing.sawState && !billing.untimed
        var row = BillingRow(
            chargePoint: transaction.chargePoint, transaction: transaction.id, connector: transaction.connector?.description, idToken: billing.idToken,
            version: transaction.version, start: transaction.startTimestamp, stop: timestamp, startRef: transaction.startRef, stopRef: ref,
            registerWh: register, intervalWh: billing.intervalWh, powerWh: billing.powerWh, durationSeconds: duration,
            chargingSeconds: timed ? Double(billing.chargingMicros) / 1_000_000 : nil,
            parkingSeconds: timed ? Double(billing.parkingMicros) / 1_000_000 : nil, pair: pair
        )
        let signed = transaction.signed
        row.signed = signed.count > 0
        if signed.invalid > 0 { row.findings.append("meter.signatureInvalid") }
        if signed.mismatched > 0 { row.findings.append("meter.signedMismatch") }
        if signed.count > 0, !signed.truncated, !(signed.sawBegin && signed.sawEnd) { row.findings.append("meter.signedMissing") }
        if signed.invalid > 0 { row.signatureValid = false } else if signed.count > 0, signed.valid == signed.count { row.signatureValid = true }
        return row
    }
}

