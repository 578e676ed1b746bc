import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessModel
import WitnessPolicy

/// Meter cadence and format: what a transaction's readings should look like by the charger's configuration
/// (or the site's declaration), and whether they do (docs/rules.md, `meter.*`).
extension TransactionTracker {
    /// A setting as the model judges by it: the charger's value the capture showed, else the site's declaration.
    struct SettingInForce {
        var value: SettingValue
        /// The capture line that showed it; nil for the site's declaration.
        var ref: String?
        /// Where it comes from, for a finding's detail: "MeterValueSampleInterval at cap.jsonl:12", "the site's policy".
        var source: String
        /// When the charger's value was last changed, as far as the capture shows (the proxy's clock).
        var ts: Int64?
    }

    /// `at`: the setting as it was then (the proxy's clock), before a change the capture shows after it.
    func setting(_ setting: ChargerSetting, of chargePoint: String, at ts: Int64? = nil) -> SettingInForce? {
        if let known = self.configurations.value(setting, of: chargePoint) {
            guard let ts, let changedAt = known.changedAt, ts < changedAt else {
                return SettingInForce(value: known.value, ref: known.ref, source: "\(known.name) = \(known.value) at \(known.ref)", ts: known.changedAt)
            }
            if let before = known.before {
                return SettingInForce(
                    value: before, ref: known.beforeRef, source: "\(known.name) = \(before) at \(known.beforeRef ?? "?") (changed at \(known.ref), later)", ts: nil
                )
            }
            // What it was before the change the capture does not show: the site's declaration, if any.
        }
        guard let declared = self.site.settings[setting] else { return nil }
        return SettingInForce(value: declared, ref: nil, source: "the site's declaration (\(setting.declaredName): \(declared), \(self.site.source))", ts: nil)
    }

    /// A message that shows settings of the charger's: learnt, and any that differ from the site's
    /// declaration reported (`site.configurationConflict`, once per charge point, setting and value).
    func configuration(
        action: String, call: JSONValue?, answer: JSONValue?, request: JSONValue?, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer
    ) {
        let learnt = self.configurations.learn(
            action: action, call: call, answer: answer, request: request, chargePoint: state.chargePoint, version: state.version, ref: record.reference, ts: ts
        )
        for (setting, known) in learnt {
            // Once per value: a value read again keeps the line that first showed it, and is the same conflict.
            guard known.ref == record.reference, let declared = self.site.settings[setting], !declared.agrees(with: known.value) else { continue }
            self.deviation(
                "site.configurationConflict",
                "\(known.name) is \(known.value) on this charger; the site declares \(setting.declaredName): \(declared) (\(self.site.source))",
                path: known.path, state: state, record: record, analyzer: analyzer
            )
        }
    }

