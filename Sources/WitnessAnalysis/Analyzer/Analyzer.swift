import Foundation
import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessPolicy
import WitnessModel

/// Applies the deviation rules to a stream of capture records, in constant memory per open connection.
///
/// The same analyzer runs live in the proxy (fed by the recorder) and offline over capture files, so a
/// report made from a capture equals what was seen live.
public final class Analyzer {
    public let configuration: AnalyzerConfiguration
    private let schemas: SchemaRegistry?
    private let validator: SchemaValidator
    /// Called for every deviation as it is found (live logging and metrics).
    public var onDeviation: ((Deviation) -> Void)?

    /// Runs (capture headers' start times) by number, and the number of the run the current records
    /// belong to: connection numbers restart with every proxy run, so a connection is known by both.
    private var runs: [String: Int] = [:]
    private var runNumber = -1
    private var backend = "unknown backend"
    /// The policy the current proxy run applied (its header's; empty: none).
    private var policy = ""
    private var connections: [ConnectionKey: ConnectionState] = [:]
    private var identities: [String: ChargerIdentity] = [:]
    /// The backend each charge point was last seen talking to.
    private var backendOf: [String: String] = [:]
    var transactions = TransactionTracker()
    var pairs: [PairKey: PairStatistics] = [:]
    /// The backend's commands awaiting their effect.
    var commands = Commands()
    /// Features claimed and used, per pair (docs/reports.md, "Features").
    var features = FeatureObservations()
    /// Every stopped transaction's billing row (docs/billing.md).
    var billing = BillingLedger()

    /// Each charge point's meter public keys as its configuration shows them (1.6 MeterPublicKey, MeterPublicKey1 or
    /// MeterPublicKey[1]…: per connector, 0 for one without a number), at most 16 per charge point.
    private var configuredMeterKeys: [String: [Int: String]] = [:]

    /// The public key a charge point's signed meter values are checked with, where the message carries none: its
    /// configuration's for the connector (or its only one), else the report's key file's.
    func meterKey(of chargePoint: String, connector: Int?) -> String? {
        let configured = self.configuredMeterKeys[chargePoint] ?? [:]
        return connector.flatMap { configured[$0] } ?? configured[0] ?? self.configuration.meterKeys[chargePoint] ?? self.configuration.meterKeys["*"]
    }

    /// The `billingReconciles` checks: one verdict per stopped transaction, by its row's findings.
    func billingJudged() {
        guard let checks = self.checks, checks.judgements.contains(.billingReconciles) else { return }
        for row in self.billing.rows where self.pairs[row.pair] != nil {
            let refs = [row.startRef, row.stopRef] + (row.costRef.map { [$0] } ?? [])
            if !row.findings.isEmpty {
                let side: (Deviation.Side, String) = row.findings.contains("billing.priceMismatch")
                    ? (.backend, "the backend priced the session otherwise than the site's tariff") : (.charger, "the charger's meter values do not reconcile")
                checks.judged(
                    .billingReconciles, .fail, chargePoint: row.chargePoint, version: row.version, pair: row.pair,
                    detail: "transaction \(row.transaction) (\(row.startRef) to \(row.stopRef)): \(row.findings.joined(separator: ", "))", refs: refs, side: side
                )
            } else if row.signed, row.signatureValid == nil {
                checks.judged(
                    .billingReconciles, .inconclusive, chargePoint: row.chargePoint, version: row.version, pair: row.pair,
                    detail: "transaction \(row.transaction) (\(row.startRef) to \(row.stopRef)): its signed meter values could not be checked (no key, or an algorithm not checked)",
                    refs: refs
                )
            } else {
                let priced = row.expected.map { " priced \(Self.format($0)) as the tariff gives" + (row.backendTotal != nil && row.backendFinal ? ", as the backend charged" : "") } ?? ""
                let signed = row.signatureValid == true ? ", its signed meter values verify" : ""
                checks.judged(
                    .billingReconciles, .pass, chargePoint: row.chargePoint, version: row.version, pair: row.pair,
                    detail: "transaction \(row.transaction) (\(row.startRef) to \(row.stopRef)) reconciles: \(row.registerWh.map { "\(Self.format($0)) Wh by the register" } ?? "no register energy")\(priced)\(signed)",
                    refs: refs
                )
            }
        }
    }

    /// A stopped transaction's billing row (live, with `keepsBillingRows` off, none: the sheet is the report's).
    func billed(_ row: BillingRow) {
        if self.configuration.keepsBillingRows { self.billing.add(row) }
    }
    private var listed: [Deviation] = []
    private var listedPerKey: [String: Int] = [:]
    private var countsByRule: [String: Int] = [:]
    private var countsBySide: [Deviation.Side: Int] = [:]
    private var files: [String] = []
    private var records = 0
    private var lastTs: Int64 = 0
    let checks: CheckEvaluator?
    /// Charge points gone longer than the state retention, whose transactions are then released.
    private var departures: Departures
    /// The policy's faults that touched each charge point's traffic: what explains a finding (docs/reports.md, "Whose side").
    let faults = FaultTouches()

    public init(schemas: SchemaRegistry?, configuration: AnalyzerConfiguration = AnalyzerConfiguration()) {
        self.schemas = schemas
        self.configuration = configuration
        self.validator = SchemaValidator(profile: configuration.profile)
        self.checks = configuration.checks.isEmpty ? nil : CheckEvaluator(checks: configuration.checks)
        self.checks?.faults = self.faults
        self.departures = configuration.stateRetentionSeconds.map { Departures(retentionSeconds: Self.retention($0, configuration)) } ?? .never
        self.transactions.run = self.runNumber
        self.transactions.site = configuration.site
        self.transactions.checks = self.checks
        self.transactions.intervalTolerance = configuration.intervalToleranceInForce
        self.commands.windowMicros = Int64(min(max(configuration.commandWindowSeconds, 0), 30 * 86_400) * 1_000_000)
    }

