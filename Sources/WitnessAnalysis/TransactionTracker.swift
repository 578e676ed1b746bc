import Foundation
import OCPPWire
import WitnessCapture

/// Follows transactions and their meter readings per charge point (a 1.6 transaction may stop on a later
/// connection than it started on), for the rules that decide whether a bill reconciles.
final class TransactionTracker {
    struct Transaction {
        var id: String
        var chargePoint: String
        var startWh: Double?
        var startTs: Int64?
        var startTimestamp: String?
        /// The reading with the latest timestamp so far (arrival order for readings without one), and its time.
        var lastWh: Double?
        var lastTs: Int64?
        var maxWh: (wh: Double, ref: String, path: String)?
        /// The latest reading's timestamp, checked against the stop time when it arrives.
        var latestSample: (ts: Int64, timestamp: String, ref: String)?
        var startAction: String
        var startMessageId: String?
        var startRecordTs: String?
        var startRef: String
        /// The order it began in, among all transactions followed (from 1; 0: not followed yet).
        var sequence: UInt64 = 0
    }

    /// A register reading found in a payload.
    struct Sample {
        var wh: Double
        var ts: Int64?
        var timestamp: String?
        var context: String?
        var path: String
    }

    /// What a 1.6 StartTransaction CALL leaves for its answer, which assigns the transaction id. The analyzer
    /// keeps it with the outstanding CALL, so it goes when the CALL is answered or times out.
    struct PendingStart {
        var meterStart: Double?
        var timestamp: String?
        var messageId: String?
        var ref: String
        var recordTs: String?
    }

    static func pendingStart(action: String, message: JSONValue, version: OCPPVersion, record: CaptureRecord) -> PendingStart? {
        guard action == "StartTransaction", version == .v16, record.messageType == .call, let payload = message[3] else { return nil }
        return PendingStart(
            meterStart: payload["meterStart"]?.doubleValue, timestamp: payload["timestamp"]?.stringValue, messageId: record.messageId,
            ref: record.reference, recordTs: record.timestamp
        )
    }

    private var open: [String: [String: Transaction]] = [:]
    /// The transaction ids the CSMS assigned to each charge point most recently, oldest first, for the
    /// detail of `tx.unknownTransactionId`: the last `recentlyAssignedKept`, not every id of a long pilot.
    private var assigned: [String: [String]] = [:]
    static let recentlyAssignedKept = 3
    /// Transactions followed at once per charge point. A charger has a few connectors; one that starts
    /// transactions and never stops them (or a backend that answers every start with a new id) would grow
    /// the analysis without bound. Past it, the oldest is reported `tx.notStopped` and no longer followed.
    static let openPerChargePointLimit = 64
    /// Numbers transactions in the order they began, so the oldest is known.
    private var begun: UInt64 = 0
    private var futureToleranceMicros: Int64 = 60_000_000
    private var clockToleranceMicros: Int64 = 1_000_000

    func openTransactions() -> [Transaction] {
        self.open.values.flatMap(\.values).sorted { ($0.chargePoint, $0.id) < ($1.chargePoint, $1.id) }
    }

    /// Forgets a charge point's transactions (it has been gone longer than the state retention) and returns
    /// those still open, in the order they began.
    func release(_ chargePoint: String) -> [Transaction] {
        self.assigned.removeValue(forKey: chargePoint)
        return (self.open.removeValue(forKey: chargePoint) ?? [:]).values.sorted { $0.sequence < $1.sequence }
    }

    /// Follows a transaction that began; past `openPerChargePointLimit` the oldest of its charge point is
    /// reported and dropped.
    private func begin(_ transaction: Transaction, analyzer: Analyzer) {
        var transaction = transaction
        self.begun += 1
        transaction.sequence = self.begun
        let chargePoint = transaction.chargePoint
        self.open[chargePoint, default: [:]][transaction.id] = transaction
        guard let open = self.open[chargePoint], open.count > Self.openPerChargePointLimit,
              let oldest = open.values.min(by: { $0.sequence < $1.sequence })
        else { return }
        self.open[chargePoint]?.removeValue(forKey: oldest.id)
        analyzer.reportNotStopped(oldest, because: "was still open when more than \(Self.openPerChargePointLimit) transactions of this charge point were; the oldest is no longer followed")
    }

    // MARK: Requests

