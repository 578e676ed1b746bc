import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessPolicy

/// Offline authorization: which identifiers the capture shows a charger may start with while offline (its
/// local list, identifiers accepted online and not cleared since), transactions started offline judged by
/// that and by the site's declaration, and a charger that must stop a transaction whose identifier the backend
/// answered invalid (docs/rules.md, `auth.offlineNotAllowed`; docs/witness-tests.md, "Judged checks").
extension TransactionTracker {
    /// What the capture shows of one charger's identifiers. Bounded: `tagsKept` identifiers and list entries.
    struct Authorizations {
        /// Identifiers (upper-cased: OCPP compares them case-insensitively) answered Accepted, and where.
        var accepted: [String: String] = [:]
        /// Identifiers answered otherwise (Blocked, Invalid, Expired, ...), with the status and where.
        var refused: [String: (status: String, ref: String)] = [:]
        /// The charger's cache was cleared (ClearCache accepted) at this line: what was accepted before is gone.
        var cleared: String?
        /// The local list as SendLocalList set it: entries and whether a full list was seen (else only updates).
        var list: [String: (accepted: Bool, ref: String)] = [:]
        var listComplete = false
        /// More identifiers than kept were seen: absence proves nothing.
        var overflowed = false
        /// Per charger, of each kind: a fleet of 10,000 chargers with full local lists stays bounded.
        static let tagsKept = 256

        /// Valid (1.6 3.5.2: Accepted, ConcurrentTx), not valid (Blocked, Expired, Invalid; 2.0.1 also Unknown), or
        /// neither (2.0.1 NoCredit, NotAtThisTime, ...: not valid now, which says nothing of offline use).
        static func validity(_ status: String) -> Bool? {
            switch status {
            case "Accepted", "ConcurrentTx": return true
            case "Blocked", "Expired", "Invalid", "Unknown": return false
            default: return nil
            }
        }

        mutating func answer(_ tag: String, status: String, ref: String) {
            switch Self.validity(status) {
            case true?:
                self.refused.removeValue(forKey: tag)
                if self.accepted[tag] == nil, self.accepted.count >= Self.tagsKept { self.overflowed = true } else { self.accepted[tag] = ref }
            case false?:
                self.accepted.removeValue(forKey: tag)
                if self.refused[tag] == nil, self.refused.count >= Self.tagsKept { self.overflowed = true } else { self.refused[tag] = (status, ref) }
            case nil:
                self.accepted.removeValue(forKey: tag)
                self.refused.removeValue(forKey: tag)
            }
        }
    }

    /// A transaction whose start the backend answered with an identifier not accepted, on a charger that stops
    /// on an invalid identifier: it must stop by `deadline`.
    struct InvalidStart {
        var chargePoint: String
        var transaction: String
        var ref: String
        var ts: Int64
        var deadline: Int64
        var setting: SettingInForce
        var version: OCPPVersion
    }

    /// The key an identifier is known by: upper-cased (identifiers compare case-insensitively), nil past 36
    /// characters (the longest 2.0.1 allows; 1.6 allows 20), which the schema reports and the model does not keep.
    static func tag(_ text: String) -> String? { text.utf8.count <= 36 ? text.uppercased() : nil }