    /// The pair a charge point belongs to as far as the capture has told so far.
    func pair(of chargePoint: String) -> PairKey { self.pairKey(chargePoint) }

    /// A transaction's row of its pair's cadence table.
    func cadenceRow(_ row: CadenceRow) {
        self.pairs[self.pairKey(row.chargePoint), default: PairStatistics()].cadence.add(row)
    }

    /// A retention never ends a check's window early: at least the longest `within` of the checks.
    private static func retention(_ seconds: Double, _ configuration: AnalyzerConfiguration) -> Double {
        max(seconds, configuration.checks.map(\.within).max() ?? 0)
    }

    // MARK: Feeding

    public func consume(_ record: CaptureRecord) {
        let message = record.message
        self.current = CurrentRecord(
            file: record.file, line: record.line, message: message, fields: message == nil ? record.fields : nil, fault: Self.fault(of: record),
            injected: record.injected
        )
        self.answeredCallPayload = nil
        self.transactions.connectorOfRecord = nil
        self.transactions.pendingStartOfRecord = nil
        defer { self.current = nil }
        self.records += 1
        if self.files.last != record.file { self.files.append(record.file) }
        let ts = record.ts?.microseconds ?? self.lastTs
        // The time the records read so far reached: a new run's header must not decide what the run before it
        // was waiting for by its own, later, time.
        let reached = self.lastTs
        self.lastTs = max(self.lastTs, ts)
        if record.recordKind == .header, self.runs[record.fields["started"]?.stringValue ?? record.file] == nil, self.runNumber >= 0 {
            // A new run: what the previous one was waiting for was not watched in between. Decided, by the time that
            // run reached, as a capture's end decides it, before anything is released by this header's later time.
            self.transactions.expireInvalidStarts(now: reached, ended: true, analyzer: self)
            self.commandsExpired(now: reached, ended: true)
        } else if record.recordKind != .header {
            // Due ones first: a charge point released below takes its waiting commands with it.
            self.transactions.expireInvalidStarts(now: ts, analyzer: self)
            self.commandsExpired(now: ts)
        }
        for chargePoint in self.departures.due(at: ts) { self.release(chargePoint) }
        switch record.recordKind {
        case .header:
            self.backend = record.fields["backend"]?.stringValue ?? "unknown backend"
            self.policy = record.fields["policy"]?.stringValue ?? ""
            if self.configuration.stateRetentionSeconds == nil, let seconds = record.fields[Departures.headerField]?.doubleValue {
                // As live analysis applied it (the proxy wrote the retention it used, checks' windows included).
                self.departures.retentionMicros = Departures.micros(seconds)
            }
            let run = record.fields["started"]?.stringValue ?? record.file
            // A rotated part of the same run repeats its start time: connections and outages go on.
            if self.runs[run] == nil { self.transactions.outages.newRun() }
            self.runNumber = self.runs[run] ?? self.runs.count
            self.runs[run] = self.runNumber
            self.transactions.run = self.runNumber
        case .open:
            let state = self.connection(for: record)
            self.transactions.outages.opened(state.chargePoint, at: ts, ref: record.reference)
            if record.fields["chosen"] == .null || record.fields["chosen"] == nil {
                self.report(Deviation(rule: "rpc.noSubprotocol", chargePoint: state.chargePoint, detail: "connection opened without an OCPP subprotocol; checked as OCPP 1.6", ts: record.timestamp, ref: record.reference), in: state)
            }
            self.security(record, state: state)
            self.webSocketFindings(record, state: state)
        case .reject:
            self.webSocketFindings(record, state: nil)
        case .error:
            // Breaches of RFC 6455 the relay recorded on a frame (masking, reserved bits): once per connection and rule.
            let state = self.key(record).flatMap { self.connections[$0] }
            self.webSocketFindings(record, state: state)
        case .frame:
            let state = self.connection(for: record)
            self.faults.note(record, chargePoint: state.chargePoint, ts: ts)
            if let fault = record.fault, fault["kind"]?.stringValue == "outage", fault["mode"]?.stringValue == "blackhole",
                let seconds = fault["seconds"]?.doubleValue, seconds.isFinite, seconds > 0, seconds <= 30 * 86_400
            {
                // The trigger of a blackhole outage: nothing gets through for its duration, to this charger or to all.
                let cutOff = fault["scope"]?.stringValue == "all" ? Set(self.connections.values.map(\.chargePoint)) : [state.chargePoint]
                for chargePoint in cutOff {
                    self.transactions.outages.cutOff(chargePoint, from: ts, to: ts + Int64(seconds * 1_000_000), ref: record.reference)
                }
            }
            self.expireCalls(in: state, now: ts)
            self.frame(record, state: state, ts: ts)
        case .close:
            if let key = self.key(record), let state = self.connections.removeValue(forKey: key) {
                self.expireCalls(in: state, now: ts)
                // Commands still unanswered on it never will be.
                self.commands.letGo(state.chargePoint)
                self.retire(state)
                self.departures.closed(state.chargePoint, at: ts)
                self.transactions.outages.closed(state.chargePoint, at: ts)
            }
        default:
            break
        }
        if let checks = self.checks, let chargePoint = record.chargePoint {
            let context = CheckEvaluator.Context(
                run: self.runNumber, pair: self.pairKey(chargePoint), answeredCallPayload: self.answeredCallPayload,
                connector: self.transactions.connectorOfRecord
            )
            checks.consume(record, context: context, pairOf: self.pairKey, connectorsOf: self.transactions.knownConnectors)
        }
    }

