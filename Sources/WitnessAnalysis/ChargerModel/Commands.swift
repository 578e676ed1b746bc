import Foundation
import OCPPWire
import WitnessCapture
import WitnessModel
import WitnessPolicy

/// Remote commands: every CALL the backend (or a policy) sends a charger, whether it was answered, accepted and
/// carried out (its effect on the wire), and how long each took (docs/reports.md, "Remote commands").
struct Commands {
    /// What an accepted command's effect looks like, and where it stands.
    struct Pending {
        var action: String
        var callRef: String
        var answerRef: String
        var sentAt: Int64
        var deadline: Int64
        var effect: Effect
        var version: OCPPVersion
        /// The pair the command was sent to (a reboot may come back with another firmware).
        var pair: PairKey
        /// Without the effect, the outcome is not observable rather than not carried out: a remote start on a
        /// connector without a cable waits for an EV that may never come (ConnectionTimeOut, EVConnectionTimeOut).
        var mayWaitForEV = false
        /// The site's requirement its effect is judged by (`commandRequirements`), when its answer passed it.
        var requirement: CommandRequirement?
        /// A limit's effect: a power reading came in the window (above the limit). Without one, the charger shows
        /// no power and the outcome is not observable rather than not carried out.
        var sawReading = false
    }

    /// The effect an accepted command should have on the wire.
    enum Effect: Sendable {
        /// The charger boots again (Reset).
        case reboot
        /// A transaction starts (remote start), on this connector if named.
        case transactionStart(connector: Connector?, remoteStartId: Int?)
        /// This transaction ends (remote stop; unlock with a transaction running).
        case transactionEnd(id: String)
        /// The connector reports this status (ChangeAvailability).
        case status(connector: Connector?, status: String)
        /// The charger sends this message (TriggerMessage).
        case message(action: String)
        /// A power reading at or below this limit, in W (SetChargingProfile on a running transaction).
        case limit(connector: Connector?, watts: Double)
    }

    /// The outcome of one command, for the pair's table.
    enum Outcome: String, Sendable {
        case carriedOut, notCarriedOut, notObservable, undecided
    }

    /// A command whose effect is awaited, per charge point (at most `pendingKept`; past it, a command is undecided).
    private var pending: [String: [Pending]] = [:]
    static let pendingKept = 64
    /// The commands not yet answered, by charge point and message id (at most `earlyKept`). While one waits, the
    /// charger's transaction starts are kept (the latest `earlyKept`, their matching fields alone), so that a
    /// transaction started before the remote start is answered is not missed. A connection's close, and a CALL's
    /// timeout, let its commands go.
    private var unanswered: [String: Set<String>] = [:]
    /// Each charge point's latest Power.Active.Import reading (W) per connector (unit), for judging a charging limit.
    private var lastPower: [String: [Int: Double]] = [:]
    private var early: [String: [Early]] = [:]
    static let earlyKept = 8

    struct Early {
        var action: String
        /// What `matches` reads of a transaction start: eventType and transactionInfo.remoteStartId.
        var payload: JSONValue
        var version: OCPPVersion
        var connector: Connector?
        var ts: Int64
        var ref: String
        var used = false
    }
    /// The earliest deadline of all pending effects, so that most records cost one comparison.
    private var earliest = Int64.max
    /// How long an effect may take, from the command (the charger was ready to act).
    var windowMicros: Int64 = 120_000_000

    mutating func release(_ chargePoint: String) {
        self.pending.removeValue(forKey: chargePoint)
        self.lastPower.removeValue(forKey: chargePoint)
        self.letGo(chargePoint)
    }

    /// The latest power reading of a connector (unit), if it sent one (W).
    func power(of chargePoint: String, unit: Int) -> Double? { self.lastPower[chargePoint]?[unit] }

    /// The Power.Active.Import readings (W) of a charger's MeterValues or TransactionEvent.
    static func powerReadings(_ action: String, payload: JSONValue, version: OCPPVersion) -> [Double] {
        guard action == "MeterValues" || action == "TransactionEvent" else { return [] }
        // The end of a transaction reads no limit: an EV that stopped draws nothing.
        return MeterReadings.values("Power.Active.Import", unit: "W", in: payload["meterValue"], version: version) {
            $0["context"]?.stringValue != "Transaction.End"
        }.map(\.value)
    }