    /// The answer to a CALL, with the CALL (when the model keeps it): configuration, identifiers accepted or
    /// refused, the local list, a cleared cache, and starts answered invalid.
    func answered(_ action: String, call: JSONValue?, answer: JSONValue?, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer) {
        let chargePoint = state.chargePoint
        switch action {
        case "GetConfiguration", "ChangeConfiguration", "GetVariables", "SetVariables":
            self.configuration(action: action, call: call, answer: answer, request: nil, state: state, record: record, ts: ts, analyzer: analyzer)
        case "Authorize":
            let tag = state.version == .v16 ? call?["idTag"]?.stringValue : call?["idToken"]?["idToken"]?.stringValue
            let status = (state.version == .v16 ? answer?["idTagInfo"] : answer?["idTokenInfo"])?["status"]?.stringValue
            if let tag = tag.flatMap(Self.tag), let status { self.authorizations[chargePoint, default: Authorizations()].answer(tag, status: status, ref: record.reference) }
            if let status, Authorizations.validity(status) == true { state.authorized(tag) }
        case "StartTransaction" where state.version == .v16:
            guard let status = answer?["idTagInfo"]?["status"]?.stringValue else { return }
            if let tag = call?["idTag"]?.stringValue.flatMap(Self.tag) {
                self.authorizations[chargePoint, default: Authorizations()].answer(tag, status: status, ref: record.reference)
            }
            if status != "Accepted", let id = answer?["transactionId"].map({ JSONWriter.string($0) }) {
                self.invalidStart(id, status: status, state: state, record: record, ts: ts, analyzer: analyzer)
            }
        case "TransactionEvent" where state.version != .v16:
            guard let status = answer?["idTokenInfo"]?["status"]?.stringValue else { return }
            if let tag = call?["idToken"]?["idToken"]?.stringValue.flatMap(Self.tag) {
                self.authorizations[chargePoint, default: Authorizations()].answer(tag, status: status, ref: record.reference)
            }
            if status != "Accepted", call?["eventType"]?.stringValue != "Ended", let id = call?["transactionInfo"]?["transactionId"]?.stringValue,
                self.open[chargePoint]?[id] != nil
            {
                self.invalidStart(id, status: status, state: state, record: record, ts: ts, analyzer: analyzer)
            }
        case "ClearCache":
            guard answer?["status"]?.stringValue == "Accepted" else { return }
            var known = self.authorizations[chargePoint] ?? Authorizations()
            known.accepted.removeAll()
            known.cleared = record.reference
            self.authorizations[chargePoint] = known
        case "SendLocalList":
            guard answer?["status"]?.stringValue == "Accepted", let call else { return }
            var known = self.authorizations[chargePoint] ?? Authorizations()
            if call["updateType"]?.stringValue == "Full" {
                known.list.removeAll()
                known.listComplete = true
            }
            for entry in call["localAuthorizationList"]?.arrayValue ?? [] {
                let text = state.version == .v16 ? entry["idTag"]?.stringValue : entry["idToken"]?["idToken"]?.stringValue
                guard let tag = text.flatMap(Self.tag) else { continue }
                let info = state.version == .v16 ? entry["idTagInfo"] : entry["idTokenInfo"]
                // An entry without its info removes the identifier from the list (a differential update).
                guard let status = info?["status"]?.stringValue else {
                    known.list.removeValue(forKey: tag)
                    continue
                }
                if known.list[tag] == nil, known.list.count >= Authorizations.tagsKept {
                    known.overflowed = true
                    continue
                }
                // Accepted and ConcurrentTx are valid entries (1.6 3.5.2); any other status is not.
                known.list[tag] = (Authorizations.validity(status) == true, record.reference)
            }
            self.authorizations[chargePoint] = known
        default:
            break
        }
    }