    /// The pair a charge point belongs to as far as the capture has told so far.
    func pairKey(_ chargePoint: String) -> PairKey {
        PairKey(charger: self.identities[chargePoint] ?? .unknown, backend: self.backendOf[chargePoint] ?? self.backend)
    }

    /// Closes what is still open and returns the report.
    /// The witness checks' verdicts so far, per pair, for a live view while records still come: settled
    /// checks as the report will have them, `pending` ones whose windows are open. Empty without checks.
    public func interimVerdicts() -> JSONValue {
        guard let checks = self.checks else { return .array([]) }
        var chargePoints = self.pairs.mapValues(\.chargePoints)
        for state in self.connections.values { chargePoints[self.pairKey(state.chargePoint), default: []].insert(state.chargePoint) }
        let interim = checks.interim(pairs: chargePoints, pairOf: self.pairKey)
        return .array(interim.keys.sorted().map { pair in
            Self.verdicts(of: pair, chargePoints: chargePoints[pair] ?? [], areas: interim[pair] ?? [])
        })
    }

    /// One pair's entry of a verdicts list (the live page's `/api/verdicts`): who, and its areas' verdicts.
    public static func verdicts(of pair: PairKey, chargePoints: Set<String>, areas: JSONValue) -> JSONValue {
        [
            "charger": ["vendor": .string(pair.charger.vendor), "model": .string(pair.charger.model), "firmware": .string(pair.charger.firmware)],
            "backend": .string(pair.backend), "chargePoints": .array(chargePoints.sorted().map(JSONValue.string)), "areas": areas,
        ]
    }

    public func finish(readIssues: [CaptureReadIssue] = []) -> AnalysisReport {
        for (_, state) in self.connections {
            self.expireCalls(in: state, now: self.lastTs)
            self.retire(state)
        }
        self.connections.removeAll()
        for open in self.transactions.openTransactions() {
            self.reportNotStopped(open, because: "was still open at the end of the capture")
        }
        self.transactions.reportGaps(analyzer: self)
        self.transactions.expireInvalidStarts(now: self.lastTs, ended: true, analyzer: self)
        self.transactions.recoveryStillOpen(analyzer: self)
        self.commandsExpired(now: self.lastTs, ended: true)
        self.commandSharesJudged()
        let matrix = self.featuresJudged()
        let billingFindings = self.billing.judge(tariff: self.configuration.site.tariff)
        self.billingJudged()
        for (row, rule, detail) in billingFindings {
            self.reportDetached(
                Deviation(rule: rule, chargePoint: row.chargePoint, action: row.version == .v16 ? "StopTransaction" : "TransactionEvent", detail: detail, ref: row.stopRef, related: [row.startRef] + (row.costRef.map { [$0] } ?? [])),
                pair: row.pair
            )
        }
        let areas = self.checks?.finish(lastTs: self.lastTs, pairs: self.pairs.mapValues(\.chargePoints), pairOf: self.pairKey) ?? [:]
        var pairs = self.pairs
        for key in areas.keys where pairs[key] == nil { pairs[key] = PairStatistics() }
        for (key, rows) in matrix where pairs[key] != nil { pairs[key]?.features = rows }
        for row in self.billing.rows where pairs[row.pair] != nil { pairs[row.pair]?.billing.append(row) }
        let reports = pairs.map { key, statistics in
            PairReport(
                key: key, statistics: statistics,
                areas: areas[key] ?? WitnessArea.allCases.map { AreaResult(area: $0, checks: []) }, scope: self.configuration.scope
            )
        }
        var report = AnalysisReport(
            files: self.files, records: self.records, profile: self.configuration.profile, deviations: self.listed,
            countsByRule: self.countsByRule, countsBySide: self.countsBySide, pairs: reports.sorted(), readIssues: readIssues, checksLoaded: self.configuration.checks.count,
            scope: self.configuration.scope
        )
        report.firmware = Regressions.compare(report.pairs, intervalTolerance: self.configuration.intervalToleranceInForce)
        report.billingRowsDropped = self.billing.dropped
        return report
    }

    // MARK: Connections

    private struct ConnectionKey: Hashable {
        var run: Int
        var connection: UInt64?
    }

    private func key(_ record: CaptureRecord) -> ConnectionKey? {
        record.connection.map { ConnectionKey(run: self.runNumber, connection: $0) }
    }

    private func connection(for record: CaptureRecord) -> ConnectionState {
        let key = self.key(record) ?? ConnectionKey(run: self.runNumber, connection: nil)
        if let state = self.connections[key] { return state }
        if let chargePoint = record.chargePoint { self.backendOf[chargePoint] = self.backend }
        let version = record.fields["version"]?.stringValue.flatMap(OCPPVersion.init(rawValue:)) ?? .v16
        let state = ConnectionState(chargePoint: record.chargePoint ?? "?", version: version, backend: self.backend)
        state.policy = self.policy
        state.openedAt = record.ts?.microseconds ?? self.lastTs
        self.connections[key] = state
        // Counted where it is forgotten (a close), so a connection known only from its frames counts too.
        self.departures.opened(state.chargePoint)
        return state
    }