    /// Notes a charger message's power reading, for its connector.
    mutating func notePower(_ action: String, payload: JSONValue, chargePoint: String, version: OCPPVersion, unit: Int) {
        guard let watts = Self.powerReadings(action, payload: payload, version: version).last,
            self.lastPower[chargePoint]?[unit] != nil || (self.lastPower[chargePoint]?.count ?? 0) < 64
        else { return }
        self.lastPower[chargePoint, default: [:]][unit] = watts
    }

    /// Whether a reading keeps to a limit: 2.5% above it, and 50 W (meters and EVs round; a 0 W limit leaves standby).
    static func keeps(_ watts: Double, limit: Double) -> Bool { watts <= limit * 1.025 + 50 }

    /// The limit (W) a SetChargingProfile puts in force now on its transaction, where the wire can show it: a TxProfile
    /// (it overrules the default and stacks below it do not apply to it), Absolute or Relative, in W, whose first period
    /// starts now. Nil for the rest: a default or maximum profile (another profile may rule), a recurring one, a limit
    /// in A (the power depends on the voltage), one that starts later or ended.
    static func limitNow(_ call: JSONValue?, version: OCPPVersion, now: Int64) -> Double? {
        let profile = version == .v16 ? call?["csChargingProfiles"] : call?["chargingProfile"]
        guard profile?["chargingProfilePurpose"]?.stringValue == "TxProfile", profile?["chargingProfileKind"]?.stringValue != "Recurring" else { return nil }
        if let to = profile?["validTo"]?.stringValue.flatMap(RFC3339.parse)?.microseconds, to <= now { return nil }
        guard let schedule = version == .v16 ? profile?["chargingSchedule"] : profile?["chargingSchedule"]?[0],
            let first = schedule["chargingSchedulePeriod"]?[0], (first["startPeriod"]?.intValue ?? 0) == 0,
            let limit = first["limit"]?.doubleValue, limit.isFinite, limit >= 0
        else { return nil }
        if let start = schedule["startSchedule"]?.stringValue.flatMap(RFC3339.parse)?.microseconds, start > now { return nil }
        if let from = profile?["validFrom"]?.stringValue.flatMap(RFC3339.parse)?.microseconds, from > now { return nil }
        return schedule["chargingRateUnit"]?.stringValue == "W" ? limit : nil
    }

    /// Forgets the commands of `chargePoint` awaiting their answers (its connection closed).
    mutating func letGo(_ chargePoint: String) {
        self.unanswered.removeValue(forKey: chargePoint)
        self.early.removeValue(forKey: chargePoint)
    }

    /// A command was sent to `chargePoint`.
    mutating func sent(_ id: String, to chargePoint: String) {
        guard (self.unanswered[chargePoint]?.count ?? 0) < Self.earlyKept else { return }
        self.unanswered[chargePoint, default: []].insert(id)
    }

    /// A command to `chargePoint` was answered (or timed out): with none left waiting, its starts are no longer kept.
    mutating func answered(_ id: String, by chargePoint: String) {
        guard self.unanswered[chargePoint]?.remove(id) != nil, self.unanswered[chargePoint]?.isEmpty == true else { return }
        self.letGo(chargePoint)
    }

    /// Keeps a charger's transaction start while a command to it waits for its answer.
    mutating func keep(
        _ action: String, payload: JSONValue, chargePoint: String, version: OCPPVersion, connector: Connector?, at ts: Int64, ref: @autoclosure () -> String
    ) {
        guard self.unanswered[chargePoint]?.isEmpty == false else { return }
        guard version == .v16 ? action == "StartTransaction" : action == "TransactionEvent" else { return }
        var essentials = JSONObject()
        if let eventType = payload["eventType"] { essentials["eventType"] = eventType }
        if let remoteStartId = payload["transactionInfo"]?["remoteStartId"] { essentials["transactionInfo"] = ["remoteStartId": remoteStartId] }
        var kept = self.early[chargePoint] ?? []
        if kept.count >= Self.earlyKept { kept.removeFirst(kept.count - Self.earlyKept + 1) }
        kept.append(Early(action: action, payload: .object(essentials), version: version, connector: connector, ts: ts, ref: ref()))
        self.early[chargePoint] = kept
    }