    func request(action: String, message: JSONValue, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer) {
        self.futureToleranceMicros = Int64(analyzer.configuration.futureToleranceSeconds * 1_000_000)
        self.clockToleranceMicros = Int64(analyzer.configuration.clockToleranceSeconds * 1_000_000)
        guard record.messageType == .call, let payload = message[3] else { return }
        let chargePoint = state.chargePoint
        switch action {
        case "BootNotification":
            let identity: ChargerIdentity
            if state.version == .v16 {
                identity = ChargerIdentity(
                    vendor: payload["chargePointVendor"]?.stringValue ?? "unknown", model: payload["chargePointModel"]?.stringValue ?? "unknown",
                    firmware: payload["firmwareVersion"]?.stringValue ?? "unknown"
                )
            } else {
                let station = payload["chargingStation"]
                identity = ChargerIdentity(
                    vendor: station?["vendorName"]?.stringValue ?? "unknown", model: station?["model"]?.stringValue ?? "unknown",
                    firmware: station?["firmwareVersion"]?.stringValue ?? "unknown"
                )
            }
            analyzer.noteIdentity(identity, for: state)
        case "StartTransaction" where state.version == .v16:
            self.checkFuture(payload["timestamp"]?.stringValue, path: "/timestamp", recordTs: ts, state: state, record: record, analyzer: analyzer)
        case "MeterValues":
            guard let transactionId = payload["transactionId"] else { return }
            let id = JSONWriter.string(transactionId)
            guard var transaction = self.open[chargePoint]?[id] else {
                self.unknown(id, path: "/transactionId", state: state, record: record, analyzer: analyzer)
                return
            }
            for sample in Self.samples(payload["meterValue"], version: state.version, base: "/meterValue") {
                self.observe(sample, in: &transaction, recordTs: ts, state: state, record: record, analyzer: analyzer)
            }
            self.open[chargePoint]?[id] = transaction
        case "StopTransaction" where state.version == .v16:
            let id = payload["transactionId"].map { JSONWriter.string($0) } ?? "?"
            guard var transaction = self.open[chargePoint]?[id] else {
                self.unknown(id, path: "/transactionId", state: state, record: record, analyzer: analyzer)
                return
            }
            self.checkFuture(payload["timestamp"]?.stringValue, path: "/timestamp", recordTs: ts, state: state, record: record, analyzer: analyzer)
            let stopTs = payload["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds
            let samples = Self.samples(payload["transactionData"], version: .v16, base: "/transactionData")
            for sample in samples {
                self.observe(sample, in: &transaction, recordTs: ts, state: state, record: record, analyzer: analyzer, stopTs: stopTs)
            }
            if let stopTs, let latest = transaction.latestSample, latest.ts > stopTs + self.clockToleranceMicros {
                self.deviation("tx.timestampOutside", "reading at \(latest.timestamp) (\(latest.ref)) is after the transaction stopped at \(payload["timestamp"]?.stringValue ?? "?")", path: "/timestamp", state: state, record: record, analyzer: analyzer)
            }
            if let meterStop = payload["meterStop"]?.doubleValue {
                if let highest = transaction.maxWh, highest.wh > meterStop {
                    self.deviation("tx.sampleOutOfRange", "meter reading \(Self.wh(highest.wh)) is above meter stop \(Self.wh(meterStop)) (reading at \(highest.ref))", path: "/meterStop", state: state, record: record, analyzer: analyzer)
                }
                let tolerance = max(analyzer.configuration.energyToleranceFloorWh, analyzer.configuration.energyTolerance * max(abs(meterStop), 1))
                if let end = samples.last(where: { $0.context == "Transaction.End" }), abs(end.wh - meterStop) > tolerance {
                    self.deviation("tx.energyMismatch", "Transaction.End reading \(Self.wh(end.wh)) differs from meter stop \(Self.wh(meterStop))", path: end.path, state: state, record: record, analyzer: analyzer)
                }
                if let start = transaction.startWh, let begin = samples.first(where: { $0.context == "Transaction.Begin" }), abs(begin.wh - start) > tolerance {
                    self.deviation("tx.energyMismatch", "Transaction.Begin reading \(Self.wh(begin.wh)) differs from meter start \(Self.wh(start))", path: begin.path, state: state, record: record, analyzer: analyzer)
                }
            }
            self.open[chargePoint]?.removeValue(forKey: id)
        case "TransactionEvent" where state.version != .v16:
            // On a 1.6 connection it is an action the version lacks (rpc.unknownAction), not a transaction.
            guard let id = payload["transactionInfo"]?["transactionId"]?.stringValue, let eventType = payload["eventType"]?.stringValue else { return }
            self.checkFuture(payload["timestamp"]?.stringValue, path: "/timestamp", recordTs: ts, state: state, record: record, analyzer: analyzer)
            let eventTs = payload["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds
            let samples = Self.samples(payload["meterValue"], version: state.version, base: "/meterValue")
            var transaction: Transaction
            if let existing = self.open[chargePoint]?[id] {
                transaction = existing
            } else if eventType == "Started" {
                transaction = Transaction(
                    id: id, chargePoint: chargePoint, startWh: samples.first?.wh, startTs: eventTs, startTimestamp: payload["timestamp"]?.stringValue,
                    startAction: action, startMessageId: record.messageId, startRecordTs: record.timestamp, startRef: record.reference
                )
            } else {
                self.unknown(id, path: "/transactionInfo/transactionId", state: state, record: record, analyzer: analyzer)
                return
            }
            for sample in samples {
                self.observe(sample, in: &transaction, recordTs: ts, state: state, record: record, analyzer: analyzer, stopTs: eventType == "Ended" ? eventTs : nil)
            }
            if eventType == "Ended" {
                if let eventTs, let latest = transaction.latestSample, latest.ts > eventTs + self.clockToleranceMicros, latest.ref != record.reference {
                    self.deviation("tx.timestampOutside", "reading at \(latest.timestamp) (\(latest.ref)) is after the transaction ended at \(payload["timestamp"]?.stringValue ?? "?")", path: "/timestamp", state: state, record: record, analyzer: analyzer)
                }
                self.open[chargePoint]?.removeValue(forKey: id)
            } else if transaction.sequence == 0 {
                // Made just now from its Started event: not followed yet.
                self.begin(transaction, analyzer: analyzer)
            } else {
                self.open[chargePoint]?[id] = transaction
            }
        default:
            break
        }
    }

    // MARK: Responses

    /// A CALLRESULT; `start` is what its CALL left when it was a 1.6 StartTransaction.
    func response(start: PendingStart?, message: JSONValue, state: ConnectionState, analyzer: Analyzer) {
        guard let start, let transactionId = message[2]?["transactionId"] else { return }
        let chargePoint = state.chargePoint
        let id = JSONWriter.string(transactionId)
        self.assigned[chargePoint, default: []].append(id)
        if self.assigned[chargePoint]!.count > Self.recentlyAssignedKept { self.assigned[chargePoint]!.removeFirst() }
        self.begin(Transaction(
            id: id, chargePoint: chargePoint, startWh: start.meterStart, startTs: start.timestamp.flatMap(RFC3339.parse)?.microseconds,
            startTimestamp: start.timestamp, lastWh: start.meterStart, startAction: "StartTransaction", startMessageId: start.messageId,
            startRecordTs: start.recordTs, startRef: start.ref
        ), analyzer: analyzer)
    }

    // MARK: Rules

    private func observe(
        _ sample: Sample, in transaction: inout Transaction, recordTs: Int64, state: ConnectionState, record: CaptureRecord,
        analyzer: Analyzer, stopTs: Int64? = nil
    ) {
        if let ts = sample.ts {
            if let start = transaction.startTs, ts < start - self.clockToleranceMicros {
                self.deviation("tx.timestampOutside", "reading at \(sample.timestamp ?? "?") is before the transaction started (\(transaction.startTimestamp ?? "?"))", path: sample.path, state: state, record: record, analyzer: analyzer)
            } else if let stop = stopTs, ts > stop + self.clockToleranceMicros {
                self.deviation("tx.timestampOutside", "reading at \(sample.timestamp ?? "?") is after the transaction stopped", path: sample.path, state: state, record: record, analyzer: analyzer)
            }
            if ts > recordTs + self.futureToleranceMicros {
                self.deviation("tx.timestampInFuture", "reading timestamped \(sample.timestamp ?? "?"), after the message was sent", path: sample.path, state: state, record: record, analyzer: analyzer)
            }
        }
        if let ts = sample.ts, ts > (transaction.latestSample?.ts ?? Int64.min), stopTs == nil {
            transaction.latestSample = (ts, sample.timestamp ?? "?", record.reference)
        }
        let valuePath = sample.path + "/value"
        // Readings are ordered by their own timestamps, not by arrival: a 1.6 StopTransaction's transactionData
        // repeats the Transaction.Begin reading after the periodic ones (StopTxnSampledData), and queued
        // readings come late. One dated before the latest reading must not be above it.
        // A reading dated in the future (tx.timestampInFuture above) orders nothing: it counts where it arrived.
        let orderTs = sample.ts.flatMap { $0 > recordTs + self.futureToleranceMicros ? nil : $0 }
        let earlier = orderTs.map { ts in transaction.lastTs.map { ts < $0 } ?? false } ?? false
        if let start = transaction.startWh, sample.wh < start {
            self.deviation("tx.sampleOutOfRange", "reading \(Self.wh(sample.wh)) is below meter start \(Self.wh(start))", path: valuePath, state: state, record: record, analyzer: analyzer)
        } else if sample.context == "Transaction.Begin" {
            // The start reading, judged against the meter start above.
        } else if earlier, let last = transaction.lastWh, sample.wh > last {
            self.deviation(
                "tx.registerBackwards", "register read \(Self.wh(sample.wh)) at \(sample.timestamp ?? "?"), above the later reading of \(Self.wh(last))",
                path: valuePath, state: state, record: record, analyzer: analyzer
            )
        } else if !earlier, let last = transaction.lastWh, sample.wh < last {
            self.deviation("tx.registerBackwards", "register went from \(Self.wh(last)) to \(Self.wh(sample.wh))", path: valuePath, state: state, record: record, analyzer: analyzer)
        }
        if !earlier && sample.context != "Transaction.Begin" {
            transaction.lastWh = sample.wh
            if let orderTs { transaction.lastTs = orderTs }
        }
        if transaction.maxWh.map({ sample.wh > $0.wh }) ?? true {
            transaction.maxWh = (sample.wh, record.reference, valuePath)
        }
    }

    private func checkFuture(_ timestamp: String?, path: String, recordTs: Int64, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        guard let timestamp, let parsed = RFC3339.parse(timestamp), parsed.microseconds > recordTs + self.futureToleranceMicros else { return }
        self.deviation("tx.timestampInFuture", "timestamp \(timestamp) is after the message was sent", path: path, state: state, record: record, analyzer: analyzer)
    }

    private func unknown(_ id: String, path: String, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        let known = self.assigned[state.chargePoint]?.joined(separator: ", ") ?? ""
        let detail = state.version == .v16
            ? "transaction id \(id) is not open on this charger: the CSMS never assigned it, it stopped already, or it was released after the state retention"
                + (known.isEmpty ? "" : " (last assigned: \(known))")
            : "transaction \(id) has no Started event"
        self.deviation("tx.unknownTransactionId", detail, path: path, state: state, record: record, analyzer: analyzer)
    }

    private func deviation(_ rule: String, _ detail: String, path: String?, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        analyzer.report(
            Deviation(
                rule: rule, chargePoint: state.chargePoint, direction: record.direction, action: record.action, messageId: record.messageId,
                path: path, detail: detail, ts: record.timestamp, ref: record.reference
            ),
            in: state
        )
    }

    /// Energy register readings (outlet, all phases together) in Wh, with where they are in the payload.
    static func samples(_ meterValues: JSONValue?, version: OCPPVersion, base: String) -> [Sample] {
        guard case .array(let values) = meterValues else { return [] }
        var out: [Sample] = []
        for (valueIndex, meterValue) in values.enumerated() {
            let timestamp = meterValue["timestamp"]?.stringValue
            let ts = timestamp.flatMap(RFC3339.parse)?.microseconds
            guard case .array(let sampled) = meterValue["sampledValue"] else { continue }
            for (sampleIndex, sample) in sampled.enumerated() {
                let measurand = sample["measurand"]?.stringValue ?? "Energy.Active.Import.Register"
                guard measurand == "Energy.Active.Import.Register", sample["phase"] == nil,
                    (sample["location"]?.stringValue ?? "Outlet") == "Outlet", sample["format"]?.stringValue != "SignedData"
                else { continue }
                var wh: Double?
                var unit: String?
                if version == .v16 {
                    wh = sample["value"]?.stringValue.flatMap(Double.init) ?? sample["value"]?.doubleValue
                    unit = sample["unit"]?.stringValue
                } else {
                    wh = sample["value"]?.doubleValue
                    unit = sample["unitOfMeasure"]?["unit"]?.stringValue
                    if let multiplier = sample["unitOfMeasure"]?["multiplier"]?.intValue, let value = wh {
                        wh = value * pow10(multiplier)
                    }
                }
                guard var value = wh else { continue }
                if unit == "kWh" { value *= 1000 }
                out.append(
                    Sample(wh: value, ts: ts, timestamp: timestamp, context: sample["context"]?.stringValue, path: "\(base)/\(valueIndex)/sampledValue/\(sampleIndex)")
                )
            }
        }
        return out
    }

    /// 10 to a charger's `multiplier`. The schema bounds it only as an integer: it is clamped first, so that
    /// -2^63 (whose magnitude traps) or 2^62 (a loop of as many steps) from a hostile charger costs nothing.
    private static func pow10(_ exponent: Int) -> Double {
        Foundation.pow(10, Double(min(max(exponent, -400), 400)))
    }

    static func wh(_ value: Double) -> String {
        value.plainText + " Wh"
    }
}