    /// A charge point gone longer than the state retention: its transactions still open are reported as the
    /// end of a capture reports them, and forgotten. What the report lists per charge point (its identity,
    /// backend and counts) stays.
    private func release(_ chargePoint: String) {
        self.serials.removeValue(forKey: chargePoint)
        // Gone past the state retention: its windows (minutes) ended while the proxy watched.
        self.transactions.expireInvalidStarts(now: self.lastTs, of: chargePoint, analyzer: self)
        // Its commands still awaited are decided too (by then their windows have ended), not dropped.
        self.commandsExpired(now: self.lastTs, ended: true, of: chargePoint)
        self.commands.release(chargePoint)
        self.faults.release(chargePoint)
        self.billing.release(chargePoint)
        self.configuredMeterKeys.removeValue(forKey: chargePoint)
        self.transactions.reportGaps(of: chargePoint, analyzer: self)
        let retention = Double(self.departures.retentionMicros) / 1_000_000
        for open in self.transactions.release(chargePoint) {
            self.reportNotStopped(open, because: "was still open when the charge point had been gone for longer than the state retention (\(Self.format(retention)) s)")
        }
    }

    func reportNotStopped(_ open: TransactionTracker.Transaction, because reason: String) {
        let deviation = Deviation(
            rule: "tx.notStopped", chargePoint: open.chargePoint, action: open.startAction, messageId: open.startMessageId,
            detail: "transaction \(open.id) " + (open.startTimestamp.map { "started at \($0)" } ?? "first seen mid-way") + " \(reason)", ts: open.startRecordTs,
            ref: open.startRef
        )
        self.reportDetached(deviation, chargePoint: open.chargePoint)
    }

    private func retire(_ state: ConnectionState) {
        self.certificateJudged(state)
        let identity = state.identity ?? self.identities[state.chargePoint] ?? .unknown
        let key = PairKey(charger: identity, backend: state.backend)
        self.pairs[key, default: PairStatistics()].absorb(state)
    }

    // MARK: Security

    /// Charge points seen connecting over TLS, for `security.downgrade`.
    private var seenOverTLS: Set<String> = []

    /// The security profile of an opened connection and the findings a security review needs.
    /// The proxy's findings against RFC 6455: `findings` of an open or reject record (the upgrade request),
    /// or the `rule` of an error record (a frame). Rules the catalogue does not know are left to the record.
    private func webSocketFindings(_ record: CaptureRecord, state: ConnectionState?) {
        var found: [(rule: String, clause: String, detail: String)] = []
        if case .array(let findings)? = record.fields["findings"] {
            for finding in findings {
                guard let rule = finding["rule"]?.stringValue else { continue }
                found.append((rule, finding["clause"]?.stringValue ?? "", finding["detail"]?.stringValue ?? ""))
            }
        } else if let rule = record.fields["rule"]?.stringValue {
            found.append((rule, record.fields["clause"]?.stringValue ?? "", record.fields["detail"]?.stringValue ?? ""))
        }
        for (rule, clause, detail) in found where RuleCatalog.byId[rule] != nil {
            let text = clause.isEmpty || detail.contains(clause) ? detail : "\(detail) (\(clause))"
            let deviation = Deviation(
                rule: rule, chargePoint: record.chargePoint ?? state?.chargePoint, direction: record.direction ?? (record.recordKind == .error ? nil : .toCSMS),
                detail: text, ts: record.timestamp, ref: record.reference
            )
            if let state {
                self.report(deviation, in: state)
            } else {
                self.reportDetached(deviation, chargePoint: record.chargePoint ?? "?")
            }
        }
    }

    private func security(_ record: CaptureRecord, state: ConnectionState) {
        let facts = SecurityFacts(record)
        state.securityProfile = facts.profile
        func finding(_ rule: String, _ detail: String) {
            self.report(Deviation(rule: rule, chargePoint: state.chargePoint, detail: detail, ts: record.timestamp, ref: record.reference), in: state)
        }
        if let user = facts.basicUser, user != state.chargePoint {
            finding("security.basicUserMismatch", "Basic-auth user '\(user)' is not the charge point id '\(state.chargePoint)'")
        }
        // The CN holds the charger's serial number (A00.FR.405, .511); many sites use the charge point id. A CN
        // that is neither waits for the serial number of this connection's BootNotification (`certificateJudged`).
        if facts.clientCertificate, facts.certificateCommonName != state.chargePoint {
            state.pendingCertificate = .init(commonName: facts.certificateCommonName, ts: record.timestamp, ref: record.reference)
        }
        if facts.chargerTLS {
            self.seenOverTLS.insert(state.chargePoint)
        } else if self.seenOverTLS.contains(state.chargePoint) {
            finding("security.downgrade", "connected without TLS after having connected over TLS earlier in the capture")
        }
    }

    // MARK: Frames