    /// A transaction start that came after `pending`'s command and before its answer, if one did (each counts once).
    /// Only a start: OCPP 1.6 5.17 and 2.0.1 F06 have the triggered message follow the answer, and a status or a
    /// stop before the answer changed the state the command's effect is judged by.
    mutating func earlyEffect(of pending: Pending, chargePoint: String) -> (ts: Int64, ref: String)? {
        guard case .transactionStart = pending.effect, var kept = self.early[chargePoint] else { return nil }
        guard let index = kept.firstIndex(where: { early in
            !early.used && early.ts >= pending.sentAt
                && Self.matches(pending.effect, action: early.action, payload: early.payload, version: early.version, connector: early.connector)
        }) else { return nil }
        kept[index].used = true
        self.early[chargePoint] = kept
        return (kept[index].ts, kept[index].ref)
    }

    /// What effect an accepted command has; nil when the wire cannot show one (docs/reports.md says why, per command).
    /// `status`: a connector's latest status; `statuses`: every known connector's; `isOpen`: whether a transaction runs.
    static func effect(
        of action: String, call: JSONValue?, version: OCPPVersion, anyRunning: Bool, status: (Connector) -> String?, statuses: [String],
        isOpen: (String) -> Bool, runningOn: (Connector?) -> Bool = { _ in false }, power: Double? = nil, now: Int64 = 0
    ) -> Effect? {
        switch action {
        case "SetChargingProfile":
            // Observable only as a power reading at or below the limit on a transaction that runs now: one for the next
            // transaction, one that starts later, or one an EV already draws less than shows nothing.
            let connector = call.flatMap { Connector.named(action: action, payload: $0, version: version) }
            guard let watts = Self.limitNow(call, version: version, now: now), runningOn(connector.flatMap { $0.isStation ? nil : $0 }) else { return nil }
            if let power, Self.keeps(power, limit: watts) { return nil }
            return .limit(connector: connector.flatMap { $0.isStation ? nil : $0 }, watts: watts)
        case "Reset":
            // 2.0.1 OnIdle waits for running transactions to end first.
            if version != .v16, call?["type"]?.stringValue == "OnIdle", anyRunning { return nil }
            // One EVSE reset (B11.FR.08) is no reboot: nothing the wire must show.
            if version != .v16, call?["evseId"] != nil { return nil }
            return .reboot
        case "RemoteStartTransaction", "RequestStartTransaction":
            let connector = call.flatMap { Connector.named(action: action, payload: $0, version: version) }
            return .transactionStart(connector: connector, remoteStartId: call?["remoteStartId"]?.intValue)
        case "RemoteStopTransaction", "RequestStopTransaction":
            // 1.6 ids are numbers, written as the model keys them; 2.0.1 ids are strings.
            guard let value = call?["transactionId"], let id = version == .v16 ? JSONWriter.string(value) : value.stringValue else { return nil }
            // One that ended before the answer came (the charger stopped it meanwhile) has nothing left to show.
            guard isOpen(id) else { return nil }
            return .transactionEnd(id: id)
        case "UnlockConnector":
            // 1.6 stops a running transaction before it answers (5.18), 2.0.1 unlocks only a connector without an
            // authorized transaction (F05.FR.02): what the wire shows is no effect that follows the answer.
            return nil
        case "ChangeAvailability":
            let wanted = (version == .v16 ? call?["type"] : call?["operationalStatus"])?.stringValue
            let target = wanted == "Inoperative" ? "Unavailable" : "Available"
            let connector = call.flatMap { Connector.named(action: action, payload: $0, version: version) }
            // Already in that state (any status but Unavailable is operative; a Faulted one stays Faulted, G03.FR.06):
            // nothing changes, and no status need come (1.6 5.2, G04.FR.04). For the whole charger, every connector.
            let current = connector.map { $0.isStation ? statuses : [status($0)].compactMap { $0 } } ?? statuses
            func settled(_ now: String) -> Bool { now == "Faulted" || (now == "Unavailable") == (target == "Unavailable") }
            if !current.isEmpty, current.allSatisfy(settled) { return nil }
            return .status(connector: connector, status: target)
        case "TriggerMessage":
            guard let requested = call?["requestedMessage"]?.stringValue else { return nil }
            let message: String =
                switch requested {
                case "SignChargingStationCertificate", "SignV2GCertificate", "SignCombinedCertificate": "SignCertificate"
                default: requested
                }
            return .message(action: message)
        default:
            // ChangeConfiguration, ClearChargingProfile and the rest: no effect on the wire the analyzer follows.
            return nil
        }
    }

