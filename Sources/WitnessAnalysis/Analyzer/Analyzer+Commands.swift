import OCPPWire
import WitnessCapture
import WitnessModel
import WitnessPolicy

/// The backend's commands: counted per pair and action, their effects awaited and timed
/// (docs/reports.md, "Remote commands").
extension Analyzer {
    func commandStatistics(_ chargePoint: String, _ action: String, _ update: (inout CommandStatistics) -> Void) {
        self.commandStatistics(self.pairKey(chargePoint), action, update)
    }

    func commandStatistics(_ pair: PairKey, _ action: String, _ update: (inout CommandStatistics) -> Void) {
        update(&self.pairs[pair, default: PairStatistics()].commands[action, default: CommandStatistics()])
    }

    func commandSent(_ action: String, state: ConnectionState, record: CaptureRecord) {
        // A duplicate's copy is the proxy's, not a command the backend sent.
        if record.injected, record.fault?["kind"]?.stringValue == "duplicate" { return }
        self.commandStatistics(state.chargePoint, action) { $0.sent += 1 }
        // One the policy dropped, malformed or answered itself never reached the charger as sent: nothing to judge.
        if let kind = record.fault?["kind"]?.stringValue, !record.injected, ["drop", "malformed", "respond"].contains(kind) {
            self.commandStatistics(state.chargePoint, action) { $0.count(.notObservable) }
            return
        }
        if let id = record.messageId { self.commands.sent(id, to: state.chargePoint) }
    }

    /// The charger answered a command: timed; an accepted one either has an effect to wait for or none the wire shows.
    /// `answer`: the CALLRESULT's payload (nil for a CALLERROR).
    func commandAnswered(_ call: CallCorrelator<CallInCapture>.PendingCall, answer: JSONValue?, latencyMs: Double, state: ConnectionState, record: CaptureRecord) {
        let chargePoint = state.chargePoint
        let action = call.action
        // Its messages kept until now are looked at first (an effect before the answer), then let go.
        defer { self.commands.answered(call.messageId, by: chargePoint) }
        // An answer the proxy gave on the charger's behalf (a policy's respond fault) is not the charger's.
        if record.injected { return }
        let accepted = answer.map { Commands.accepts(action, answer: $0) } ?? false
        self.commandStatistics(chargePoint, action) { statistics in
            statistics.answered += 1
            statistics.toAnswer.add(milliseconds: latencyMs)
            if accepted { statistics.accepted += 1 }
        }
        let callRef = "\(call.context.file):\(call.context.line)"
        var requirement = self.commandRequirement(action)
        // The CALL's time on the capture's clock (the correlator keeps it in nanoseconds).
        let sentAt = Int64(call.sentAtNanos / 1000)
        if let limit = requirement?.answerWithin, latencyMs / 1000 > limit {
            self.requirementJudged(
                .fail, chargePoint: chargePoint, state.version,
                "\(action) (\(callRef)) was answered after \(Self.format(latencyMs / 1000)) s; the site asks within \(Self.format(limit)) s", [callRef, record.reference],
                window: (sentAt, sentAt + Int64(latencyMs * 1000)), lateBy: Int64((latencyMs / 1000 - limit) * 1_000_000)
            )
            requirement = nil
        }
        guard accepted else { return }
        // Scheduled (a ChangeAvailability or Reset for after the running transaction) changes nothing now.
        let scheduled = answer?["status"]?.stringValue == "Scheduled"
        let known = self.transactions.knownConnectors(of: chargePoint).compactMap { self.transactions.status(of: $0.connector, at: chargePoint) }
        let effect = scheduled ? nil : Commands.effect(
            of: action, call: call.context.payload, version: state.version, anyRunning: self.transactions.anyRunning(on: chargePoint),
            status: { self.transactions.status(of: $0, at: chargePoint) }, statuses: known, isOpen: { self.transactions.isOpen($0, at: chargePoint) },
            runningOn: { connector in
                connector.map { self.transactions.running(on: $0, at: chargePoint) } ?? self.transactions.anyRunning(on: chargePoint)
            },
            power: self.commands.power(
                of: chargePoint, unit: call.context.payload.flatMap { Connector.named(action: action, payload: $0, version: state.version) }?.unit ?? 0
            ),
            now: Int64(call.sentAtNanos / 1000)
        )
        guard let effect else {
            self.commandStatistics(chargePoint, action) { $0.count(.notObservable) }
            if requirement != nil {
                self.requirementJudged(
                    .pass, chargePoint: chargePoint, state.version,
                    "\(action) (\(callRef)) was answered in \(Self.format(latencyMs / 1000)) s and accepted; nothing on the wire to wait for", [callRef, record.reference]
                )
            }
            return
        }
        var pending = Commands.Pending(
            action: action, callRef: callRef, answerRef: record.reference, sentAt: sentAt,
            deadline: sentAt + self.commands.windowMicros, effect: effect, version: state.version, pair: self.pairKey(chargePoint),
            requirement: requirement
        )
        if case .transactionStart(let connector, _) = effect {
            // A connector reported Available has no cable in (1.6 Preparing, 2.0.1 Occupied, when one is): the charger
            // waits for the EV, and the capture cannot tell a start that never comes from an EV that never came.
            let statuses = connector.map { [self.transactions.status(of: $0, at: chargePoint)] }
                ?? self.transactions.knownConnectors(of: chargePoint).map { self.transactions.status(of: $0.connector, at: chargePoint) }
            pending.mayWaitForEV = statuses.contains { $0 == "Available" }
        }
        // The effect may have come before the answer (firmware that starts the transaction, then answers).
        if let (ts, ref) = self.commands.earlyEffect(of: pending, chargePoint: chargePoint) {
            self.effectObserved(pending, latency: ts - sentAt, chargePoint: chargePoint, version: state.version, ref: ref, effectTs: ts)
            return
        }
        if !self.commands.await(pending, chargePoint: chargePoint) {
            // More commands awaiting their effect than are followed: this one is not decided.
            self.commandStatistics(chargePoint, action) { $0.count(.undecided) }
        }
    }