    private func frame(_ record: CaptureRecord, state: ConnectionState, ts: Int64) {
        guard let direction = record.direction else { return }
        let stamp = record.stamp
        func deviation(_ rule: String, _ detail: String, path: String? = nil, severity: Severity? = nil, action: String? = record.action) -> Deviation {
            Deviation(
                rule: rule, severity: severity, chargePoint: state.chargePoint, direction: direction, action: action,
                messageId: record.messageId, path: path, detail: detail, ts: stamp.text, ref: record.reference
            )
        }
        switch record.opcode {
        case .binary:
            state.messages[direction] += 1
            self.report(deviation("rpc.binaryFrame", "binary frame of \(record.fields["size"]?.intValue ?? 0) bytes; OCPP-J uses text frames"), in: state)
            return
        case .text:
            state.messages[direction] += 1
        default:
            return
        }
        // Not UTF-8: not judged as OCPP-J further (one cause, one finding).
        if record.message == nil, record.fields["invalidUTF8"]?.boolValue == true {
            self.report(deviation("websocket.invalidUTF8", "text message of \(record.fields["size"]?.intValue ?? 0) bytes that are not UTF-8 (RFC 6455 8.1); kept as base64 in the capture"), in: state)
            // Its id still pairs it with its answer or its CALL, so that the other message is no second finding.
            if let id = record.messageId, let type = record.messageType {
                if type == .call {
                    let call = CallInCapture(stamp: stamp, file: record.file, line: record.line, valid: false, payload: nil, start: nil)
                    _ = state.correlator.observe(.call, messageId: id, action: record.action, direction: direction, atNanos: Timestamp(microseconds: ts).nanosecondsSince1970, context: call)
                } else if type.isResponse {
                    _ = state.correlator.settle(id, answerTravelling: direction)
                }
            }
            return
        }
        if let malformed = record.malformed {
            let reason = malformed["reason"]?.stringValue ?? "notJSON"
            // A CALL whose id is not a string (a number, say) is malformed; an answer that echoes that id, as a
            // string or as the same number, answers it, and is no second finding (OCPP-J 4.1.3).
            if reason == "messageIdNotString", let idText = record.message?[1].map({ JSONWriter.string($0) }),
                let type = record.message?[0]?.intValue.flatMap(MessageType.init(rawValue:))
            {
                if type == .call {
                    state.excuseAnswer(to: idText, callDirection: direction)
                } else if type.isResponse, state.takeExcusedAnswer(to: idText, callDirection: direction.reversed) {
                    return
                }
            }
            let rule = reason == "unknownMessageType" ? "rpc.unknownMessageType" : "rpc.malformed"
            self.report(deviation(rule, "\(reason): \(malformed["detail"]?.stringValue ?? "")"), in: state)
            return
        }
        guard let type = record.messageType, let id = record.messageId, let message = record.message else { return }
        if !state.version.allows(type) {
            self.report(deviation("rpc.messageTypeNotInVersion", "\(type.name) (\(type.rawValue)) is not defined in OCPP \(state.version.rawValue)"), in: state)
            // One cause, one finding: a message of a type the version lacks is not judged further against
            // that version (its action would be unknown there too). An answer still settles its CALL, which
            // is then not reported again as unanswered.
            if type.isResponse { self.answeredCallPayload = state.correlator.settle(id, answerTravelling: direction)?.context.payload }
            return
        }
        // The sender of the CALL chose the id; an answer must repeat it, so only the CALL is held to the limit.
        if !type.isResponse, id.utf8.count > 36, id.count > 36 {
            self.report(deviation("rpc.messageIdTooLong", "message id has \(id.count) characters; OCPP-J allows 36"), in: state)
        }
        let callDirection = type.isResponse ? direction.reversed : direction
        // A charger that sends anything else first will not boot on this connection: its certificate is judged
        // with the serial number it gave last.
        if type == .call, direction == .toCSMS, state.pendingCertificate != nil, record.action != "BootNotification" { self.certificateJudged(state) }
        switch type {
        case .call, .send:
            let action = record.action ?? ""
            var valid = true
            if let schemas = self.schemas {
                if let schema = schemas.request(state.version, action) {
                    valid = self.validate(message[3] ?? .null, schema, state: state, make: { deviation($0, $1, path: $2, severity: $3) })
                } else {
                    valid = false
                    self.report(deviation("rpc.unknownAction", "OCPP \(state.version.rawValue) has no action '\(action)'"), in: state)
                }
            }
            // The charger model first: it says which connector the CALL is about, which its answer inherits.
            self.transactions.request(action: action, message: message, state: state, record: record, ts: ts, analyzer: self)
            // After it: a BootNotification has told the pair by now.
            if valid || self.schemas == nil {
                let pair = self.pairKey(state.chargePoint)
                self.features.called(action, byCharger: direction == .toCSMS, injected: record.injected, version: state.version, pair: pair)
                // The running cost the backend sends during a transaction (2.0.1 CostUpdated, I02).
                if action == "CostUpdated", direction == .toCharger, !record.injected, let total = message[3]?["totalCost"]?.doubleValue,
                    let id = message[3]?["transactionId"]?.stringValue
                {
                    self.billing.cost(total, of: id, at: state.chargePoint, ref: record.reference, final: false)
                }
                // 1.6: the OCA's California pricing messages, in DataTransfer (RunningCost, FinalCost).
                if action == "DataTransfer", direction == .toCharger, !record.injected, state.version == .v16, let payload = message[3],
                    let cost = Self.californiaCost(payload)
                {
                    self.billing.cost(cost.total, of: cost.transaction, at: state.chargePoint, ref: record.reference, final: cost.final)
                }
                if action == "NotifyReport", direction == .toCSMS {
                    self.features.learnClaims(action: action, answer: nil, request: message[3], version: state.version, pair: pair, ref: record.reference)
                }
            }
            if type == .call, direction == .toCharger {
                self.commandSent(action, state: state, record: record)
            } else if type == .call, let payload = message[3] {
                self.commandEffects(action, payload: payload, state: state, record: record, ts: ts)
            }
            // Only checks ask which connector any other CALL is about.
            if self.checks != nil, self.transactions.connectorOfRecord == nil, let payload = message[3] {
                self.transactions.connectorOfRecord = Connector.named(action: action, payload: payload, version: state.version)
            }
            if type == .call {
                let other = state.correlator.oldestOutstanding(callDirection)
                let call = CallInCapture(
                    stamp: stamp, file: record.file, line: record.line, valid: valid,
                    // A backend's command is kept whole: what it asks for decides the effect its answer leads to.
                    payload: self.checks?.keepsCallPayload(of: action) == true || direction == .toCharger
                        ? message[3] : ChargerConfigurations.needsCall(action) ? ChargerConfigurations.kept(action, message[3]) : nil,
                    start: self.transactions.pendingStartOfRecord,
                    connector: self.transactions.connectorOfRecord
                )
                let outcome = state.correlator.observe(type, messageId: id, action: action, direction: direction, atNanos: Timestamp(microseconds: ts).nanosecondsSince1970, context: call)
                if case .duplicateCall(let previous) = outcome {
                    self.report(deviation("rpc.duplicateMessageId", "id '\(id)' is still outstanding for \(previous.action) sent at \(previous.context.stamp.text ?? "?")"), in: state)
                    // Two CALLs, one id: the second answer finds no CALL left, and that is this finding's doing.
                    state.excuseAnswer(to: id, callDirection: callDirection)
                } else if let other {
                    self.report(deviation("rpc.concurrentCall", "sent while \(other.action) (\(other.messageId)) was still unanswered"), in: state)
                }
            }
        case .callResult, .callError, .callResultError:
            let outcome = state.correlator.answer(id, travelling: direction, atNanos: Timestamp(microseconds: ts).nanosecondsSince1970)
            self.answeredCallPayload = outcome.answeredCall?.context.payload
            self.transactions.connectorOfRecord = outcome.answeredCall?.context.connector
            guard let pending = outcome.answeredCall, let latencyNanos = outcome.latencyNanos else {
                // An answer to a CALL that already timed out was reported as rpc.timeout; one to a CALL whose id was
                // reused or not a string, with that CALL.
                if state.expired[callDirection].remove(id) != nil {
                    // Timed out (rpc.timeout said so) but answered after all: the transaction it opens is followed.
                    if let start = state.expiredStarts.removeValue(forKey: id) {
                        if type == .callResult {
                            self.transactions.response(start: start, message: message, state: state, analyzer: self, late: true)
                        } else {
                            self.transactions.abandon(start, chargePoint: state.chargePoint)
                        }
                    }
                    return
                }
                if state.takeExcusedAnswer(to: id, callDirection: callDirection) { return }
                self.report(deviation("rpc.unknownMessageId", "\(type.name) for id '\(id)', which has no outstanding CALL from the other side"), in: state)
                return
            }
            let latencyMs = record.latencyMilliseconds ?? Double(latencyNanos) / 1_000_000
            if latencyMs / 1000 >= self.configuration.responseTimeoutSeconds {
                // Late because a fault held the CALL from the peer: the fault's side, not the answering vendor's.
                let late = deviation("rpc.timeout", "answered after \(Self.format(latencyMs / 1000)) s; the timeout is \(Self.format(self.configuration.responseTimeoutSeconds)) s", action: pending.action)
                let explanation = self.faults.explanation(
                    for: state.chargePoint, stimulus: "\(pending.context.file):\(pending.context.line)", from: Int64(pending.sentAtNanos / 1000),
                    through: ts, lateBy: Int64((latencyMs / 1000 - self.configuration.responseTimeoutSeconds) * 1_000_000)
                )
                self.report(late.explained(by: explanation), in: state)
            }
            state.latencies[pending.action, default: LatencyHistogram()].add(milliseconds: latencyMs)
            if callDirection == .toCharger {
                self.commandAnswered(pending, answer: type == .callResult ? message[2] ?? .null : nil, latencyMs: latencyMs, state: state, record: record)
            }
            // What a side answered of the other's feature: not an answer the proxy gave on a peer's behalf, nor one to a
            // CALL the policy's fault changed or kept from it, nor one to a CALL that broke its schema (the CALL's fault).
            let callTouched = self.faults.touched(state.chargePoint)
                && (self.faults.touch(at: "\(pending.context.file):\(pending.context.line)", of: state.chargePoint).map { ["drop", "malformed", "respond"].contains($0.kind) } ?? false)
            if type != .callResultError, !record.injected, !callTouched, pending.context.valid {
                let pair = self.pairKey(state.chargePoint)
                let code = type == .callError ? message[2]?.stringValue ?? "" : nil
                self.features.answered(
                    pending.action, callByCharger: callDirection == .toCSMS, version: state.version, pair: pair, result: type == .callResult ? message[2] : nil,
                    errorCode: code, ref: record.reference, chargePoint: state.chargePoint,
                    reportable: !(code == "NotImplemented" && RequiredActions.required(state.version, direction: callDirection).contains(pending.action))
                )
                // What the backend says a transaction costs (2.0.1 totalCost in its answer to a TransactionEvent).
                if type == .callResult, pending.action == "TransactionEvent", let total = message[2]?["totalCost"]?.doubleValue,
                    let id = pending.context.payload?["transactionInfo"]?["transactionId"]?.stringValue
                {
                    self.billing.cost(total, of: id, at: state.chargePoint, ref: record.reference, final: pending.context.payload?["eventType"]?.stringValue == "Ended")
                }
                // 1.6 meter public keys (MeterPublicKey, MeterPublicKey[1]…: EVerest, the OCA application note).
                if type == .callResult, pending.action == "GetConfiguration", state.version == .v16 {
                    for item in message[2]?["configurationKey"]?.arrayValue ?? [] {
                        guard let name = item["key"]?.stringValue, name.hasPrefix("MeterPublicKey"), let value = item["value"]?.stringValue, !value.isEmpty,
                            value.utf8.count < 8192
                        else { continue }
                        let connector = Int(name.dropFirst("MeterPublicKey".count).filter(\.isNumber)) ?? 0
                        if self.configuredMeterKeys[state.chargePoint]?[connector] != nil || (self.configuredMeterKeys[state.chargePoint]?.count ?? 0) < 16 {
                            self.configuredMeterKeys[state.chargePoint, default: [:]][connector] = value
                        }
                    }
                }
                if type == .callResult, pending.action == "GetConfiguration" || pending.action == "GetVariables" {
                    self.features.learnClaims(action: pending.action, answer: message[2], request: nil, version: state.version, pair: pair, ref: record.reference)
                }
            }
            if type == .callResult {
                if let schemas = self.schemas, let schema = schemas.response(state.version, pending.action) {
                    _ = self.validate(message[2] ?? .null, schema, state: state, make: { deviation($0, $1, path: $2, severity: $3, action: pending.action) })
                }
                self.transactions.response(start: pending.context.start, message: message, state: state, analyzer: self)
                self.transactions.answered(pending.action, call: pending.context.payload, answer: message[2], state: state, record: record, ts: ts, analyzer: self)
            } else if let code = message[2]?.stringValue {
                self.transactions.abandon(pending.context.start, chargePoint: state.chargePoint)
                if !RPCErrorCode.codes(for: state.version).contains(code) {
                    let hint = RPCErrorCode.codes(for: state.version).first { $0.lowercased().hasPrefix(String(code.lowercased().prefix(6))) }
                    self.report(deviation("rpc.unknownErrorCode", "'\(code)' is not an OCPP \(state.version.rawValue) error code" + (hint.map { " (did you mean '\($0)'?)" } ?? ""), action: pending.action), in: state)
                }
                if code == "NotImplemented", pending.context.valid, RequiredActions.required(state.version, direction: callDirection).contains(pending.action) {
                    self.report(deviation("rpc.notImplementedRequired", "\(pending.action) is required in OCPP \(state.version.rawValue) but was answered NotImplemented", action: pending.action), in: state)
                }
            }
        }
    }