    /// A transaction started while the charger was offline (`outage`: the period it started in, or nil for a
    /// 2.0.1 event that says `offline: true` the proxy did not see as an outage), with identifier `tag`.
    /// `since`: when the charger went offline (the proxy's clock), for the settings in force then.
    func offlineStart(
        _ what: String, tag: String?, outageRef: String?, since: Int64?, path: String, state: ConnectionState, record: CaptureRecord, analyzer: Analyzer
    ) {
        let chargePoint = state.chargePoint
        guard let tag, let key = Self.tag(tag) else { return }
        let known = self.authorizations[chargePoint] ?? Authorizations()
        let unknownAllowed = self.setting(.unknownIdsOffline, of: chargePoint, at: since)
        let localOffline = self.setting(.localAuthorizeOffline, of: chargePoint, at: since)
        let listEnabled = self.setting(.localList, of: chargePoint, at: since)
        let started = "\(what), started offline with \(tag) (\(record.reference))"
        var verdict: CheckVerdict
        var detail: String
        var refs = [record.reference] + (outageRef.map { [$0] } ?? [])
        if let entry = known.list[key], !entry.accepted, listEnabled?.value.flag != false {
            // Not valid in the local list: rejected whatever else is allowed (1.6 3.5.4, "MUST be rejected").
            verdict = .fail
            detail = "\(started): the charger's local list holds the identifier as not valid (\(entry.ref)), and such identifiers must be rejected offline"
            refs.append(entry.ref)
            self.deviation("auth.offlineNotAllowed", detail, path: path, state: state, record: record, analyzer: analyzer, related: Array(refs.dropFirst()))
        } else if let entry = known.list[key], entry.accepted, listEnabled?.value.flag != false, localOffline?.value.flag != false {
            verdict = .pass
            detail = "\(started): the identifier is in the charger's local list (\(entry.ref))"
            refs.append(entry.ref)
        } else if let ref = known.accepted[key], localOffline?.value.flag != false {
            verdict = .pass
            detail = "\(started): the identifier was accepted online before (\(ref)), so the charger may know it"
            refs.append(ref)
        } else if unknownAllowed?.value.flag == true {
            verdict = .pass
            detail = "\(started): identifiers the charger does not know may start offline (\(unknownAllowed?.source ?? ""))"
        } else if let unknownAllowed, unknownAllowed.value.flag == false, let proof = Self.notAllowed(key, known: known, listEnabled: listEnabled) {
            // Shown not allowed: refused online, or gone from a cleared cache and not in a list the capture knows whole.
            verdict = .fail
            detail = "\(started): \(proof.reason), and offline transactions for unknown identifiers are not allowed (\(unknownAllowed.source))"
            refs.append(proof.ref)
            self.deviation(
                "auth.offlineNotAllowed", detail, path: path, state: state, record: record, analyzer: analyzer,
                related: Array(refs.dropFirst()) + (unknownAllowed.ref.map { [$0] } ?? [])
            )
        } else {
            verdict = .inconclusive
            detail = unknownAllowed == nil
                ? "\(started): neither the capture nor the site says whether unknown identifiers may start offline"
                : "\(started): the capture does not show whether the charger knew the identifier (an authorization cache is not visible on the wire)"
        }
        if self.checks?.judgements.contains(.offlineAuthorization) == true {
            self.checks?.judged(.offlineAuthorization, verdict, chargePoint: chargePoint, version: state.version, pair: analyzer.pair(of: chargePoint), detail: detail, refs: refs)
        }
    }

    /// Why the capture shows `tag` was not one the charger could know as valid, with the line that shows it.
    private static func notAllowed(_ tag: String, known: Authorizations, listEnabled: SettingInForce?) -> (reason: String, ref: String)? {
        if let refused = known.refused[tag] { return ("the backend answered the identifier \(refused.status) (\(refused.ref)) and never accepted it since", refused.ref) }
        // Absent from a cleared cache and from the list: shown only when the list is known whole (or not in use).
        if let cleared = known.cleared, !known.overflowed, known.listComplete || listEnabled?.value.flag == false {
            return ("the identifier was not accepted since the charger's cache was cleared (\(cleared)) and is not in its local list", cleared)
        }
        return nil
    }

    /// A start answered with an identifier not accepted: on a charger that stops on an invalid identifier, a
    /// `stopOnInvalidId` check follows the transaction until it stops or the check's window ends.
    private func invalidStart(_ id: String, status: String, state: ConnectionState, record: CaptureRecord, ts: Int64, analyzer: Analyzer) {
        guard let checks = self.checks, let window = checks.window(of: .stopOnInvalidId) else { return }
        let chargePoint = state.chargePoint
        let started = "transaction \(id), whose identifier the backend answered \(status) (\(record.reference))"
        guard let setting = self.setting(.stopOnInvalidId, of: chargePoint) else {
            checks.judged(
                .stopOnInvalidId, .inconclusive, chargePoint: chargePoint, version: state.version, pair: analyzer.pair(of: chargePoint),
                detail: "\(started): neither the capture nor the site says whether the charger stops on an invalid identifier", refs: [record.reference]
            )
            return
        }
        // A charger configured not to stop only suspends the energy (1.6 3.5.4, 9.1.24; 2.0.1 C15.FR.05): nothing to follow.
        // Once per transaction: a start sent again and answered again is the same occurrence.
        guard setting.value.flag == true, (self.invalidStarts[chargePoint]?.count ?? 0) < Self.openPerChargePointLimit,
            self.invalidStarts[chargePoint]?.contains(where: { $0.transaction == id }) != true
        else { return }
        self.invalidStarts[chargePoint, default: []].append(
            InvalidStart(
                chargePoint: chargePoint, transaction: id, ref: record.reference, ts: ts, deadline: ts + Int64(window * 1_000_000), setting: setting,
                version: state.version
            )
        )
    }

