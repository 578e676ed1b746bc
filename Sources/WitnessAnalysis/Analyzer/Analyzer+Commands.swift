import OCPPWire
import WitnessCapture
import WitnessModel

/// The backend's commands: counted per pair and action, their effects awaited and timed
/// (docs/reports.md, "Remote commands").
extension Analyzer {
    func commandStatistics(_ chargePoint: String, _ action: String, _ update: (inout CommandStatistics) -> Void) {
        update(&self.pairs[self.pairKey(chargePoint), default: PairStatistics()].commands[action, default: CommandStatistics()])
    }

    func commandSent(_ action: String, state: ConnectionState) {
        self.commandStatistics(state.chargePoint, action) { $0.sent += 1 }
    }

    /// The charger answered a command: timed; an accepted one either has an effect to wait for or none the wire shows.
    /// `answer`: the CALLRESULT's payload (nil for a CALLERROR).
    func commandAnswered(_ call: CallCorrelator<CallInCapture>.PendingCall, answer: JSONValue?, latencyMs: Double, state: ConnectionState, record: CaptureRecord) {
        let chargePoint = state.chargePoint
        let action = call.action
        let accepted = answer.map { Commands.accepts(action, answer: $0) } ?? false
        self.commandStatistics(chargePoint, action) { statistics in
            statistics.answered += 1
            statistics.toAnswer.add(milliseconds: latencyMs)
            if accepted { statistics.accepted += 1 }
        }
        guard accepted else { return }
        // Scheduled (a ChangeAvailability or Reset for after the running transaction) changes nothing now.
        let scheduled = answer?["status"]?.stringValue == "Scheduled"
        let (effect, _) = scheduled ? (nil, "scheduled") : Commands.effect(
            of: action, call: call.context.payload, version: state.version,
            running: { self.transactions.runningId(on: $0, of: chargePoint) }, anyRunning: self.transactions.anyRunning(on: chargePoint),
            status: { self.transactions.status(of: $0, at: chargePoint) }
        )
        guard let effect else {
            self.commandStatistics(chargePoint, action) { $0.count(.notObservable) }
            return
        }
        // The CALL's time on the capture's clock (the correlator keeps it in nanoseconds).
        let sentAt = Int64(call.sentAtNanos / 1000)
        var pending = Commands.Pending(
            action: action, callRef: "\(call.context.file):\(call.context.line)", answerRef: record.reference, sentAt: sentAt,
            deadline: sentAt + self.commands.windowMicros, effect: effect, version: state.version
        )
        if case .transactionStart(let connector, _) = effect {
            // A connector reported Available has no cable in (1.6 Preparing, 2.0.1 Occupied, when one is): the charger
            // waits for the EV, and the capture cannot tell a start that never comes from an EV that never came.
            let statuses = connector.map { [self.transactions.status(of: $0, at: chargePoint)] }
                ?? self.transactions.knownConnectors(of: chargePoint).map { self.transactions.status(of: $0.connector, at: chargePoint) }
            pending.mayWaitForEV = !statuses.isEmpty && statuses.allSatisfy { $0 == "Available" }
        }
        self.commands.await(pending, chargePoint: chargePoint)
    }

    /// A charger's CALL: the commands whose effect it is.
    func commandEffects(_ action: String, payload: JSONValue, state: ConnectionState, record: CaptureRecord, ts: Int64) {
        let connector = self.transactions.connectorOfRecord ?? Connector.named(action: action, payload: payload, version: state.version)
        for (pending, latency) in self.commands.observe(action, payload: payload, chargePoint: state.chargePoint, version: state.version, connector: connector, at: ts) {
            self.commandStatistics(state.chargePoint, pending.action) { statistics in
                statistics.count(.carriedOut)
                statistics.toEffect.add(milliseconds: Double(latency) / 1000)
            }
        }
    }

    /// Commands whose window ended without their effect: counted, and `command.notCarriedOut` with both lines;
    /// at the end of a capture or run, those still within their window are undecided.
    func commandsExpired(now: Int64, ended: Bool = false) {
        for (chargePoint, pending, outcome) in self.commands.expire(now: now, ended: ended) {
            self.commandStatistics(chargePoint, pending.action) { $0.count(outcome) }
            guard outcome == .notCarriedOut else { continue }
            let window = Self.format(Double(self.commands.windowMicros) / 1_000_000)
            self.reportDetached(
                Deviation(
                    rule: "command.notCarriedOut", chargePoint: chargePoint, direction: .toCSMS, action: pending.action,
                    detail: "\(pending.action) sent at \(pending.callRef) was accepted (\(pending.answerRef)), and \(Commands.describe(pending.effect)) did not follow within \(window) s",
                    ref: pending.answerRef, related: [pending.callRef]
                ),
                chargePoint: chargePoint
            )
        }
    }
}

extension Commands {
    /// An effect as a verdict sentence names it.
    static func describe(_ effect: Effect) -> String {
        switch effect {
        case .reboot: return "a reboot (BootNotification)"
        case .transactionStart(let connector, _): return "a transaction" + (connector.map { " on \($0)" } ?? "")
        case .transactionEnd(let id): return "the end of transaction \(id)"
        case .status(let connector, let status): return "\(status) reported" + (connector.map { " for \($0)" } ?? "")
        case .message(let action): return "the \(action) asked for"
        }
    }
}