    /// A command's effect came `latency` after the command: counted, and judged against the site's requirement.
    private func effectObserved(_ pending: Commands.Pending, latency: Int64, chargePoint: String, version: OCPPVersion, ref: String, effectTs: Int64) {
        self.commandStatistics(pending.pair, pending.action) { statistics in
            statistics.count(.carriedOut)
            statistics.toEffect.add(milliseconds: Double(latency) / 1000)
        }
        guard let requirement = pending.requirement else { return }
        let seconds = Double(latency) / 1_000_000
        let late = requirement.effectWithin.map { seconds > $0 } ?? false
        self.requirementJudged(
            late ? .fail : .pass, chargePoint: chargePoint, version,
            "\(pending.action) (\(pending.callRef)) was carried out after \(Self.format(seconds)) s (\(ref))"
                + (requirement.effectWithin.map { late ? "; the site asks within \(Self.format($0)) s" : ", within the \(Self.format($0)) s the site asks" } ?? ""),
            [pending.callRef, ref], window: (pending.sentAt, effectTs), lateBy: requirement.effectWithin.map { Int64((seconds - $0) * 1_000_000) }
        )
    }

    /// A charger's CALL: the commands whose effect it is.
    func commandEffects(_ action: String, payload: JSONValue, state: ConnectionState, record: CaptureRecord, ts: Int64) {
        let connector = self.transactions.connectorOfRecord ?? Connector.named(action: action, payload: payload, version: state.version)
        for (pending, latency) in self.commands.observe(action, payload: payload, chargePoint: state.chargePoint, version: state.version, connector: connector, at: ts) {
            self.effectObserved(pending, latency: latency, chargePoint: state.chargePoint, version: state.version, ref: record.reference, effectTs: ts)
        }
        self.commands.keep(action, payload: payload, chargePoint: state.chargePoint, version: state.version, connector: connector, at: ts, ref: record.reference)
        self.commands.notePower(action, payload: payload, chargePoint: state.chargePoint, version: state.version, unit: connector?.unit ?? 0)
    }