    /// The readings of a transaction's message: periodic ones (`periodic`: a 1.6 MeterValues, a 2.0.1 Updated
    /// event) give the cadence; all give measurands, units and clock-aligned readings; 1.6 values that are
    /// not decimals are `meter.notDecimal` (once per transaction).
    func meterReadings(
        _ meterValues: JSONValue?, base: String, periodic: Bool, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        guard case .array(let values) = meterValues else { return }
        let chargePoint = state.chargePoint
        let configured = periodic ? self.setting(.sampledMeasurands, of: chargePoint)?.value.measurands : nil
        let aligned = self.setting(.clockAlignedInterval, of: chargePoint)?.value.seconds
        // The measurands of each periodic reading time: a charger may split one reading over several elements.
        var periodicTimes: [(ts: Int64, present: Set<String>)] = []
        for (valueIndex, meterValue) in values.enumerated() {
            guard case .array(let sampled) = meterValue["sampledValue"] else { continue }
            let timestamp = meterValue["timestamp"]?.stringValue
            let ts = timestamp.flatMap(RFC3339.parse)?.microseconds
            var present: Set<String> = []
            var periodicHere = false
            var clockHere = false
            for (sampleIndex, sample) in sampled.enumerated() {
                let measurand = sample["measurand"]?.stringValue ?? "Energy.Active.Import.Register"
                present.insert(measurand)
                // A configured entry may name a phase (1.6 9.1.17: `Voltage.L1`).
                if let phase = sample["phase"]?.stringValue { present.insert("\(measurand).\(phase)") }
                let unit = state.version == .v16 ? sample["unit"]?.stringValue : sample["unitOfMeasure"]?["unit"]?.stringValue
                transaction.cadence.measurand(sample["phase"]?.stringValue.map { "\(measurand) \($0)" } ?? measurand, unit: unit)
                switch sample["context"]?.stringValue ?? "Sample.Periodic" {
                case "Sample.Periodic": periodicHere = true
                case "Sample.Clock": clockHere = true
                default: break
                }
                // 2.0.1 values are numbers (the schema says so); a 1.6 value is a string holding a decimal, or signed data.
                if state.version == .v16, sample["format"]?.stringValue != "SignedData", case .string(let text)? = sample["value"], !MeterCadence.isDecimal(text) {
                    transaction.cadence.notDecimal += 1
                    if !transaction.cadence.notDecimalReported {
                        transaction.cadence.notDecimalReported = true
                        self.deviation(
                            "meter.notDecimal",
                            "\(measurand) of transaction \(transaction.id) reads \"\(text.prefix(40))\", which is not a decimal number (nor signed data); later ones of this transaction are counted in the cadence table",
                            path: "\(base)/\(valueIndex)/sampledValue/\(sampleIndex)/value", state: state, record: record, analyzer: analyzer
                        )
                    }
                }
            }
            if periodic, periodicHere, let ts {
                if let index = periodicTimes.firstIndex(where: { $0.ts == ts }) {
                    periodicTimes[index].present.formUnion(present)
                } else if periodicTimes.count < 64 {
                    periodicTimes.append((ts, present))
                }
            }
            if clockHere, let ts, let timestamp {
                transaction.cadence.clockAligned += 1
                if let aligned, aligned > 0, !MeterCadence.onGrid(ts, timestamp: timestamp, interval: aligned, tolerance: self.clockToleranceMicros) {
                    transaction.cadence.offGridCount += 1
                    if transaction.cadence.offGrid == nil { transaction.cadence.offGrid = (timestamp, record.reference) }
                }
            }
        }
        let lag = self.outages.lag(of: chargePoint)
        for (ts, present) in periodicTimes {
            transaction.cadence.periodicReading(at: ts, ref: record.reference, run: self.run) { from, to in
                self.outages.overlaps(chargePoint, from: from + lag, to: to + lag)
            }
            transaction.cadence.periodicMeasurands(at: ts, present, ref: record.reference, configured: configured)
        }
    }

    /// The readings a transaction's end carries (1.6 `transactionData`, 2.0.1 the Ended event's): the stop
    /// measurands configured must be among them. Not judged when the end carries no readings.
    func stopReadings(_ meterValues: JSONValue?, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord) {
        guard case .array(let values) = meterValues, !values.isEmpty,
            let configured = self.setting(.stopMeasurands, of: state.chargePoint)?.value.measurands, !configured.isEmpty
        else { return }
        var present: Set<String> = []
        for value in values {
            for sample in value["sampledValue"]?.arrayValue ?? [] {
                let measurand = sample["measurand"]?.stringValue ?? "Energy.Active.Import.Register"
                present.insert(measurand)
                if let phase = sample["phase"]?.stringValue { present.insert("\(measurand).\(phase)") }
            }
        }
        let missing = configured.filter { !present.contains($0) }
        if !missing.isEmpty { transaction.cadence.stopMissing = (record.reference, missing) }
    }