    /// Whether an answer accepts the command.
    static func accepts(_ action: String, answer: JSONValue?) -> Bool {
        switch action {
        case "UnlockConnector": return answer?["status"]?.stringValue == "Unlocked"
        case "ChangeConfiguration": return ["Accepted", "RebootRequired"].contains(answer?["status"]?.stringValue ?? "")
        case "SetVariables":
            let results = answer?["setVariableResult"]?.arrayValue ?? []
            return !results.isEmpty && results.allSatisfy { ["Accepted", "RebootRequired"].contains($0["attributeStatus"]?.stringValue ?? "") }
        case "ChangeAvailability", "SetChargingProfile", "ClearChargingProfile", "Reset", "RemoteStartTransaction", "RequestStartTransaction",
            "RemoteStopTransaction", "RequestStopTransaction", "TriggerMessage", "ClearCache", "SendLocalList", "ReserveNow", "CancelReservation",
            "UpdateFirmware", "GetLog", "GetDiagnostics", "DataTransfer", "CertificateSigned", "InstallCertificate", "DeleteCertificate",
            "SetNetworkProfile", "GetBaseReport", "GetReport", "SetMonitoringBase", "SetVariableMonitoring", "SetDisplayMessage", "ClearDisplayMessage",
            "CustomerInformation", "PublishFirmware", "UnpublishFirmware":
            guard let status = answer?["status"]?.stringValue else { return action == "UpdateFirmware" || action == "GetDiagnostics" }
            return status == "Accepted" || status == "Scheduled"
        default:
            // An answer without a status (GetConfiguration, GetVariables, GetLocalListVersion) is the answer asked for.
            return answer?["status"]?.stringValue.map { $0 == "Accepted" } ?? true
        }
    }

    /// Waits for an accepted command's effect; false when the charge point has `pendingKept` waiting already.
    mutating func await(_ pending: Pending, chargePoint: String) -> Bool {
        guard (self.pending[chargePoint]?.count ?? 0) < Self.pendingKept else { return false }
        self.pending[chargePoint, default: []].append(pending)
        self.earliest = min(self.earliest, pending.deadline)
        return true
    }

    /// The charger's CALL `action`: the commands it carries out, with how long the effect took.
    mutating func observe(
        _ action: String, payload: JSONValue, chargePoint: String, version: OCPPVersion, connector: Connector?, at ts: Int64
    ) -> [(Pending, latencyMicros: Int64)] {
        guard var waiting = self.pending[chargePoint], !waiting.isEmpty else { return [] }
        var done: [(Pending, Int64)] = []
        let hasPower = !Self.powerReadings(action, payload: payload, version: version).isEmpty
        for index in waiting.indices where hasPower {
            if case .limit(let wanted, _) = waiting[index].effect, Self.sameConnector(wanted, connector) { waiting[index].sawReading = true }
        }
        waiting.removeAll { pending in
            guard Self.matches(pending.effect, action: action, payload: payload, version: version, connector: connector) else { return false }
            done.append((pending, ts - pending.sentAt))
            return true
        }
        self.pending[chargePoint] = waiting.isEmpty ? nil : waiting
        return done
    }