    /// Commands whose window ended without their effect: counted, and `command.notCarriedOut` with both lines;
    /// at the end of a capture or run, those still within their window are undecided.
    func commandsExpired(now: Int64, ended: Bool = false, of only: String? = nil) {
        for (chargePoint, pending, outcome) in self.commands.expire(now: now, ended: ended, of: only) {
            // An effect that did not come while the policy's fault touched the command, its answer or the charge point's
            // traffic inside the window says nothing about the charger: not observable, and the finding is the fault's.
            let explanation = outcome == .notCarriedOut
                ? self.faults.explanation(
                    for: chargePoint, stimulus: pending.callRef, refs: [pending.answerRef], from: pending.sentAt, through: pending.deadline
                ) : nil
            self.commandStatistics(pending.pair, pending.action) { $0.count(explanation == nil ? outcome : .notObservable) }
            if pending.requirement != nil {
                let (verdict, what): (CheckVerdict, String) =
                    switch outcome {
                    case .notCarriedOut: (.fail, "was accepted and not carried out")
                    case .notObservable: (.inconclusive, "was not carried out, on a connector without an EV")
                    default: (.inconclusive, "was still awaited when the capture or proxy run ended")
                    }
                self.requirementJudged(
                    verdict, chargePoint: chargePoint, pending.version, "\(pending.action) (\(pending.callRef)) \(what)", [pending.callRef, pending.answerRef],
                    window: (pending.sentAt, pending.deadline)
                )
            }
            guard outcome == .notCarriedOut else { continue }
            let window = Self.format(Double(self.commands.windowMicros) / 1_000_000)
            self.reportDetached(
                Deviation(
                    rule: "command.notCarriedOut", chargePoint: chargePoint, direction: .toCSMS, action: pending.action,
                    detail: "\(pending.action) sent at \(pending.callRef) was accepted (\(pending.answerRef)), and \(Commands.describe(pending.effect)) did not follow within \(window) s",
                    ref: pending.answerRef, related: [pending.callRef]
                ).explained(by: explanation),
                // The pair the command was sent to: a charger updated meanwhile boots as another.
                pair: pending.pair
            )
        }
    }
}

extension Analyzer {
    /// The site's requirement for `action`, when a `commandRequirements` check judges it.
    func commandRequirement(_ action: String) -> CommandRequirement? {
        guard let checks = self.checks, checks.judgements.contains(.commandRequirements) else { return nil }
        return self.configuration.site.commands[action]
    }

    /// One command judged against the site's requirement. A failure the policy's fault explains (it touched the
    /// command, its answer, or the charge point's traffic inside `window`) is inconclusive and says so.
    func requirementJudged(
        _ verdict: CheckVerdict, chargePoint: String, _ version: OCPPVersion?, _ detail: String, _ refs: [String], window: (from: Int64, through: Int64)? = nil,
        lateBy: Int64? = nil
    ) {
        var verdict = verdict
        var detail = detail
        var refs = refs
        var side: (Deviation.Side, String)?
        if verdict == .fail, let window, let touch = self.faults.explanation(
                for: chargePoint, stimulus: refs.first, refs: Array(refs.dropFirst()), from: window.from, through: window.through, lateBy: lateBy
            )
        {
            verdict = .inconclusive
            detail += "; \(touch.sentence), which explains it: this counts against neither vendor"
            if !refs.contains(touch.ref) { refs.append(touch.ref) }
            side = (.fault, touch.sentence)
        }
        self.checks?.judged(.commandRequirements, verdict, chargePoint: chargePoint, version: version, pair: self.pairKey(chargePoint), detail: detail, refs: refs, side: side)
    }

    /// At the end: per pair and command with a required share, the share carried out of those that could be.
    func commandSharesJudged() {
        guard let checks = self.checks, checks.judgements.contains(.commandRequirements) else { return }
        for (pair, statistics) in self.pairs.sorted(by: { $0.key < $1.key }) {
            for (action, counts) in statistics.commands.sorted(by: { $0.key < $1.key }) {
                guard let required = self.configuration.site.commands[action]?.carriedOut else { continue }
                let judged = counts.sent - counts.notObservable - counts.undecided
                guard judged > 0 else { continue }
                let share = Double(counts.carriedOut) / Double(judged)
                checks.judged(
                    .commandRequirements, share + 1e-9 >= required ? .pass : .fail, chargePoint: pair.charger.label, version: nil, pair: pair,
                    detail: "\(action): \(counts.carriedOut) of \(judged) carried out (\(Self.format((share * 1000).rounded() / 10))%); the site asks at least \(Self.format((required * 1000).rounded() / 10))%",
                    refs: []
                )
            }
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
        case .limit(let connector, let watts): return "a power reading at or below the \(Analyzer.format(watts)) W limit" + (connector.map { " on \($0)" } ?? "")
        }
    }
}