    private func validate(
        _ payload: JSONValue, _ schema: Schema, state: ConnectionState, make: (String, String, String, Severity) -> Deviation
    ) -> Bool {
        let violations = self.validator.validate(payload, against: schema)
        for violation in violations {
            self.report(make("schema." + violation.keyword, "expected \(violation.expected), found \(violation.found)", violation.pointer, violation.severity), in: state)
        }
        return !violations.contains { $0.severity == .error }
    }

    /// Reports the CALLs of `state` unanswered for the response timeout at `now`, oldest first. Runs
    /// before every frame; it looks at the calls only once the oldest of them may be due.
    private func expireCalls(in state: ConnectionState, now: Int64) {
        let limit = UInt64(self.configuration.responseTimeoutSeconds * 1_000_000_000)
        let now = Timestamp(microseconds: now).nanosecondsSince1970
        guard now >= limit else { return }
        for (direction, call) in state.correlator.expire(sentAtOrBefore: now - limit) {
            if state.expired[direction].count < 1024 { state.expired[direction].insert(call.messageId) }
            if direction == .toCharger { self.commands.answered(call.messageId, by: state.chargePoint) }
            if let start = call.context.start, state.expiredStarts.count < 64 { state.expiredStarts[call.messageId] = start }
            self.report(
                Deviation(
                    rule: "rpc.timeout", chargePoint: state.chargePoint, direction: direction, action: call.action, messageId: call.messageId,
                    detail: "no answer within \(Self.format(self.configuration.responseTimeoutSeconds)) s", ts: call.context.stamp.text,
                    ref: "\(call.context.file):\(call.context.line)"
                ).answeredBy(direction == .toCSMS ? .backend : .charger)
                    .explained(by: self.faults.explanation(
                        for: state.chargePoint, stimulus: "\(call.context.file):\(call.context.line)", from: Int64(call.sentAtNanos / 1000),
                        through: Int64((call.sentAtNanos + limit) / 1000)
                    )),
                in: state
            )
        }
    }