    /// A reading of `connector` is the wanted connector's (any, when the command named none).
    private static func sameConnector(_ wanted: Connector?, _ connector: Connector?) -> Bool {
        guard let wanted else { return true }
        guard let connector else { return false }
        return connector.names(wanted) || wanted.names(connector)
    }

    private static func matches(_ effect: Effect, action: String, payload: JSONValue, version: OCPPVersion, connector: Connector?) -> Bool {
        switch effect {
        case .reboot:
            return action == "BootNotification"
        case .transactionStart(let wanted, let remoteStartId):
            let started = version == .v16 ? action == "StartTransaction" : action == "TransactionEvent" && payload["eventType"]?.stringValue == "Started"
            // 2.0.1 may start the transaction earlier (TxStartPoint) and tie it to the request by remoteStartId.
            let eventRemoteStartId = payload["transactionInfo"]?["remoteStartId"]?.intValue
            let tied = version != .v16 && action == "TransactionEvent" && remoteStartId != nil && eventRemoteStartId == remoteStartId
            guard started || tied else { return false }
            // A start tied to another request is that request's.
            if let remoteStartId, let eventRemoteStartId, remoteStartId != eventRemoteStartId { return false }
            return tied || wanted.map { wanted in connector.map { $0.names(wanted) || wanted.names($0) } ?? true } ?? true
        case .transactionEnd(let id):
            if version == .v16 { return action == "StopTransaction" && payload["transactionId"].map { JSONWriter.string($0) } == id }
            return action == "TransactionEvent" && payload["eventType"]?.stringValue == "Ended" && payload["transactionInfo"]?["transactionId"]?.stringValue == id
        case .status(let wanted, let status):
            // 2.0.1 may report availability as an event of the AvailabilityState variable (G01.FR.07).
            if version != .v16, action == "NotifyEvent" {
                return (payload["eventData"]?.arrayValue ?? []).contains { $0["variable"]?["name"]?.stringValue == "AvailabilityState" }
            }
            guard action == "StatusNotification" else { return false }
            let reported = (version == .v16 ? payload["status"] : payload["connectorStatus"])?.stringValue
            let fits = status == "Unavailable" ? reported == "Unavailable" : reported != "Unavailable" && reported != "Faulted"
            return fits && (wanted.map { $0.isStation || connector.map($0.names) == true } ?? true)
        case .message(let wanted):
            return action == wanted
        case .limit(let wanted, let watts):
            let readings = Self.powerReadings(action, payload: payload, version: version)
            guard !readings.isEmpty, Self.sameConnector(wanted, connector) else { return false }
            return readings.contains { Self.keeps($0, limit: watts) }
        }
    }

    /// The commands whose window ended by `now` without their effect (`ended`: the capture or run ended: those
    /// still within their window are undecided).
    /// `only`: the commands of that charge point alone (it is released).
    mutating func expire(now: Int64, ended: Bool = false, of only: String? = nil) -> [(chargePoint: String, pending: Pending, outcome: Outcome)] {
        guard ended || now > self.earliest else { return [] }
        var decided: [(String, Pending, Outcome)] = []
        var earliest = Int64.max
        for (chargePoint, waiting) in self.pending {
            if let only, only != chargePoint {
                earliest = min(earliest, waiting.map(\.deadline).min() ?? .max)
                continue
            }
            var left: [Pending] = []
            for pending in waiting {
                if pending.deadline < now {
                    var unseen = false
                    if case .limit = pending.effect { unseen = !pending.sawReading }
                    decided.append((chargePoint, pending, pending.mayWaitForEV || unseen ? .notObservable : .notCarriedOut))
                } else if ended {
                    decided.append((chargePoint, pending, .undecided))
                } else {
                    left.append(pending)
                    earliest = min(earliest, pending.deadline)
                }
            }
            self.pending[chargePoint] = left.isEmpty ? nil : left
        }
        self.earliest = earliest
        return decided.sorted { $0.1.sentAt < $1.1.sentAt }
    }
}

