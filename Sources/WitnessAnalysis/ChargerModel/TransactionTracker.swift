import Foundation
import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessModel
import WitnessPolicy

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
        /// Its latest messages, for telling a resend from a new message.
        var seen = SeenMessages()
        /// The connector it runs on, as its start named it.
        var connector: Connector?
        /// The proxy run it started in: state carried into a later run was not watched in between.
        var run = 0
        /// The first 1.6 StatusNotification Available of its connector dated after its start, judged at its stop.
        var availableDuring: StatusSeen?
        /// A second transaction started on its connector while it ran (`connector.transactionBusy` said so).
        var displaced = false
        /// 2.0.1: the seqNos its events carried, the Started event's, and the highest with its time.
        var events = EventSequence()
        /// `tx.stampedAtDelivery` was reported for it (once per transaction).
        var stampedReported = false
        /// It was started online: with an identifier authorized on the connection its start came on (an Authorize,
        /// a remote start). Such a start was not queued, so its time is not the delivery's.
        var authorizedOnline = false
        /// The end of the outage `tx.offlineNotFlagged` was reported for (once per transaction and outage).
        var offlineReported: Int64?
        /// Its meter readings' cadence and content.
        var cadence = MeterCadence()
        /// The findings on how it was delivered after an outage (rule and line), for the `sessionRecovery` check.
        var recovery = Recovery()
        /// The OCPP version of the connection it began on.
        var version = OCPPVersion.v16
        /// Who charged, how long charging and parked, interval energy: its billing row's evidence.
        var billing = BillingState()
        /// Its signed meter values (OCMF) so far.
        var signed = SignedState()
    }

    /// How a transaction came through an outage: whether messages of it were queued during one, and the findings
    /// on their delivery (the first few).
    struct Recovery {
        var queued = false
        var findings: [(rule: String, ref: String)] = []

        mutating func found(_ rule: String, ref: String) {
            if self.findings.count < 4 { self.findings.append((rule, ref)) }
        }
    }

    /// The seqNos of a 2.0.1 transaction's events (E 1.3.2), bounded: a charger numbering at random stops
    /// being followed past `NumberRuns.runsKept` separate runs of numbers.
    struct EventSequence {
        var seen = NumberRuns()
        var started: Int?
        var highest: (seqNo: Int, ts: Int64?, ref: String)?
        static let largest = 1 << 24

        /// Whether `seqNo` is one the rules follow (a hostile charger's -2^63 or 2^62 is not).
        static func followed(_ seqNo: Int) -> Bool { seqNo >= 0 && seqNo < Self.largest }

        mutating func insert(_ seqNo: Int) {
            guard Self.followed(seqNo) else { return }
            self.seen.insert(seqNo)
        }

        /// The numbers missing between the first (the Started event's, or the lowest seen) and `last`.
        func missing(upTo last: Int) -> NumberRuns {
            guard !self.seen.overflowed, let first = self.started ?? self.seen.lowest, Self.followed(first), Self.followed(last) else { return NumberRuns() }
            return self.seen.gaps(from: first, to: last)
        }
    }

    /// A StatusNotification as the model keeps it.
    struct StatusSeen {
        var status: String
        var ts: Int64
        var timestamp: String?
        var ref: String
        var messageId: String?
        var run: Int
    }

    /// The latest messages of a transaction by content (action and payload), so that a message the charger
    /// sends again, because it did not get the answer, is known as a resend. Bounded: the last `kept`.
    struct SeenMessages {
        private var entries: [(key: Int, ref: String)] = []
        static let kept = 16

        /// The content as values: members in any order and numbers by value (`2000` and `2000.0`), so that a
        /// charger that writes its queue out again after a reboot still sends the same message.
        static func key(_ action: String, _ payload: JSONValue) -> Int {
            var hasher = Hasher()
            hasher.combine(action)
            Self.combine(payload, into: &hasher)
            return hasher.finalize()
        }

        private static func combine(_ value: JSONValue, into hasher: inout Hasher) {
            switch value {
            case .null: hasher.combine(0)
            case .bool(let flag): hasher.combine(flag)
            case .number(let text): hasher.combine(Double(text) ?? .nan)
            case .string(let text): hasher.combine(text)
            case .array(let items):
                hasher.combine(items.count)
                for item in items { Self.combine(item, into: &hasher) }
            case .object(let object):
                // Members in any order: each hashed alone, combined by a sum, which order does not change.
                var sum = 0
                for member in object.members {
                    var memberHasher = Hasher()
                    memberHasher.combine(member.key)
                    Self.combine(member.value, into: &memberHasher)
                    sum &+= memberHasher.finalize()
                }
                hasher.combine(object.members.count)
                hasher.combine(sum)
            }
        }

        /// Where the message with this content was first seen.
        func ref(of key: Int) -> String? {
            self.entries.first { $0.key == key }?.ref
        }

        mutating func add(_ key: Int, ref: String) {
            guard self.ref(of: key) == nil else { return }
            self.entries.append((key, ref))
            if self.entries.count > Self.kept { self.entries.removeFirst() }
        }

        /// Only the latest `count` (a stopped transaction's: what a charger resends is what it sent last).
        func keeping(last count: Int) -> SeenMessages {
            var kept = self
            if kept.entries.count > count { kept.entries.removeFirst(kept.entries.count - count) }
            return kept
        }
    }

    /// A transaction that stopped, kept so that a message naming it afterwards is told apart: a resend of one
    /// already seen, readings delivered after the stop, or a message for a transaction that is over.
    struct Stopped {
        var stopTs: Int64?
        var stopTimestamp: String?
        var stopRef: String
        var seen: SeenMessages
        var sequence: UInt64
        /// 2.0.1: the Ended event's `seqNo`, which orders the events delivered after it.
        var endSeqNo: Int?
        /// 2.0.1: the events still missing when it ended, which late ones may yet fill (`tx.seqNoGap` is decided
        /// when the capture ends, the charge point is released, or the transaction leaves the stopped ones kept).
        var missing = NumberRuns()
        var endTs: String?
        var chargePoint = ""
        /// How it came through an outage, judged (`sessionRecovery`) when its gaps are.
        var recovery = Recovery()
        var startRef = ""
        var version = OCPPVersion.v16
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
    /// A reference, so that every outstanding CALL the analyzer keeps carries one word for it, not the fields
    /// only a StartTransaction has.
    final class PendingStart: Sendable {
        let meterStart: Double?
        let timestamp: String?
        let messageId: String?
        let ref: String
        let recordTs: String?
        let connector: Connector?
        /// The start's content, to know a start sent again (its answer was lost) from a new one.
        let digest: Int
        /// The model's key for the start until its answer comes: message ids are unique per connection only.
        let slotKey: String?
        /// Its identifier was authorized online on its connection before it (not started offline).
        let authorizedOnline: Bool
        /// The identifier it was started with, for the billing sheet.
        let idTag: String?

        init(
            meterStart: Double?, timestamp: String?, messageId: String?, ref: String, recordTs: String?, connector: Connector?, digest: Int,
            slotKey: String?, authorizedOnline: Bool = false, idTag: String? = nil
        ) {
            self.authorizedOnline = authorizedOnline
            self.idTag = idTag
            self.meterStart = meterStart
            self.timestamp = timestamp
            self.messageId = messageId
            self.ref = ref
            self.recordTs = recordTs
            self.connector = connector
            self.digest = digest
            self.slotKey = slotKey
        }
    }

    static func pendingStart(
        action: String, message: JSONValue, version: OCPPVersion, record: CaptureRecord, run: Int, authorizedOnline: Bool = false
    ) -> PendingStart? {
        guard action == "StartTransaction", version == .v16, record.messageType == .call, let payload = message[3] else { return nil }
        return PendingStart(
            meterStart: payload["meterStart"]?.doubleValue, timestamp: payload["timestamp"]?.stringValue, messageId: record.messageId,
            ref: record.reference, recordTs: record.timestamp, connector: Connector.named(action: action, payload: payload, version: .v16),
            digest: SeenMessages.key(action, payload), slotKey: record.messageId.map { "\(run) \(record.connection ?? 0) \($0)" },
            authorizedOnline: authorizedOnline, idTag: payload["idTag"]?.stringValue.map { String($0.prefix(64)) }
        )
    }

    /// When each charge point had no connection (the analyzer tells it of opens and closes).
    var outages = Outages()
    /// What the capture shows of each charger's configuration.
    var configurations = ChargerConfigurations()
    /// What the site declares, where the capture shows no configuration.
    var site = SiteDeclaration()
    /// The checks the model judges occurrences for (nil: none asked).
    var checks: CheckEvaluator?
    /// 2.0.1: every seqNo each charge point's events carried (bounded), and the charge points seen numbering
    /// per station (a Started event other than 0 while another transaction ran).
    private var chargerSeqNos: [String: NumberRuns] = [:]
    private var sharedCounter: Set<String> = []
    /// The transactions running on each charge point's connectors (the charger model shared with the fault engine).
    private var connectors: [String: ConnectorTransactions] = [:]
    /// Each charge point's connectors' latest status.
    private var statuses: [String: [Connector: StatusSeen]] = [:]
    /// The proxy run the records being read belong to.
    var run = 0
    /// The 1.6 StartTransaction of the record being read, as its answer will need it.
    var pendingStartOfRecord: PendingStart?
    /// The connector the record being read names (in its payload, or through its transaction), for the checks.
    var connectorOfRecord: Connector?

    /// Whether a transaction runs on any connector of `chargePoint`.
    func anyRunning(on chargePoint: String) -> Bool { !(self.open[chargePoint]?.values.allSatisfy(\.displaced) ?? true) }

    /// Whether a transaction runs on `connector` of `chargePoint`.
    func running(on connector: Connector, at chargePoint: String) -> Bool { self.connectors[chargePoint]?.running(on: connector) != nil }

    /// `connector`'s latest status on `chargePoint` (a 2.0.1 EVSE named alone: its connector's).
    func status(of connector: Connector, at chargePoint: String) -> String? {
        guard let statuses = self.statuses[chargePoint] else { return nil }
        return statuses[connector]?.status ?? statuses.first { connector.names($0.key) || $0.key.names(connector) }?.value.status
    }

    /// Whether transaction `id` of `chargePoint` is open.
    func isOpen(_ id: String, at chargePoint: String) -> Bool { self.open[chargePoint]?[id] != nil }

    /// The connectors a charge point has reported a status for, with whether that knowledge is from an earlier
    /// proxy run; the station itself (1.6 connector 0, 2.0.1 EVSE 0) only when it reported no other.
    func knownConnectors(of chargePoint: String) -> [(connector: Connector, provisional: Bool)] {
        guard let statuses = self.statuses[chargePoint] else { return [] }
        let outlets = statuses.filter { !$0.key.isStation }
        return (outlets.isEmpty ? statuses : outlets).sorted { $0.key < $1.key }.map { ($0.key, $0.value.run != self.run) }
    }

    var open: [String: [String: Transaction]] = [:]
    /// What the capture shows of each charger's identifiers (offline authorization).
    var authorizations: [String: Authorizations] = [:]
    /// Transactions whose identifier the backend did not accept, waiting for their stop (`stopOnInvalidId`).
    var invalidStarts: [String: [InvalidStart]] = [:]
    /// The transactions of each charge point that stopped most recently (the last `stoppedKept`).
    private var stopped: [String: [String: Stopped]] = [:]
    static let stoppedKept = 8
    /// The messages of a stopped transaction kept for recognising resends of them.
    static let seenAfterStop = 4
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
    var clockToleranceMicros: Int64 = 1_000_000
    /// The interval tolerance in force (`AnalyzerConfiguration.intervalToleranceInForce`).
    var intervalTolerance = AnalyzerConfiguration.defaultIntervalTolerance

    /// The transactions still open, but those a second start on their connector displaced (already reported).
    func openTransactions() -> [Transaction] {
        self.open.values.flatMap(\.values).filter { !$0.displaced }.sorted { ($0.chargePoint, $0.id) < ($1.chargePoint, $1.id) }
    }

    /// Forgets a charge point's transactions (it has been gone longer than the state retention) and returns
    /// those still open, in the order they began.
    func release(_ chargePoint: String) -> [Transaction] {
        self.assigned.removeValue(forKey: chargePoint)
        self.stopped.removeValue(forKey: chargePoint)
        self.connectors.removeValue(forKey: chargePoint)
        self.statuses.removeValue(forKey: chargePoint)
        self.beganInView.removeValue(forKey: chargePoint)
        self.outages.release(chargePoint)
        self.configurations.release(chargePoint)
        self.authorizations.removeValue(forKey: chargePoint)
        self.invalidStarts.removeValue(forKey: chargePoint)
        self.chargerSeqNos.removeValue(forKey: chargePoint)
        self.sharedCounter.remove(chargePoint)
        let released = (self.open.removeValue(forKey: chargePoint) ?? [:]).values.filter { !$0.displaced }.sorted { $0.sequence < $1.sequence }
        // Their ids, so that the charger's queued stop of one, when it comes back, is not a second finding.
        let ids = released.suffix(Self.releasedKept).map(\.id)
        if ids.isEmpty { self.released.removeValue(forKey: chargePoint) } else { self.released[chargePoint] = ids }
        return released
    }

    /// The transactions of a charge point released after the state retention (the last `releasedKept`), which
    /// `tx.notStopped` reported then.
    private var released: [String: [String]] = [:]
    static let releasedKept = 4
    /// The connectors (units) of each charge point on which the capture saw a transaction begin (bounded as
    /// the model is): a transaction the capture never saw begin is adoptable only on a connector where none did.
    private var beganInView: [String: Set<Int>] = [:]

    private func sawBegin(on connector: Connector?, of chargePoint: String) {
        guard let unit = connector?.unit, (self.beganInView[chargePoint]?.count ?? 0) < ConnectorTransactions.unitsLimit else { return }
        self.beganInView[chargePoint, default: []].insert(unit)
    }

    /// Follows a transaction that began; past `openPerChargePointLimit` the oldest of its charge point is
    /// reported and dropped.
    private func begin(_ transaction: Transaction, analyzer: Analyzer) {
        var transaction = transaction
        self.begun += 1
        transaction.sequence = self.begun
        let chargePoint = transaction.chargePoint
        self.open[chargePoint, default: [:]][transaction.id] = transaction
        guard let open = self.open[chargePoint], open.count > Self.openPerChargePointLimit else { return }
        // One a second start displaced was reported then (connector.transactionBusy): it goes silently first.
        if let displaced = open.values.filter(\.displaced).min(by: { $0.sequence < $1.sequence }) {
            self.open[chargePoint]?.removeValue(forKey: displaced.id)
            return
        }
        guard let oldest = open.values.min(by: { $0.sequence < $1.sequence }) else { return }
        self.open[chargePoint]?.removeValue(forKey: oldest.id)
        analyzer.reportNotStopped(oldest, because: "was still open when more than \(Self.openPerChargePointLimit) transactions of this charge point were; the oldest is no longer followed")
    }

    // MARK: Requests

    func request(action: String, message: JSONValue, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer) {
        self.futureToleranceMicros = Int64(analyzer.configuration.futureToleranceSeconds * 1_000_000)
        self.clockToleranceMicros = Int64(analyzer.configuration.clockToleranceSeconds * 1_000_000)
        self.intervalTolerance = analyzer.configuration.intervalToleranceInForce
        guard record.messageType == .call, let payload = message[3] else { return }
        let chargePoint = state.chargePoint
        switch action {
        case "BootNotification":
            analyzer.noteIdentity(BootIdentity(bootNotification: payload), for: state)
        case "StatusNotification":
            self.status(payload, state: state, record: record, ts: ts, analyzer: analyzer)
        case "RemoteStartTransaction", "RequestStartTransaction":
            // The backend's own start names the identifier: a transaction started with it is started online.
            state.authorized(payload["idTag"]?.stringValue ?? payload["idToken"]?["idToken"]?.stringValue)
        case "NotifyReport":
            self.configuration(action: action, call: nil, answer: nil, request: payload, state: state, record: record, ts: ts, analyzer: analyzer)
        case "StartTransaction" where state.version == .v16:
            self.checkFuture(payload["timestamp"]?.stringValue, path: "/timestamp", recordTs: ts, state: state, record: record, analyzer: analyzer)
            guard let start = Self.pendingStart(
                action: action, message: message, version: .v16, record: record, run: self.run, authorizedOnline: state.wasAuthorized(payload["idTag"]?.stringValue)
            ) else { return }
            self.pendingStartOfRecord = start
            guard let connector = start.connector else { return }
            self.connectorOfRecord = connector
            var model = self.connectors[chargePoint] ?? ConnectorTransactions()
            defer { self.connectors[chargePoint] = model }
            if let running = model.running(on: connector), running.startDigest == start.digest {
                // Sent again because its answer did not come: the answer to this one assigns the id that counts.
                let first = running.id.flatMap { self.open[chargePoint]?[$0]?.startRef }
                self.deviation(
                    "tx.resent", "StartTransaction on \(connector) repeats the one at \(first ?? "an earlier line")" + (running.id.map { " (transaction \($0))" } ?? "")
                        + ": a resend of a message whose answer the charger did not get",
                    path: nil, state: state, record: record, analyzer: analyzer, related: first.map { [$0] } ?? []
                )
                return
            }
            self.sawBegin(on: connector, of: chargePoint)
            // Started during an outage (by its own time, on the proxy's clock), delivered from the queue.
            if let startTs = start.timestamp.flatMap(RFC3339.parse)?.microseconds,
                let outage = self.outages.period(of: chargePoint, containing: startTs + self.outages.lag(of: chargePoint), tolerance: self.clockToleranceMicros)
            {
                self.offlineStart(
                    "the transaction on \(connector)", tag: payload["idTag"]?.stringValue, outageRef: outage.endRef, since: outage.start, path: "/idTag",
                    state: state, record: record, analyzer: analyzer
                )
            }
            let previous = model.start(.init(id: nil, connector: connector, since: ts, startMessageId: start.slotKey, startDigest: start.digest))
            self.displace(previous, on: connector, state: state, record: record, analyzer: analyzer)
        case "MeterValues":
            // Meter values outside a transaction name a connector only for the checks (the analyzer asks then).
            guard let transactionId = payload["transactionId"] else { return }
            self.connectorOfRecord = Connector.named(action: action, payload: payload, version: state.version)
            let id = JSONWriter.string(transactionId)
            let key = SeenMessages.key(action, payload)
            let samples = Self.samples(payload["meterValue"], version: state.version, base: "/meterValue")
            guard var transaction = self.open[chargePoint]?[id]
                ?? self.adopt(id, connector: self.connectorOfRecord, path: "/transactionId", state: state, record: record, ts: ts, analyzer: analyzer)
            else {
                self.notOpen(id, key: key, times: Self.timestamps(payload["meterValue"]), path: "/transactionId", state: state, record: record, analyzer: analyzer)
                return
            }
            if self.resent(key, of: id, seen: transaction.seen, state: state, record: record, analyzer: analyzer) { return }
            if let named = self.connectorOfRecord, let own = transaction.connector, !named.names(own) {
                self.deviation(
                    "connector.mismatch",
                    "MeterValues name \(named) for transaction \(id), which runs on \(own) (started at \(transaction.startRef))",
                    path: "/connectorId", state: state, record: record, analyzer: analyzer, related: [transaction.startRef],
                    provisional: transaction.run != self.run
                )
            }
            for sample in samples {
                self.observe(sample, in: &transaction, recordTs: ts, state: state, record: record, analyzer: analyzer)
            }
            self.meterReadings(payload["meterValue"], base: "/meterValue", periodic: true, in: &transaction, state: state, record: record, analyzer: analyzer)
            for wh in BillingState.intervalReadings(payload["meterValue"], version: state.version) { transaction.billing.interval(wh) }
            for reading in BillingState.powerReadings(payload["meterValue"], version: state.version) { transaction.billing.power(reading.watts, at: reading.ts) }
            self.signedValues(payload["meterValue"], base: "/meterValue", in: &transaction, state: state, record: record, analyzer: analyzer)
            transaction.seen.add(key, ref: record.reference)
            self.open[chargePoint]?[id] = transaction
        case "StopTransaction" where state.version == .v16:
            // Without an id (schema.required says so) it names no transaction.
            guard let id = payload["transactionId"].map({ JSONWriter.string($0) }) else { return }
            let key = SeenMessages.key(action, payload)
            guard var transaction = self.open[chargePoint]?[id]
                ?? self.adopt(id, connector: nil, path: "/transactionId", state: state, record: record, ts: ts, analyzer: analyzer)
            else {
                let stopTs = payload["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds
                self.notOpen(id, key: key, times: stopTs.map { [$0] } ?? [], path: "/transactionId", state: state, record: record, analyzer: analyzer)
                return
            }
            self.connectorOfRecord = transaction.connector
            self.checkFuture(payload["timestamp"]?.stringValue, path: "/timestamp", recordTs: ts, state: state, record: record, analyzer: analyzer)
            let stopTs = payload["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds
            let samples = Self.samples(payload["transactionData"], version: .v16, base: "/transactionData")
            for sample in samples {
                self.observe(sample, in: &transaction, recordTs: ts, state: state, record: record, analyzer: analyzer, stopTs: stopTs)
            }
            if let stopTs, let latest = transaction.latestSample, latest.ts > stopTs + self.clockToleranceMicros {
                self.deviation("tx.timestampOutside", "reading at \(latest.timestamp) (\(latest.ref)) is after the transaction stopped at \(payload["timestamp"]?.stringValue ?? "?")", path: "/timestamp", state: state, record: record, analyzer: analyzer)
            }
            if let meterStop = payload["meterStop"]?.doubleValue, let stopTs {
                // The stop's own reading, judged as a queue stamped at delivery would be.
                let reading = Sample(wh: meterStop, ts: stopTs, timestamp: payload["timestamp"]?.stringValue, context: "Transaction.End", path: "/meterStop")
                self.instant(reading, at: stopTs, in: &transaction, state: state, record: record, analyzer: analyzer)
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
            transaction.seen.add(key, ref: record.reference)
            self.stopReadings(payload["transactionData"], in: &transaction, state: state, record: record)
            self.signedValues(payload["transactionData"], base: "/transactionData", in: &transaction, state: state, record: record, analyzer: analyzer)
            self.stop(
                transaction, at: stopTs, timestamp: payload["timestamp"]?.stringValue, stopWh: payload["meterStop"]?.doubleValue, state: state, record: record,
                analyzer: analyzer
            )
        case "TransactionEvent" where state.version != .v16:
            // On a 1.6 connection it is an action the version lacks (rpc.unknownAction), not a transaction.
            guard let id = payload["transactionInfo"]?["transactionId"]?.stringValue, let eventType = payload["eventType"]?.stringValue else { return }
            self.checkFuture(payload["timestamp"]?.stringValue, path: "/timestamp", recordTs: ts, state: state, record: record, analyzer: analyzer)
            let eventTs = payload["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds
            let samples = Self.samples(payload["meterValue"], version: state.version, base: "/meterValue")
            let key = SeenMessages.key(action, payload)
            let named = Connector.named(action: action, payload: payload, version: state.version)
            self.connectorOfRecord = named ?? self.open[chargePoint]?[id]?.connector
            var transaction: Transaction
            if let existing = self.open[chargePoint]?[id] {
                transaction = existing
                if self.resent(key, of: id, seen: transaction.seen, state: state, record: record, analyzer: analyzer) { return }
                if eventType == "Started", transaction.startTs == nil {
                    // Its Started event, delivered after later events (2.0.1 E 1.3.2): the start is known now.
                    transaction.startTs = eventTs
                    transaction.startTimestamp = payload["timestamp"]?.stringValue
                    transaction.startWh = samples.first?.wh
                    transaction.startRef = record.reference
                    transaction.startMessageId = record.messageId
                    transaction.startRecordTs = record.timestamp
                    self.sawBegin(on: named ?? transaction.connector, of: chargePoint)
                }
                if let named, let own = transaction.connector, !named.names(own) {
                    self.deviation(
                        "connector.mismatch", "TransactionEvent \(eventType) names \(named) for transaction \(id), which runs on \(own) (started at \(transaction.startRef))",
                        path: "/evse/id", state: state, record: record, analyzer: analyzer, related: [transaction.startRef], provisional: transaction.run != self.run
                    )
                } else if transaction.connector == nil, let named {
                    // Placed now: its Started event named no EVSE.
                    transaction.connector = named
                    let previous = self.connectors[chargePoint, default: ConnectorTransactions()].start(.init(id: id, connector: named, since: transaction.startTs ?? ts))
                    self.displace(previous, on: named, by: id, state: state, record: record, analyzer: analyzer)
                }
            } else if eventType == "Started", self.stopped[chargePoint]?[id] == nil {
                transaction = Transaction(
                    id: id, chargePoint: chargePoint, startWh: samples.first?.wh, startTs: eventTs, startTimestamp: payload["timestamp"]?.stringValue,
                    startAction: action, startMessageId: record.messageId, startRecordTs: record.timestamp, startRef: record.reference,
                    connector: named, run: self.run
                )
                transaction.version = state.version
                transaction.authorizedOnline = payload["offline"]?.boolValue != true && state.wasAuthorized(payload["idToken"]?["idToken"]?.stringValue)
                self.sawBegin(on: named, of: chargePoint)
                if let named {
                    let previous = self.connectors[chargePoint, default: ConnectorTransactions()].start(.init(id: id, connector: named, since: eventTs ?? ts))
                    self.displace(previous, on: named, by: id, state: state, record: record, analyzer: analyzer)
                }
            } else if let adopted = self.adopt(
                id, connector: named, path: "/transactionInfo/transactionId", state: state, record: record, ts: eventTs ?? ts, analyzer: analyzer
            ) {
                transaction = adopted
            } else {
                let times = Self.timestamps(payload["meterValue"]) + (eventTs.map { [$0] } ?? [])
                self.notOpen(
                    id, key: key, times: times, seqNo: payload["seqNo"]?.intValue, path: "/transactionInfo/transactionId", state: state, record: record,
                    analyzer: analyzer
                )
                return
            }
            transaction.seen.add(key, ref: record.reference)
            let seqNo = payload["seqNo"]?.intValue
            let duringOutage = eventTs.flatMap {
                self.outages.period(of: chargePoint, containing: $0 + self.outages.lag(of: chargePoint), tolerance: self.clockToleranceMicros)
            }
            if payload["offline"]?.boolValue == true || duringOutage != nil {
                transaction.recovery.queued = true
                if eventType == "Started" {
                    self.offlineStart(
                        "transaction \(id)", tag: payload["idToken"]?["idToken"]?.stringValue, outageRef: duringOutage?.endRef,
                        since: duringOutage?.start ?? eventTs.map { $0 + self.outages.lag(of: chargePoint) }, path: "/idToken/idToken", state: state,
                        record: record, analyzer: analyzer
                    )
                }
            }
            if let seqNo { self.sequenced(seqNo, eventType: eventType, at: eventTs, in: &transaction, state: state, record: record, analyzer: analyzer) }
            // On the proxy's clock: the charger's clock may lag (or lead) the proxy's by what its live messages showed.
            let flaggedOffline = payload["offline"]?.boolValue == true
            if !flaggedOffline, eventTs != nil, let outage = duringOutage, transaction.offlineReported != outage.end {
                // Once per transaction and outage: the events after it are the same defect.
                transaction.offlineReported = outage.end
                transaction.recovery.found("tx.offlineNotFlagged", ref: record.reference)
                self.deviation(
                    "tx.offlineNotFlagged",
                    "\(eventType) event of transaction \(id) is dated \(payload["timestamp"]?.stringValue ?? "?"), while the charger was offline (\(outage.ending)), and does not say offline: true; its later events of this outage are not listed again",
                    path: "/offline", state: state, record: record, analyzer: analyzer, related: [outage.endRef]
                )
            } else if !flaggedOffline, let eventTs, duringOutage == nil {
                // A live event: how far the charger's clock runs behind. (One dated in an outage, reported already
                // for its transaction, was queued: its delay says nothing of the clock.)
                self.outages.observe(chargePoint, dated: eventTs, seenAt: ts)
            }
            for sample in samples {
                self.observe(sample, in: &transaction, recordTs: ts, state: state, record: record, analyzer: analyzer, stopTs: eventType == "Ended" ? eventTs : nil)
            }
            if let token = payload["idToken"]?["idToken"]?.stringValue, transaction.billing.idToken == nil { transaction.billing.idToken = String(token.prefix(64)) }
            if let chargingState = payload["transactionInfo"]?["chargingState"]?.stringValue { transaction.billing.enter(chargingState, at: eventTs) }
            if transaction.startWh == nil, transaction.billing.firstRegisterWh == nil, let first = samples.first?.wh { transaction.billing.firstRegisterWh = first }
            self.signedValues(payload["meterValue"], base: "/meterValue", in: &transaction, state: state, record: record, analyzer: analyzer)
            // The periodic ones only: the Ended event's readings (TxEndedMeasurands) repeat them.
            if eventType == "Updated" {
                for wh in BillingState.intervalReadings(payload["meterValue"], version: state.version) { transaction.billing.interval(wh) }
                for reading in BillingState.powerReadings(payload["meterValue"], version: state.version) { transaction.billing.power(reading.watts, at: reading.ts) }
            }
            // 2.0.1 C15.FR.03/04: a charger that stops on an invalid identifier suspends the energy (Updated) or ends the transaction (Ended), triggered by Deauthorized.
            if eventType == "Updated", payload["triggerReason"]?.stringValue == "Deauthorized", !self.invalidStarts.isEmpty {
                self.stoppedAfterInvalid(id, chargePoint: chargePoint, record: record, ts: ts, analyzer: analyzer)
            }
            if eventType == "Updated" {
                self.meterReadings(payload["meterValue"], base: "/meterValue", periodic: true, in: &transaction, state: state, record: record, analyzer: analyzer)
            }
            if eventType == "Ended" {
                self.stopReadings(payload["meterValue"], in: &transaction, state: state, record: record)
                if let eventTs, let latest = transaction.latestSample, latest.ts > eventTs + self.clockToleranceMicros, latest.ref != record.reference {
                    self.deviation("tx.timestampOutside", "reading at \(latest.timestamp) (\(latest.ref)) is after the transaction ended at \(payload["timestamp"]?.stringValue ?? "?")", path: "/timestamp", state: state, record: record, analyzer: analyzer)
                }
                self.stop(transaction, at: eventTs, timestamp: payload["timestamp"]?.stringValue, stopWh: transaction.lastWh, state: state, record: record, analyzer: analyzer)
                self.stopped[chargePoint]?[id]?.endSeqNo = seqNo
                let last = max(seqNo ?? -1, transaction.events.highest?.seqNo ?? -1)
                if last >= 0 { self.stopped[chargePoint]?[id]?.missing = transaction.events.missing(upTo: last) }
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
    /// `late`: it came after its CALL timed out; it only gives an id to a start that still has none.
    func response(start: PendingStart?, message: JSONValue, state: ConnectionState, analyzer: Analyzer, late: Bool = false) {
        guard let start, let transactionId = message[2]?["transactionId"] else { return }
        let chargePoint = state.chargePoint
        let id = JSONWriter.string(transactionId)
        self.assigned[chargePoint, default: []].append(id)
        if self.assigned[chargePoint]!.count > Self.recentlyAssignedKept { self.assigned[chargePoint]!.removeFirst() }
        var model = self.connectors[chargePoint] ?? ConnectorTransactions()
        defer { self.connectors[chargePoint] = model.isEmpty ? nil : model }
        let assigned = start.slotKey.map { model.assign(id, toStart: $0) != nil } ?? false
        if !assigned, let connector = start.connector, let running = model.running(on: connector), running.startDigest == start.digest {
            // The answer to a start sent again while the first was unanswered gives the running start its id.
            if running.id == nil { model.assign(id, on: connector) } else if late { return }
        } else if !assigned, late {
            return
        }
        if !assigned, let connector = start.connector, let running = model.running(on: connector), running.startDigest == start.digest,
            let earlier = running.id, earlier != id, var transaction = self.open[chargePoint]?.removeValue(forKey: earlier)
        {
            // The answer to a resent start: the charger goes on with the id it got, which replaces the earlier one.
            transaction.id = id
            self.renameInvalidStart(from: earlier, to: id, chargePoint: chargePoint)
            self.open[chargePoint, default: [:]][id] = transaction
            model.start(.init(id: id, connector: connector, since: running.since, startDigest: start.digest))
            return
        }
        var begun = Transaction(
            id: id, chargePoint: chargePoint, startWh: start.meterStart, startTs: start.timestamp.flatMap(RFC3339.parse)?.microseconds,
            startTimestamp: start.timestamp, lastWh: start.meterStart, startAction: "StartTransaction", startMessageId: start.messageId,
            startRecordTs: start.recordTs, startRef: start.ref, connector: start.connector, run: self.run
        )
        begun.authorizedOnline = start.authorizedOnline
        begun.billing.idToken = start.idTag
        // A connector reported Charging (or suspended) before the start was answered: that state from the start on.
        if let connector = start.connector, let seen = self.statuses[chargePoint]?[connector], ["Charging", "SuspendedEV", "SuspendedEVSE"].contains(seen.status) {
            begun.billing.enter(seen.status, at: begun.startTs)
        }
        self.begin(begun, analyzer: analyzer)
    }

    // MARK: Rules

    private func observe(
        _ sample: Sample, in transaction: inout Transaction, recordTs: Int64, state: ConnectionState, record: CaptureRecord,
        analyzer: Analyzer, stopTs: Int64? = nil
    ) {
        let chargePoint = state.chargePoint
        if let ts = sample.ts, !transaction.recovery.queued,
            self.outages.period(of: chargePoint, containing: ts + self.outages.lag(of: chargePoint), tolerance: self.clockToleranceMicros) != nil
        {
            transaction.recovery.queued = true
        }
        // A start stamped when it was delivered after an outage, not when it happened: its readings were taken
        // during the outage (docs/rules.md, tx.stampedAtDelivery).
        if let ts = sample.ts {
            if let start = transaction.startTs, ts < start - self.clockToleranceMicros,
                let outage = self.outages.period(of: chargePoint, before: ts, tolerance: self.clockToleranceMicros),
                start >= outage.end - self.clockToleranceMicros
            {
                // The start's time is the delivery's, and so is that of a reading it carried: it orders nothing.
                if let lastTs = transaction.lastTs, lastTs >= outage.end - self.clockToleranceMicros { transaction.lastTs = nil }
                if !transaction.stampedReported {
                    self.stampedAtDelivery(
                        "the transaction's start is dated \(transaction.startTimestamp ?? "?"), after the charger reconnected (\(outage.endRef)), but its reading at \(sample.timestamp ?? "?") was taken during the outage: the queued start was stamped when it was delivered",
                        sample, outage: outage, in: &transaction, state: state, record: record, analyzer: analyzer
                    )
                }
            } else if let start = transaction.startTs, ts < start - self.clockToleranceMicros {
                self.deviation("tx.timestampOutside", "reading at \(sample.timestamp ?? "?") is before the transaction started (\(transaction.startTimestamp ?? "?"))", path: sample.path, state: state, record: record, analyzer: analyzer)
            } else if let stop = stopTs, ts > stop + self.clockToleranceMicros {
                self.deviation("tx.timestampOutside", "reading at \(sample.timestamp ?? "?") is after the transaction stopped", path: sample.path, state: state, record: record, analyzer: analyzer)
            }
            if ts > recordTs + self.futureToleranceMicros {
                self.deviation("tx.timestampInFuture", "reading timestamped \(sample.timestamp ?? "?"), after the message was sent", path: sample.path, state: state, record: record, analyzer: analyzer)
            }
        }
        if let ts = sample.ts { self.instant(sample, at: ts, in: &transaction, state: state, record: record, analyzer: analyzer) }
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

    /// The most energy a charger can deliver per second (1 MW, above today's fastest DC chargers but for the
    /// megawatt ones), against which a start and a later reading are judged: more energy between them than could
    /// flow in the time between their timestamps (plus the timestamps' resolution, a second or the clock
    /// tolerance) means they were not taken at those times.
    static let mostWhPerSecond = 1_000_000.0 / 3600

    /// `tx.stampedAtDelivery`, second form (1.6 as 2.0.1): a transaction whose start was delivered at a
    /// reconnection and stamped at or after it, and a later reading (the stop's included) with more energy since
    /// the start than could flow in the time between their stamps: the queue was stamped when it went out, not
    /// when things happened. A session that truly began at the reconnection has readings that follow it in time.
    private func instant(_ sample: Sample, at ts: Int64, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        // Judged for every reading until reported (its start's own message aside), the stop's included.
        guard sample.context != "Transaction.Begin", record.reference != transaction.startRef, !transaction.stampedReported, !transaction.authorizedOnline
        else { return }
        let resolution = max(1, Double(self.clockToleranceMicros) / 1_000_000)
        let lag = self.outages.lag(of: state.chargePoint)
        guard let startTs = transaction.startTs, let startWh = transaction.startWh, ts >= startTs,
            sample.wh - startWh > Self.mostWhPerSecond * (Double(ts - startTs) / 1_000_000 + resolution),
            let outage = self.outages.reconnection(
                of: state.chargePoint, before: record.ts?.microseconds ?? ts, dated: startTs + lag, tolerance: self.clockToleranceMicros
            ),
            // The start itself was delivered at that reconnection (its queue), not later in the connection.
            let startArrival = transaction.startRecordTs.flatMap(RFC3339.parse)?.microseconds, startArrival <= outage.end + Outages.reconnectionWindow
        else { return }
        self.stampedAtDelivery(
            "transaction \(transaction.id) is dated \(transaction.startTimestamp ?? "?") and its reading \(sample.timestamp ?? "?"), both at or after the charger reconnected (\(outage.endRef)), yet \(Self.wh(sample.wh - startWh)) lie between them, more than a charger delivers in that time: the queued messages were stamped when they were delivered",
            sample, outage: outage, in: &transaction, state: state, record: record, analyzer: analyzer
        )
    }

    /// `tx.stampedAtDelivery`, once per transaction, on `sample`, citing the start and the reconnection.
    private func stampedAtDelivery(
        _ detail: String, _ sample: Sample, outage: Outages.Period, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord,
        analyzer: Analyzer
    ) {
        transaction.stampedReported = true
        // Its messages were queued, whatever the times they carry say.
        transaction.recovery.queued = true
        transaction.recovery.found("tx.stampedAtDelivery", ref: record.reference)
        self.deviation(
            "tx.stampedAtDelivery", detail, path: sample.path, state: state, record: record, analyzer: analyzer,
            related: [transaction.startRef, outage.endRef]
        )
    }

    private func checkFuture(_ timestamp: String?, path: String, recordTs: Int64, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        guard let timestamp, let parsed = RFC3339.parse(timestamp), parsed.microseconds > recordTs + self.futureToleranceMicros else { return }
        self.deviation("tx.timestampInFuture", "timestamp \(timestamp) is after the message was sent", path: path, state: state, record: record, analyzer: analyzer)
    }

    /// A 1.6 StartTransaction answered with a CALLERROR: it runs nothing on its connector. (One left unanswered
    /// stays, without an id, so that the charger's resend of it is known as one.)
    func abandon(_ start: PendingStart?, chargePoint: String) {
        guard let key = start?.slotKey else { return }
        self.connectors[chargePoint]?.abandon(start: key)
    }

    /// Ends a transaction: it is no longer open, and is kept a while as stopped. A 1.6 status Available on its
    /// connector dated after its start and before this stop is judged now that the stop's time is known.
    private func stop(
        _ transaction: Transaction, at stopTs: Int64?, timestamp: String?, stopWh: Double?, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        let chargePoint = transaction.chargePoint
        let ref = record.reference
        self.signedEnds(transaction, state: state, record: record, analyzer: analyzer)
        analyzer.billed(Self.billingRow(transaction, stopTs: stopTs, timestamp: timestamp, stopWh: stopWh, ref: ref, pair: analyzer.pair(of: chargePoint)))
        self.judgeCadence(transaction, stopTs: stopTs, state: state, record: record, analyzer: analyzer)
        if !self.invalidStarts.isEmpty {
            self.stoppedAfterInvalid(transaction.id, chargePoint: chargePoint, record: record, ts: record.ts?.microseconds ?? 0, analyzer: analyzer)
        }
        self.open[chargePoint]?.removeValue(forKey: transaction.id)
        self.connectors[chargePoint]?.end(transaction.id)
        if self.connectors[chargePoint]?.isEmpty == true { self.connectors.removeValue(forKey: chargePoint) }
        if let available = transaction.availableDuring, let stopTs, stopTs > available.ts + self.clockToleranceMicros {
            analyzer.report(
                Deviation(
                    rule: "connector.statusDuringTransaction", severity: transaction.run != available.run ? .info : nil, chargePoint: chargePoint,
                    direction: .toCSMS, action: "StatusNotification", messageId: available.messageId, path: "/status",
                    detail: "\(transaction.connector?.description ?? "the connector") reported Available at \(available.timestamp ?? "?") while transaction \(transaction.id) ran on it (started \(transaction.startTimestamp ?? "?") at \(transaction.startRef), stopped \(timestamp ?? "?") at \(ref))"
                        + (transaction.run != available.run ? "; provisional: the transaction began in an earlier proxy run" : ""),
                    ts: available.timestamp, ref: available.ref, related: [transaction.startRef, ref]
                ),
                in: state
            )
        }
        self.begun += 1
        var stopped = self.stopped[chargePoint] ?? [:]
        stopped[transaction.id] = Stopped(
            stopTs: stopTs, stopTimestamp: timestamp, stopRef: ref, seen: transaction.seen.keeping(last: Self.seenAfterStop), sequence: self.begun, endTs: record.timestamp,
            chargePoint: chargePoint, recovery: transaction.recovery, startRef: transaction.startRef, version: state.version
        )
        if stopped.count > Self.stoppedKept, let oldest = stopped.min(by: { $0.value.sequence < $1.value.sequence }) {
            stopped.removeValue(forKey: oldest.key)
            self.reportGap(oldest.value, id: oldest.key, analyzer: analyzer)
        }
        self.stopped[chargePoint] = stopped
    }

    /// A 2.0.1 event's seqNo (E 1.3.2): kept for the gap check at the end, and compared with the event
    /// numbered highest so far: a later number must not carry an earlier time, nor an earlier number a later
    /// one (queued events keep their order and the times they happened).
    private func sequenced(
        _ seqNo: Int, eventType: String, at eventTs: Int64?, in transaction: inout Transaction, state: ConnectionState, record: CaptureRecord,
        analyzer: Analyzer
    ) {
        guard EventSequence.followed(seqNo) else { return }
        if eventType == "Started" {
            transaction.events.started = seqNo
            // A Started event numbered other than 0 while another transaction of the charger runs: the charger
            // numbers its events per station, not per transaction (1.3.2 asks for 0), and its transactions'
            // numbers interleave.
            if seqNo != 0, self.open[state.chargePoint]?.values.contains(where: { $0.id != transaction.id && !$0.events.seen.isEmpty }) == true {
                self.sharedCounter.insert(state.chargePoint)
            }
        }
        transaction.events.insert(seqNo)
        if self.chargerSeqNos[state.chargePoint]?.overflowed != true { self.chargerSeqNos[state.chargePoint, default: NumberRuns()].insert(seqNo) }
        if let eventTs, let highest = transaction.events.highest, let highestTs = highest.ts, seqNo != highest.seqNo {
            let contradicts = seqNo > highest.seqNo ? eventTs < highestTs - self.clockToleranceMicros : eventTs > highestTs + self.clockToleranceMicros
            // A Started event stamped at the reconnection, followed by events dated in the outage, is one cause:
            // tx.stampedAtDelivery, found on their readings.
            let startStampedLate = highest.seqNo == transaction.events.started
                && self.outages.period(of: state.chargePoint, before: eventTs, tolerance: self.clockToleranceMicros).map { highestTs >= $0.end - self.clockToleranceMicros } == true
            if contradicts && !startStampedLate {
                transaction.recovery.found("tx.seqNoTimeOrder", ref: record.reference)
                self.deviation(
                    "tx.seqNoTimeOrder",
                    "event \(seqNo) of transaction \(transaction.id) is dated \(seqNo > highest.seqNo ? "before" : "after") event \(highest.seqNo) (\(highest.ref)): the numbers and the times disagree about the order the events happened in",
                    path: "/timestamp", state: state, record: record, analyzer: analyzer, related: [highest.ref]
                )
            }
        }
        if seqNo > (transaction.events.highest?.seqNo ?? Int.min) { transaction.events.highest = (seqNo, eventTs, record.reference) }
    }

    /// `tx.seqNoGap` for a 2.0.1 transaction whose events, once no late one can come any more, still miss numbers.
    private func reportGap(_ stopped: Stopped, id: String, analyzer: Analyzer) {
        var stopped = stopped
        defer { self.judgeRecovery(stopped, id: id, analyzer: analyzer) }
        var missing = stopped.missing
        // A charger numbering per station: the numbers its other transactions used are not missing from this one.
        if self.sharedCounter.contains(stopped.chargePoint), let all = self.chargerSeqNos[stopped.chargePoint], !all.overflowed {
            missing = missing.subtracting(all)
        }
        guard !missing.isEmpty else { return }
        stopped.recovery.found("tx.seqNoGap", ref: stopped.stopRef)
        let count = missing.count
        let numbers = missing.first(8).map(String.init).joined(separator: ", ") + (count > 8 ? ", ..." : "")
        analyzer.reportDetached(
            Deviation(
                rule: "tx.seqNoGap", chargePoint: stopped.chargePoint, action: "TransactionEvent",
                detail: "\(count) event(s) of transaction \(id) never arrived: seqNo \(numbers) (it ended with seqNo \(stopped.endSeqNo.map(String.init) ?? "?"))",
                ts: stopped.endTs, ref: stopped.stopRef
            ),
            chargePoint: stopped.chargePoint
        )
    }

    /// The `sessionRecovery` occurrence of a transaction with messages queued during an outage, once no late
    /// message of it can come any more.
    private func judgeRecovery(_ stopped: Stopped, id: String, analyzer: Analyzer) {
        guard stopped.recovery.queued, let checks = self.checks, checks.judgements.contains(.sessionRecovery) else { return }
        let findings = stopped.recovery.findings
        checks.judged(
            .sessionRecovery, findings.isEmpty ? .pass : .fail, chargePoint: stopped.chargePoint, version: stopped.version,
            pair: analyzer.pair(of: stopped.chargePoint),
            detail: "transaction \(id) (\(stopped.startRef)), queued during an outage and stopped at \(stopped.stopRef), "
                + (findings.isEmpty ? "was delivered in order, each message once, with the times its messages happened"
                    : "was delivered with " + findings.map { "\($0.rule) (\($0.ref))" }.joined(separator: ", ")),
            refs: [stopped.startRef, stopped.stopRef] + findings.map(\.ref)
        )
    }

    /// Decides the seqNo gaps of the charge point's stopped transactions (it is released) or of all of them
    /// (the capture ended): no late event can fill them any more.
    func reportGaps(of chargePoint: String? = nil, analyzer: Analyzer) {
        for key in chargePoint.map({ [$0] }) ?? Array(self.stopped.keys).sorted() {
            for (id, stopped) in (self.stopped[key] ?? [:]).sorted(by: { $0.value.sequence < $1.value.sequence }) {
                self.reportGap(stopped, id: id, analyzer: analyzer)
                self.stopped[key]?[id]?.missing = NumberRuns()
                self.stopped[key]?[id]?.recovery = Recovery()
            }
        }
    }

    /// Whether the message repeats one of the transaction's that came before (the charger resends a
    /// transaction message whose answer it did not get): then it is `tx.resent`, and not judged again.
    private func resent(_ key: Int, of id: String, seen: SeenMessages, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) -> Bool {
        guard let first = seen.ref(of: key) else { return false }
        self.deviation(
            "tx.resent", "\(record.action ?? "message") of transaction \(id) repeats the one at \(first): a resend of a message whose answer the charger did not get",
            path: nil, state: state, record: record, analyzer: analyzer, related: [first]
        )
        return true
    }

    /// A message naming a transaction that is not open. For one that stopped: a resend of a message already
    /// seen (`tx.resent`); readings all dated before the stop that arrived after it (`tx.deliveredAfterStop`);
    /// anything else names a transaction that is over (`tx.unknownTransactionId`). `times` are the message's
    /// readings' timestamps (its own timestamp when it has no readings).
    private func notOpen(
        _ id: String, key: Int, times: [Int64], seqNo: Int? = nil, path: String, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        let chargePoint = state.chargePoint
        guard var stopped = self.stopped[chargePoint]?[id] else {
            self.unknown(id, path: path, state: state, record: record, analyzer: analyzer)
            return
        }
        defer { self.stopped[chargePoint]?[id] = stopped }
        if self.resent(key, of: id, seen: stopped.seen, state: state, record: record, analyzer: analyzer) { return }
        stopped.seen.add(key, ref: record.reference)
        let stopText = "\(stopped.stopTimestamp ?? "?") (\(stopped.stopRef))"
        // 2.0.1 orders a transaction's events by seqNo and expects them reordered after retries (E 1.3.2).
        if state.version != .v16, let seqNo, let endSeqNo = stopped.endSeqNo {
            stopped.missing.remove(seqNo)
            if seqNo < endSeqNo {
                self.deviation(
                    "tx.deliveredAfterStop",
                    "event \(seqNo) of transaction \(id) was delivered after its Ended event (\(endSeqNo), \(stopped.stopRef)); 2.0.1 orders events by seqNo, so this reordering is allowed",
                    path: "/seqNo", state: state, record: record, analyzer: analyzer, related: [stopped.stopRef], severity: .info
                )
            } else {
                self.deviation(
                    "tx.unknownTransactionId", "event \(seqNo) of transaction \(id) follows its Ended event (\(endSeqNo), \(stopped.stopRef)), which must be the last",
                    path: "/seqNo", state: state, record: record, analyzer: analyzer, related: [stopped.stopRef]
                )
            }
            return
        }
        if record.action != "StopTransaction", !times.isEmpty, let stopTs = stopped.stopTs, times.allSatisfy({ $0 <= stopTs + self.clockToleranceMicros }) {
            stopped.recovery.found("tx.deliveredAfterStop", ref: record.reference)
            self.deviation(
                "tx.deliveredAfterStop",
                "\(record.action ?? "message") of transaction \(id), dated before its stop at \(stopText), was delivered after the stop",
                path: path, state: state, record: record, analyzer: analyzer, related: [stopped.stopRef]
            )
            return
        }
        self.deviation(
            "tx.unknownTransactionId", "transaction \(id) stopped at \(stopText); this \(record.action ?? "message") names it afterwards",
            path: path, state: state, record: record, analyzer: analyzer, related: [stopped.stopRef]
        )
    }

    /// A transaction the proxy never saw begin, of a charger of which it has seen no transaction at all: it may
    /// have begun before the capture (the proxy put in during a pilot, or restarted). Reported once, as `info`,
    /// and followed from here on. Nil when the capture knows this charger's transactions (the id then
    /// contradicts them), and for 1.6's -1.
    private func adopt(
        _ id: String, connector: Connector?, path: String, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer
    ) -> Transaction? {
        let chargePoint = state.chargePoint
        guard !(state.version == .v16 && id == "-1"), self.stopped[chargePoint]?[id] == nil, self.assigned[chargePoint]?.contains(id) != true,
            self.released[chargePoint]?.contains(id) != true
        else { return nil }
        if let connector {
            // 1.6: no transaction began on that connector in view (one that did would have its start here);
            // 2.0.1: none runs on that EVSE (events may arrive before their Started event, E 1.3.2).
            if self.connectors[chargePoint]?.running(on: connector) != nil { return nil }
            if state.version == .v16, self.beganInView[chargePoint]?.contains(connector.unit) == true { return nil }
        } else if !(self.open[chargePoint]?.isEmpty ?? true) {
            // A message naming no connector cannot be told from a wrong id while other transactions run.
            return nil
        }
        self.sawBegin(on: connector, of: chargePoint)
        self.deviation(
            "tx.unknownTransactionId",
            "the proxy never saw transaction \(id) begin" + (connector.map { " on \($0)" } ?? "") + ": it may have begun before the capture (or its events arrived before its start); followed from here on",
            path: path, state: state, record: record, analyzer: analyzer, severity: .info
        )
        var adopted = Transaction(
            id: id, chargePoint: chargePoint, startWh: nil, startTs: nil, startTimestamp: nil, startAction: record.action ?? "?",
            startMessageId: record.messageId, startRecordTs: record.timestamp, startRef: record.reference, connector: connector, run: self.run
        )
        adopted.version = state.version
        self.begin(adopted, analyzer: analyzer)
        if let connector { self.connectors[chargePoint, default: ConnectorTransactions()].start(.init(id: id, connector: connector, since: ts)) }
        return self.open[chargePoint]?[id]
    }

    private func unknown(_ id: String, path: String, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        // A charger that never got its transaction id sends -1, which the CSMS must accept (1.6 errata 3.18).
        if state.version == .v16, id == "-1" { return }
        // Released after the state retention and reported then (tx.notStopped): its late messages are that finding's.
        if self.released[state.chargePoint]?.contains(id) == true { return }
        let detail: String
        if state.version != .v16 {
            detail = "transaction \(id) has no Started event"
        } else if self.assigned[state.chargePoint]?.contains(id) == true {
            detail = "transaction id \(id) was assigned, but is no longer followed: it stopped more than \(Self.stoppedKept) transactions ago, or was dropped past the bound of open transactions"
        } else {
            let known = self.assigned[state.chargePoint]?.joined(separator: ", ") ?? ""
            detail = "transaction id \(id) is not open on this charger: the CSMS never assigned it, or it is no longer followed (released after the state retention, or past the bound of open transactions)"
                + (known.isEmpty ? "" : " (last assigned: \(known))")
        }
        self.deviation("tx.unknownTransactionId", detail, path: path, state: state, record: record, analyzer: analyzer)
    }

    /// A StatusNotification: its connector's latest status, the 1.6 rule on connector 0, and an Available on a
    /// connector whose transaction runs, which that transaction's stop judges (`stop`).
    private func status(_ payload: JSONValue, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer) {
        guard let connector = Connector.named(action: "StatusNotification", payload: payload, version: state.version) else { return }
        self.connectorOfRecord = connector
        let chargePoint = state.chargePoint
        let status = (state.version == .v16 ? payload["status"] : payload["connectorStatus"])?.stringValue ?? "?"
        let timestamp = payload["timestamp"]?.stringValue
        let statusTs = timestamp.flatMap(RFC3339.parse)?.microseconds ?? ts
        let seen = StatusSeen(status: status, ts: statusTs, timestamp: timestamp ?? record.timestamp, ref: record.reference, messageId: record.messageId, run: self.run)
        var statuses = self.statuses[chargePoint] ?? [:]
        if let known = statuses[connector] {
            if known.ts <= statusTs || known.run != self.run { statuses[connector] = seen }
        } else if statuses.count < ConnectorTransactions.unitsLimit {
            statuses[connector] = seen
        }
        self.statuses[chargePoint] = statuses
        guard state.version == .v16 else { return }
        if connector.isStation {
            if !["Available", "Unavailable", "Faulted"].contains(status) {
                self.deviation(
                    "connector.zeroStatus", "connector 0 (the charge point as a whole) reported \(status); OCPP 1.6 allows only Available, Unavailable and Faulted there",
                    path: "/status", state: state, record: record, analyzer: analyzer
                )
            }
            return
        }
        // The running transaction's charging and parking time (docs/billing.md), on the charger's clock.
        if let id = self.connectors[chargePoint]?.running(on: connector)?.id, self.open[chargePoint]?[id] != nil {
            // A status without a timestamp is on the proxy's clock: it would mix two clocks, so it leaves the times out.
            self.open[chargePoint]?[id]?.billing.enter(status, at: timestamp == nil ? nil : statusTs)
        }
        // Judged on the charger's own clock only: a status without a timestamp (optional in 1.6) is not compared
        // with the stop's time.
        if status == "Available", timestamp != nil, let id = self.connectors[chargePoint]?.running(on: connector)?.id,
            var transaction = self.open[chargePoint]?[id], transaction.availableDuring == nil, let startTs = transaction.startTs,
            statusTs > startTs + self.clockToleranceMicros
        {
            transaction.availableDuring = seen
            self.open[chargePoint]?[id] = transaction
        }
    }

    /// A start replaced `previous` on `connector` in the model: that transaction is displaced, once reported as
    /// `connector.transactionBusy` on the message that shows it (and not later as `tx.notStopped`).
    private func displace(
        _ previous: ConnectorTransactions.Running?, on connector: Connector, by id: String? = nil, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        let chargePoint = state.chargePoint
        guard let previousId = previous?.id, previousId != id, var displaced = self.open[chargePoint]?[previousId] else { return }
        displaced.displaced = true
        self.open[chargePoint]?[previousId] = displaced
        self.busy(connector, running: displaced, state: state, record: record, analyzer: analyzer)
    }

    /// A transaction started on a connector that had one running (the message that shows it).
    private func busy(_ connector: Connector, running: Transaction, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer) {
        self.deviation(
            "connector.transactionBusy",
            "a transaction started on \(connector) while transaction \(running.id) ("
                + (running.startTimestamp.map { "started \($0) at \(running.startRef)" } ?? "first seen mid-way at \(running.startRef)") + ") was still running there",
            path: state.version == .v16 ? "/connectorId" : "/evse/id", state: state, record: record, analyzer: analyzer, related: [running.startRef],
            provisional: running.run != self.run
        )
    }

    /// `provisional`: the finding rests on state carried over from an earlier proxy run, which nobody watched in
    /// between; it is `info`.
    func deviation(
        _ rule: String, _ detail: String, path: String?, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer, related: [String] = [],
        provisional: Bool = false, severity: Severity? = nil
    ) {
        analyzer.report(
            Deviation(
                rule: rule, severity: provisional ? .info : severity, chargePoint: state.chargePoint, direction: record.direction, action: record.action,
                messageId: record.messageId, path: path,
                detail: provisional ? detail + "; provisional: it rests on state from an earlier proxy run, not watched in between" : detail,
                ts: record.timestamp, ref: record.reference, related: related
            ),
            in: state
        )
    }

    /// The times of every meter value of a message (whatever it measured).
    static func timestamps(_ meterValues: JSONValue?) -> [Int64] {
        guard case .array(let values) = meterValues else { return [] }
        return values.compactMap { $0["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds }
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