    // MARK: Reporting

    func report(_ deviation: Deviation, in state: ConnectionState) {
        let deviation = self.list(deviation)
        state.deviations[deviation.rule, default: 0] += 1
        state.sides[deviation.side, default: 0] += 1
        if deviation.side == .charger { state.chargerRules[deviation.rule, default: 0] += 1 }
        // A finding the policy's fault explains counts against neither vendor: no error or warning of the pair.
        if deviation.side != .fault { state.severities[deviation.severity, default: 0] += 1 }
    }

    /// A deviation found after its connection was retired (open transactions at the end).
    func reportDetached(_ deviation: Deviation, chargePoint: String) {
        let identity = self.identities[chargePoint] ?? .unknown
        self.reportDetached(deviation, pair: PairKey(charger: identity, backend: self.backendOf[chargePoint] ?? self.backend))
    }

    /// A deviation of a pair known already (a feature of the firmware it was seen with).
    func reportDetached(_ deviation: Deviation, pair key: PairKey) {
        let deviation = self.list(deviation)
        self.pairs[key, default: PairStatistics()].deviations[deviation.rule, default: 0] += 1
        self.pairs[key, default: PairStatistics()].sides[deviation.side, default: 0] += 1
        if deviation.side == .charger { self.pairs[key, default: PairStatistics()].chargerRules[deviation.rule, default: 0] += 1 }
        if deviation.side != .fault { self.pairs[key, default: PairStatistics()].severities[deviation.severity, default: 0] += 1 }
    }