/// One command's counts for a pair: sent, answered, accepted, and what came of the accepted ones, with the
/// time to the answer and to the effect.
public struct CommandStatistics: Sendable, Hashable {
    public var sent = 0
    public var answered = 0
    public var accepted = 0
    public var carriedOut = 0
    public var notCarriedOut = 0
    public var notObservable = 0
    public var undecided = 0
    public var toAnswer = LatencyHistogram()
    public var toEffect = LatencyHistogram()

    mutating func count(_ outcome: Commands.Outcome) {
        switch outcome {
        case .carriedOut: self.carriedOut += 1
        case .notCarriedOut: self.notCarriedOut += 1
        case .notObservable: self.notObservable += 1
        case .undecided: self.undecided += 1
        }
    }

    mutating func merge(_ other: CommandStatistics) {
        self.sent += other.sent
        self.answered += other.answered
        self.accepted += other.accepted
        self.carriedOut += other.carriedOut
        self.notCarriedOut += other.notCarriedOut
        self.notObservable += other.notObservable
        self.undecided += other.undecided
        self.toAnswer.merge(other.toAnswer)
        self.toEffect.merge(other.toEffect)
    }

    var json: JSONValue {
        func times(_ histogram: LatencyHistogram) -> JSONValue {
            guard histogram.count > 0 else { return .null }
            return [
                "p50": .double(AnalysisReport.round(histogram.percentile(0.5))), "p95": .double(AnalysisReport.round(histogram.percentile(0.95))),
                "max": .double(AnalysisReport.round(histogram.maximum)),
            ]
        }
        return [
            "sent": .int(self.sent), "answered": .int(self.answered), "accepted": .int(self.accepted), "carriedOut": .int(self.carriedOut),
            "notCarriedOut": .int(self.notCarriedOut), "notObservable": .int(self.notObservable), "undecided": .int(self.undecided),
            "toAnswerMs": times(self.toAnswer), "toEffectMs": times(self.toEffect),
        ]
    }
}

/// A pair's command table, as the Markdown and HTML reports show it.
enum CommandTable {
    static let columns = ["command", "sent", "answered", "accepted", "carried out", "not carried out", "not observable", "undecided", "to answer p50 / p95 / max (ms)", "to effect p50 / p95 / max (ms)"]

    static func cells(_ action: String, _ statistics: CommandStatistics) -> [String] {
        func times(_ histogram: LatencyHistogram) -> String {
            guard histogram.count > 0 else { return "–" }
            return [histogram.percentile(0.5), histogram.percentile(0.95), histogram.maximum].map { AnalysisReport.ms($0) }.joined(separator: " / ")
        }
        return [
            action, String(statistics.sent), String(statistics.answered), String(statistics.accepted), String(statistics.carriedOut),
            String(statistics.notCarriedOut), String(statistics.notObservable), String(statistics.undecided), times(statistics.toAnswer),
            times(statistics.toEffect),
        ]
    }

    static func markdown(_ commands: [String: CommandStatistics]) -> [String] {
        guard !commands.isEmpty else { return [] }
        var lines = ["| " + Self.columns.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: Self.columns.count)]
        for action in commands.keys.sorted() {
            guard let statistics = commands[action] else { continue }
            lines.append("| " + Self.cells(action, statistics).map(AnalysisReport.md).joined(separator: " | ") + " |")
        }
        return lines
    }

    static func html(_ commands: [String: CommandStatistics]) -> String {
        guard !commands.isEmpty else { return "" }
        var html = ["<h3>Remote commands</h3><table><tr>" + Self.columns.map { "<th>\(AnalysisReport.xml($0))</th>" }.joined() + "</tr>"]
        for action in commands.keys.sorted() {
            guard let statistics = commands[action] else { continue }
            let cells = Self.cells(action, statistics)
            let failed = statistics.notCarriedOut > 0
            html.append("<tr>" + cells.enumerated().map { index, cell in
                index == 5 && failed ? "<td class=\"sev warning\">\(AnalysisReport.xml(cell))</td>" : "<td>\(AnalysisReport.xml(cell))</td>"
            }.joined() + "</tr>")
        }
        html.append("</table>")
        return html.joined()
    }
}