    /// Judges a stopped transaction's metering against the configuration in force when it began: the median
    /// interval, the longest gap outside outages, the clock-aligned grid and the measurands. Adds its row to
    /// the pair's cadence table and its occurrence to `meterCadence` checks.
    func judgeCadence(_ transaction: Transaction, stopTs: Int64?, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        let chargePoint = transaction.chargePoint
        var cadence = transaction.cadence
        let begun = transaction.startRecordTs.flatMap(RFC3339.parse)?.microseconds
        let interval = self.setting(.sampleInterval, of: chargePoint)
        // A setting changed while the transaction ran was not in force for all of it: not judged by. (One read
        // again meanwhile is the same setting.)
        func inForce(_ setting: ChargerSetting) -> SettingInForce? {
            guard let found = self.setting(setting, of: chargePoint) else { return nil }
            if let changedAt = found.ts, let begun, changedAt > begun { return nil }
            return found
        }
        cadence.settle(configured: measurandsNow(chargePoint))
        var judgedInterval: (seconds: Double, setting: SettingInForce)?
        // A queue stamped when it was delivered (tx.stampedAtDelivery) says nothing of when readings were taken.
        if !transaction.stampedReported, let setting = inForce(.sampleInterval), let seconds = setting.value.seconds, seconds > 0 {
            judgedInterval = (seconds, setting)
        }
        let measurands = inForce(.sampledMeasurands)
        let stopMeasurands = inForce(.stopMeasurands)
        let aligned = inForce(.clockAlignedInterval)
        var findings: [String] = []
        let readingAction = state.version == .v16 ? "MeterValues" : "TransactionEvent"
        func finding(_ rule: String, _ detail: String, ref: String, related: [String], action: String = readingAction) {
            findings.append(rule)
            analyzer.report(
                Deviation(
                    rule: rule, chargePoint: chargePoint, direction: .toCSMS, action: action, detail: detail, ts: record.timestamp, ref: ref,
                    related: related
                ),
                in: state
            )
        }

        if judgedInterval != nil {
            // Sampling runs from the start of the transaction (1.6 3.16.1): the time before the first periodic
            // reading, and after the last to the stop, count as gaps too; one with no reading at all is one gap.
            let lag = self.outages.lag(of: chargePoint)
            let watched = transaction.run == self.run
            func online(_ from: Int64, _ to: Int64) -> Bool { watched && !self.outages.overlaps(chargePoint, from: from + lag, to: to + lag) }
            // 2.0.1: the start may precede the EVSE and the charging (TxStartPoint), from which sampling runs
            // (E01.FR.17, E02.FR.21): only the 1.6 start, at the connector, starts the sampling.
            let start = transaction.version == .v16 ? transaction.startTs.map { ($0, transaction.startRef) } : nil
            let stop = stopTs.map { ($0, record.reference) }
            if let start, let first = cadence.firstPeriodic {
                cadence.boundaryGap(from: start, to: (first.ts, first.ref), online: online(start.0, first.ts) && first.run == transaction.run)
            }
            if let last = cadence.lastPeriodic, let stop {
                cadence.boundaryGap(from: (last.ts, last.ref), to: stop, online: online(last.ts, stop.0) && last.run == self.run)
            }
            if cadence.periodic == 0, let start, let stop { cadence.boundaryGap(from: start, to: stop, online: online(start.0, stop.0)) }
        }
        let median = cadence.medianSeconds
        if let (seconds, setting) = judgedInterval.map({ ($0.seconds, $0.setting) }) {
            let tolerance = max(Double(self.clockToleranceMicros) / 1_000_000, self.intervalTolerance * seconds)
            if let median, abs(median - seconds) > tolerance {
                let total = cadence.intervals.values.reduce(0, +)
                finding(
                    "meter.interval",
                    "transaction \(transaction.id)'s periodic readings came every \(Self.seconds(median)) s (median of \(total) intervals), where \(setting.source) asks for \(Self.seconds(seconds)) s (tolerance \(Self.seconds(tolerance)) s)",
                    ref: cadence.lastPeriodic?.ref ?? record.reference, related: [transaction.startRef] + (setting.ref.map { [$0] } ?? [])
                )
            } else if let gap = cadence.worstOnlineGap, Double(gap.micros) / 1_000_000 > 2 * seconds + tolerance {
                finding(
                    "meter.gap",
                    "transaction \(transaction.id) went \(Self.seconds(Double(gap.micros) / 1_000_000)) s without a periodic reading (from \(gap.from) to \(gap.to)), more than two intervals of \(Self.seconds(seconds)) s (\(setting.source)), while the charger was connected",
                    ref: gap.to, related: [gap.from] + (setting.ref.map { [$0] } ?? []),
                    action: gap.to == record.reference ? record.action ?? readingAction : gap.to == transaction.startRef ? transaction.startAction : readingAction
                )
            }
        }
        if let offGrid = cadence.offGrid, let aligned, let seconds = aligned.value.seconds {
            finding(
                "meter.offGrid",
                "clock-aligned reading of transaction \(transaction.id) at \(offGrid.timestamp) is not on the \(Self.seconds(seconds)) s grid from midnight (\(aligned.source))"
                    + (cadence.offGridCount > 1 ? "; \(cadence.offGridCount) of its \(cadence.clockAligned) clock-aligned readings are off it" : ""),
                ref: offGrid.ref, related: aligned.ref.map { [$0] } ?? []
            )
        }
        if let missing = cadence.missing, let measurands {
            finding(
                "meter.measurandMissing",
                "periodic readings of transaction \(transaction.id) lack \(missing.measurands.sorted().joined(separator: ", ")), which \(measurands.source) asks for",
                ref: missing.ref, related: measurands.ref.map { [$0] } ?? []
            )
        }
        if let missing = cadence.stopMissing, let stopMeasurands {
            finding(
                "meter.measurandMissing",
                "the readings transaction \(transaction.id)'s end carries lack \(missing.measurands.joined(separator: ", ")), which \(stopMeasurands.source) asks for",
                ref: missing.ref, related: stopMeasurands.ref.map { [$0] } ?? [], action: record.action ?? readingAction
            )
        }
        if cadence.notDecimalReported { findings.append("meter.notDecimal") }
        let row = CadenceRow(
            chargePoint: chargePoint, transaction: transaction.id, connector: transaction.connector?.description, startRef: transaction.startRef,
            configuredInterval: interval?.value.seconds, configuredFrom: interval.map { $0.ref ?? "site" }, periodicReadings: cadence.periodic,
            medianInterval: median, worstGap: cadence.worstGap.map { Double($0.micros) / 1_000_000 }, clockAligned: cadence.clockAligned,
            offGrid: cadence.offGridCount, measurands: cadence.measurands.mapValues { $0.sorted() },
            configuredMeasurands: measurands?.value.measurands, missingMeasurands: (cadence.missing?.measurands ?? []).sorted(),
            notDecimal: cadence.notDecimal, findings: findings, stopped: true
        )
        analyzer.cadenceRow(row)
        guard let checks = self.checks, checks.judgements.contains(.meterCadence) else { return }
        let verdict: CheckVerdict
        let detail: String
        if !findings.isEmpty {
            verdict = .fail
            detail = "transaction \(transaction.id) (\(transaction.startRef)): " + findings.joined(separator: ", ")
        } else if judgedInterval == nil && measurands == nil {
            verdict = .inconclusive
            detail = "transaction \(transaction.id) (\(transaction.startRef)): the capture shows no configured sample interval or measurands, and the site declares none"
        } else if median == nil && cadence.worstOnlineGap == nil {
            verdict = .inconclusive
            detail = "transaction \(transaction.id) (\(transaction.startRef)): \(cadence.periodic) periodic readings, too few intervals to judge the cadence"
        } else {
            verdict = .pass
            detail = "transaction \(transaction.id) (\(transaction.startRef)): \(cadence.periodic) periodic readings"
                + (median.map { ", every \(Self.seconds($0)) s (median)" } ?? "") + ", as configured"
        }
        checks.judged(
            .meterCadence, verdict, chargePoint: chargePoint, version: state.version, pair: analyzer.pair(of: chargePoint), detail: detail,
            refs: [transaction.startRef, record.reference]
        )
    }

    static func seconds(_ value: Double) -> String { Analyzer.format(value) }

    /// The sampled measurands configured now (the charger's, or the site's).
    func measurandsNow(_ chargePoint: String) -> [String]? { self.setting(.sampledMeasurands, of: chargePoint)?.value.measurands }
}