    /// What listed deviations take from the record being analysed: the offending message, or the
    /// record's fields when the message is not JSON. Kept apart from the record, which is not copied for it.
    private struct CurrentRecord {
        var file: String
        var line: Int
        var message: JSONValue?
        var fields: JSONObject?
        /// The policy's fault that touched the record (its rule and kind), or "injected" for a message the proxy sent.
        var fault: (rule: String, kind: String)?
        /// The proxy made the message (`injected`).
        var injected: Bool
    }

    private var current: CurrentRecord?
    /// The payload of the CALL the record being analysed answers, when a witness check keeps it.
    private var answeredCallPayload: JSONValue?

    /// The policy's fault that touched a record: `fault.rule` and `fault.kind`, or a message the proxy itself sent.
    private static func fault(of record: CaptureRecord) -> (rule: String, kind: String)? {
        if let fault = record.fault { return (fault["rule"]?.stringValue ?? "?", fault["kind"]?.stringValue ?? "?") }
        return record.injected ? ("injected", "inject") : nil
    }

    /// Lists and counts a finding; returns it with its side decided.
    @discardableResult
    private func list(_ deviation: Deviation) -> Deviation {
        var deviation = deviation
        // A finding on a message the proxy itself made (an injected CALL, an answer on a peer's behalf, a copy) counts
        // against neither vendor (docs/reports.md, "Whose side"). The capture holds every other message as its sender
        // wrote it, before a fault held, dropped or changed it: a finding on it is its sender's.
        if let current, current.injected, "\(current.file):\(current.line)" == deviation.ref {
            deviation.side = .fault
            deviation.sideReason = current.fault.map { $0.rule == "injected" ? "the proxy sent this message" : "the proxy sent this message for the policy's fault '\($0.rule)' (\($0.kind))" }
                ?? "the proxy sent this message"
        }
        self.countsBySide[deviation.side, default: 0] += 1
        self.countsByRule[deviation.rule, default: 0] += 1
        let key = deviation.rule + "|" + (deviation.chargePoint ?? "")
        let listed = self.listedPerKey[key, default: 0] < self.configuration.maximumListedPerRuleAndChargePoint
        // The evidence (the offending message as text) is made for listed deviations and for live feeds only:
        // a charger repeating one fault thousands of times costs a count, not a serialisation, per message.
        if (listed || self.onDeviation != nil), deviation.evidence == nil, let current, "\(current.file):\(current.line)" == deviation.ref {
            let text = current.message.map { JSONWriter.string($0) } ?? current.fields?["payload"]?.stringValue
            deviation.evidence = text.map { $0.count > 4096 ? String($0.prefix(4096)) + "…" : $0 }
        }
        if listed {
            self.listedPerKey[key, default: 0] += 1
            self.listed.append(deviation)
        }
        self.onDeviation?(deviation)
        return deviation
    }

    func noteIdentity(_ boot: BootIdentity, for state: ConnectionState) {
        let identity = ChargerIdentity(boot)
        state.identity = identity
        self.identities[state.chargePoint] = identity
        if let serial = boot.serialNumber { self.serials[state.chargePoint] = serial }
        self.certificateJudged(state)
    }

    /// The serial number each charge point last gave in its BootNotification.
    private var serials: [String: String] = [:]

    /// Decides a client certificate whose CN is not the charge point id, once the connection's BootNotification
    /// told the serial number or the connection ended without one.
    private func certificateJudged(_ state: ConnectionState) {
        guard let pending = state.pendingCertificate else { return }
        state.pendingCertificate = nil
        let serial = self.serials[state.chargePoint]
        guard pending.commonName == nil || pending.commonName != serial else { return }
        // Without a serial number to compare with (a charger that reconnects without booting), not proven: info.
        self.report(
            Deviation(
                rule: "security.certificateMismatch", severity: serial == nil && pending.commonName != nil ? .info : nil, chargePoint: state.chargePoint,
                detail: "client certificate's subject CN '\(pending.commonName ?? "none")' is neither the charge point id '\(state.chargePoint)' nor "
                    + (serial.map { "its serial number '\($0)' (BootNotification)" } ?? "a serial number it gave: no BootNotification in the capture told one, so this is not proven"),
                ts: pending.ts, ref: pending.ref
            ),
            in: state
        )
    }

    /// A 1.6 DataTransfer of the OCA's California pricing requirements (vendorId `org.openchargealliance.costmsg`,
    /// messageId `RunningCost` or `FinalCost`, `data` a JSON text with `transactionId` and `cost`).
    static func californiaCost(_ payload: JSONValue) -> (transaction: String, total: Double, final: Bool)? {
        guard payload["vendorId"]?.stringValue == "org.openchargealliance.costmsg", let kind = payload["messageId"]?.stringValue,
            kind == "RunningCost" || kind == "FinalCost", let text = payload["data"]?.stringValue, text.utf8.count <= 65_536,
            let data = try? JSONParser.parse(text), let id = data["transactionId"], let cost = data["cost"]?.doubleValue
        else { return nil }
        return (JSONWriter.string(id), cost, kind == "FinalCost")
    }

    static func format(_ value: Double) -> String {
        value.rounded() == value || !value.isFinite ? value.plainText : String(format: "%.3f", value)
    }
}