    /// A 1.6 transaction the charger goes on with under the id the answer to its resent start gave.
    func renameInvalidStart(from earlier: String, to id: String, chargePoint: String) {
        guard let index = self.invalidStarts[chargePoint]?.firstIndex(where: { $0.transaction == earlier }) else { return }
        self.invalidStarts[chargePoint]?[index].transaction = id
    }

    /// A transaction stopped: a `stopOnInvalidId` occurrence waiting for it passes when in time.
    func stoppedAfterInvalid(_ id: String, chargePoint: String, record: CaptureRecord, ts: Int64, analyzer: Analyzer) {
        guard let waiting = self.invalidStarts[chargePoint], let index = waiting.firstIndex(where: { $0.transaction == id }) else { return }
        let start = waiting[index]
        self.invalidStarts[chargePoint]?.remove(at: index)
        if self.invalidStarts[chargePoint]?.isEmpty == true { self.invalidStarts.removeValue(forKey: chargePoint) }
        let after = Self.seconds(Double(ts - start.ts) / 1_000_000)
        let late = ts > start.deadline
        self.checks?.judged(
            .stopOnInvalidId, late ? .fail : .pass, chargePoint: chargePoint, version: start.version, pair: analyzer.pair(of: chargePoint),
            detail: "transaction \(id), whose identifier the backend did not accept (\(start.ref)), stopped \(after) s later (\(record.reference))"
                + (late ? ", after the window" : "") + "; \(start.setting.source)",
            refs: [start.ref, record.reference]
        )
    }

    /// Decides the `stopOnInvalidId` occurrences whose window ended by `now` without a stop (`ended`: the
    /// capture ended; those still within their window are inconclusive).
    func expireInvalidStarts(now: Int64, ended: Bool = false, of only: String? = nil, analyzer: Analyzer) {
        guard !self.invalidStarts.isEmpty else { return }
        for (chargePoint, waiting) in self.invalidStarts where only.map({ $0 == chargePoint }) ?? true {
            var left: [InvalidStart] = []
            for start in waiting {
                if start.deadline < now {
                    self.checks?.judged(
                        .stopOnInvalidId, .fail, chargePoint: chargePoint, version: start.version, pair: analyzer.pair(of: chargePoint),
                        detail: "transaction \(start.transaction), whose identifier the backend did not accept (\(start.ref)), was not stopped within \(Self.seconds(Double(start.deadline - start.ts) / 1_000_000)) s; \(start.setting.source)",
                        refs: [start.ref]
                    )
                } else if ended {
                    self.checks?.judged(
                        .stopOnInvalidId, .inconclusive, chargePoint: chargePoint, version: start.version, pair: analyzer.pair(of: chargePoint),
                        detail: "the capture ends before the window of transaction \(start.transaction) (\(start.ref)) closed, without its stop", refs: [start.ref]
                    )
                } else {
                    left.append(start)
                }
            }
            self.invalidStarts[chargePoint] = left.isEmpty ? nil : left
        }
    }

    /// `sessionRecovery` for transactions with queued messages still open at the end of the capture: failed
    /// when a finding already shows it, else not decided.
    func recoveryStillOpen(analyzer: Analyzer) {
        guard let checks = self.checks, checks.judgements.contains(.sessionRecovery) else { return }
        for transaction in self.openTransactions() where transaction.recovery.queued {
            let findings = transaction.recovery.findings
            checks.judged(
                .sessionRecovery, findings.isEmpty ? .inconclusive : .fail, chargePoint: transaction.chargePoint,
                version: transaction.version, pair: analyzer.pair(of: transaction.chargePoint),
                detail: "transaction \(transaction.id) (\(transaction.startRef)), queued during an outage, was still open at the end of the capture"
                    + (findings.isEmpty ? "" : "; delivered with " + findings.map { "\($0.rule) (\($0.ref))" }.joined(separator: ", ")),
                refs: [transaction.startRef] + findings.map(\.ref)
            )
        }
    }
}
