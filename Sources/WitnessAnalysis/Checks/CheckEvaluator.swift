import OCPPWire
import WitnessCapture
import WitnessPolicy
import WitnessModel

/// Runs the witness checks of the loaded policies over a stream of capture records: each stimulus opens a
/// window, which the expected (or forbidden) event closes; the windows still open when the capture's
/// clock passes their end are decided by the absence of the event.
final class CheckEvaluator {
    private let checks: [WitnessCheck]
    /// Open windows per check; bounded per charge point so a stimulus on every message cannot grow them without limit.
    private var windows: [OpenWindows]
    /// Per check, the stimuli that named no connector under `connector: same` (a Reset): until their window
    /// ends, a connector the charger reports for the first time gets a window of its own, so that a connector
    /// reported only after the stimulus (after the reboot, say) is followed too.
    private var fanOuts: [[String: [FanOut]]]

    struct FanOut {
        var template: Window
        var connectors: Set<Connector>
    }
    private var outcomes: [[PairKey: Outcome]]
    /// Pairs each check was evaluated for, in order of first stimulus.
    private var earliestDeadline = Int64.max
    /// The actions whose CALL payloads conditions on `call:` pointers of an answer need (nil: all). The
    /// analyzer keeps them with the outstanding CALL and hands them over with its answer (`Context`).
    private let callActions: Set<String>?
    /// The OCPP versions each charge point's connections negotiated.
    private var versions: [String: Set<OCPPVersion>] = [:]
    private var connectionVersions: [ConnectionKey: OCPPVersion] = [:]
    static let maximumOpenWindows = 64
    static let occurrencesShown = 3

    struct ConnectionKey: Hashable, Comparable {
        var run: Int
        var connection: UInt64

        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.run, lhs.connection) < (rhs.run, rhs.connection) }
    }

    struct Window {
        var chargePoint: String
        var connection: ConnectionKey?
        var ts: Int64
        var deadline: Int64
        var ref: String
        var pair: PairKey
        var payload: JSONValue?
        var callPayload: JSONValue?
        /// With `connector: same`: the connector the window follows (nil: the stimulus named none and none was known).
        var connector: Connector?
        /// The connector was known only from an earlier proxy run: a failure is not proof.
        var provisional = false
        /// Order of opening among the check's windows (`OpenWindows` sets it).
        var sequence: UInt64 = 0

        /// How the stimulus reads in a verdict sentence.
        func stimulus(_ check: WitnessCheck) -> String {
            "\(check.when.description) (\(self.ref))" + (self.connector.map { ", for \($0)" } ?? "")
        }
    }

    private struct Outcome {
        var counts: [CheckVerdict: Int] = [:]
        var shown: [CheckVerdict: [(detail: String, refs: [String])]] = [:]
        /// The side of the first failure, and why; the first failure the policy's fault explained.
        var failedOn: (side: Deviation.Side, reason: String)?
        var explained: (count: Int, reason: String?) = (0, nil)

        mutating func add(_ verdict: CheckVerdict, _ detail: String, _ refs: [String]) {
            self.counts[verdict, default: 0] += 1
            if self.shown[verdict, default: []].count < CheckEvaluator.occurrencesShown { self.shown[verdict, default: []].append((detail, refs)) }
        }
    }

    /// The policy's faults seen so far (the analyzer's), which may explain a failure.
    var faults: FaultTouches?

    /// What the evaluator needs of a record beyond the record itself.
    struct Context {
        var run: Int
        var pair: PairKey
        /// For an answer, the payload of the CALL it answers, when `keepsCallPayload` asked for it.
        var answeredCallPayload: JSONValue? = nil
        /// The connector the record is about (in its payload or through its transaction), from the charger model.
        var connector: Connector? = nil
    }

    /// The connectors the charger model knows of a charge point, and whether from an earlier proxy run only.
    typealias KnownConnectors = (String) -> [(connector: Connector, provisional: Bool)]

    /// What the charger model is asked to judge (the checks with `judge:`).
    var judgements: Set<WitnessCheck.Judgement> { Set(self.checks.compactMap(\.judge)) }

    /// One occurrence of what judged checks ask about, decided by the charger model: every check judging
    /// `judgement` (for the charge point's OCPP version) counts it.
    func judged(
        _ judgement: WitnessCheck.Judgement, _ verdict: CheckVerdict, chargePoint: String, version: OCPPVersion?, pair: PairKey, detail: String, refs: [String],
        side: (Deviation.Side, String)? = nil, area: WitnessArea? = nil
    ) {
        for index in self.checks.indices where self.checks[index].judge == judgement {
            if let versions = self.checks[index].versions, let version, !versions.contains(version) { continue }
            // A check judging features judges those of its own area.
            if let area, self.checks[index].area != area { continue }
            self.outcomes[index][pair, default: Outcome()].add(verdict, "\(chargePoint): \(detail)", refs)
            if verdict == .fail, self.outcomes[index][pair]?.failedOn == nil {
                self.outcomes[index][pair]?.failedOn = side ?? Self.side(of: judgement)
            } else if verdict == .inconclusive, let side, side.0 == .fault {
                self.outcomes[index][pair]?.explained.count += 1
                if self.outcomes[index][pair]?.explained.reason == nil { self.outcomes[index][pair]?.explained.reason = side.1 }
            }
        }
    }

    /// Whose side a failed judged check is on: each judges what the charger does.
    static func side(of judgement: WitnessCheck.Judgement) -> (Deviation.Side, String) {
        switch judgement {
        case .commandRequirements: (.charger, "the charger answered or carried out the command later than the site asks, or not at all")
        case .meterCadence: (.charger, "the charger sends its meter values")
        case .offlineAuthorization, .stopOnInvalidId: (.charger, "the charger decides whom it lets charge")
        case .sessionRecovery: (.charger, "the charger delivers what it queued while offline")
        case .featuresAsClaimed: (.charger, "the charger claims the feature")
        case .billingReconciles: (.charger, "the charger's meter values do not reconcile")
        }
    }

    /// Whose side a failed window check is on: the side that did not send the expected event, or that sent the forbidden one.
    static func side(of check: WitnessCheck, event: Event?) -> (Deviation.Side, String) {
        if check.outcome == .forbid, let direction = event?.direction {
            return direction == .toCharger
                ? (.backend, "the backend sent what the check forbids")
                : (.charger, "the charger sent what the check forbids")
        }
        switch check.then.event {
        case .open, .close:
            return (.charger, "connecting again is the charger's move")
        case .reject:
            return (.backend, "refusing the upgrade is the backend's move")
        case .message:
            return check.then.direction == .toCharger
                ? (.backend, "the backend did not send what the check expects")
                : (.charger, "the charger did not send what the check expects")
        }
    }

    /// The window of the first check judging `judgement` (nil: no check asks for it).
    func window(of judgement: WitnessCheck.Judgement) -> Double? {
        self.checks.first { $0.judge == judgement }?.within
    }

    /// Whether conditions need the payload of a CALL of `action` when its answer comes.
    func keepsCallPayload(of action: String) -> Bool {
        self.callActions.map { $0.contains(action) } ?? true
    }

    init(checks: [WitnessCheck]) {
        self.checks = checks
        self.windows = Array(repeating: OpenWindows(), count: checks.count)
        self.fanOuts = Array(repeating: [:], count: checks.count)
        self.outcomes = Array(repeating: [:], count: checks.count)
        let patterns = checks.flatMap { [$0.when, $0.then] }
        let needsCalls = patterns.contains { pattern in
            pattern.payload.contains { condition in
                if condition.pointer.hasPrefix("call:") { return true }
                if case .sameAs(let other) = condition.test, other.hasPrefix("call:") { return true }
                return false
            }
        }
        if !needsCalls {
            self.callActions = []
        } else if patterns.contains(where: { $0.actions == nil }) {
            self.callActions = nil
        } else {
            self.callActions = Set(patterns.flatMap { $0.actions ?? [] })
        }
    }

    // MARK: Feeding

    func consume(_ record: CaptureRecord, context: Context, pairOf: (String) -> PairKey, connectorsOf: KnownConnectors) {
        guard let kind = record.recordKind, let chargePoint = record.chargePoint else { return }
        switch kind {
        case .frame, .open, .close, .reject: break
        default: return
        }
        if self.run != context.run {
            if self.run != nil { self.endRun(pairOf: pairOf) }
            self.run = context.run
        }
        let ts = record.ts?.microseconds ?? 0
        self.runLastTs = max(self.runLastTs, ts)
        if ts > self.earliestDeadline { self.expire(now: ts, pairOf: pairOf) }
        let connection = record.connection.map { ConnectionKey(run: context.run, connection: $0) }
        if kind == .open, let version = record.fields["version"]?.stringValue.flatMap(OCPPVersion.init(rawValue:)) {
            self.versions[chargePoint, default: []].insert(version)
            if let connection { self.connectionVersions[connection] = version }
        }
        let version = connection.flatMap { self.connectionVersions[$0] }
        let event = Event(record: record, connection: connection, callPayload: context.answeredCallPayload, connector: context.connector)
        for index in self.checks.indices where self.checks[index].judge == nil {
            let check = self.checks[index]
            if let connector = event.connector, !connector.isStation, self.fanOuts[index][chargePoint] != nil {
                self.fanOut(index, to: connector, of: chargePoint, at: ts)
            }
            if !self.windows[index].isEmpty { self.settle(index, check, event: event, chargePoint: chargePoint, ts: ts, pairOf: pairOf) }
            if check.versions.map({ versions in version.map(versions.contains) ?? true }) ?? true, Self.matches(check.when, event, stimulus: nil) {
                let deadline = ts + Int64(check.within * 1_000_000)
                // `connector: same`: the stimulus's connector, or, when it names none (a Reset), each connector known then.
                var targets: [(connector: Connector?, provisional: Bool)] = [(nil, false)]
                if check.then.connector == .same {
                    if let connector = event.connector {
                        targets = [(connector, false)]
                    } else {
                        let known = connectorsOf(chargePoint)
                        if !known.isEmpty { targets = known.map { ($0.connector, $0.provisional) } }
                    }
                }
                let template = Window(
                    chargePoint: chargePoint, connection: connection, ts: ts, deadline: deadline, ref: record.reference, pair: context.pair,
                    payload: event.payload, callPayload: event.callPayload
                )
                for target in targets where self.windows[index].count(of: chargePoint) < Self.maximumOpenWindows {
                    var window = template
                    window.connector = target.connector
                    window.provisional = target.provisional
                    self.windows[index].append(window)
                }
                if check.then.connector == .same, event.connector == nil, (self.fanOuts[index][chargePoint]?.count ?? 0) < Self.maximumOpenWindows {
                    self.fanOuts[index][chargePoint, default: []].append(FanOut(template: template, connectors: Set(targets.compactMap(\.connector))))
                }
                self.earliestDeadline = min(self.earliestDeadline, deadline)
            }
        }
        if kind == .close, let connection {
            self.connectionVersions.removeValue(forKey: connection)
        }
    }

    /// A connector reported for the first time while a stimulus that named none is being watched: it gets a
    /// window of its own, with the stimulus's line and deadline. Stimuli whose window ended are forgotten.
    private func fanOut(_ index: Int, to connector: Connector, of chargePoint: String, at ts: Int64) {
        var fanOuts = self.fanOuts[index][chargePoint] ?? []
        fanOuts.removeAll { $0.template.deadline < ts }
        for position in fanOuts.indices where !fanOuts[position].connectors.contains(where: { $0.names(connector) }) {
            // Bounded as the model is: a charger naming a new connector in every message grows nothing past it.
            guard fanOuts[position].connectors.count < ConnectorTransactions.unitsLimit,
                self.windows[index].count(of: chargePoint) < Self.maximumOpenWindows
            else { continue }
            fanOuts[position].connectors.insert(connector)
            var window = fanOuts[position].template
            window.connector = connector
            self.windows[index].append(window)
            self.earliestDeadline = min(self.earliestDeadline, window.deadline)
        }
        self.fanOuts[index][chargePoint] = fanOuts.isEmpty ? nil : fanOuts
    }

    /// Decides the windows the event closes: the expected event passes them, a forbidden one fails them,
    /// and the end of the stimulus's connection decides those that wait on that connection alone.
    private func settle(_ index: Int, _ check: WitnessCheck, event: Event, chargePoint: String, ts: Int64, pairOf: (String) -> PairKey) {
        guard var windows = self.windows[index].take(chargePoint) else { return }
        windows.removeAll { window in
            // A window whose end has passed is decided by its deadline (`expire`), never by a later event.
            if window.deadline < ts { return false }
            var after: String { Self.seconds(ts - window.ts) }
            var stimulus: String { window.stimulus(check) }
            if Self.matches(check.then, event, stimulus: window) {
                switch check.outcome {
                case .expect:
                    self.record(index, window, pairOf, .pass, "\(stimulus) was followed by \(check.then.description) after \(after) s (\(event.ref)); the window is \(Self.format(check.within)) s", [window.ref, event.ref])
                case .forbid:
                    self.record(index, window, pairOf, .fail, "\(stimulus) was followed by \(check.then.description) after \(after) s (\(event.ref)), which must not happen within \(Self.format(check.within)) s", [window.ref, event.ref], at: ts, event: event)
                }
                return true
            }
            if event.kind == .close, check.then.connection == .same, window.connection != nil, event.connection == window.connection {
                // The operator stopped the proxy: the watch ended with the run, as at the end of a capture.
                if event.endsRun {
                    self.record(
                        index, window, pairOf, .inconclusive,
                        "the proxy was stopped \(after) s after \(stimulus), closing its connection (\(event.ref)) \(Self.seconds(window.deadline - ts)) s before its \(Self.format(check.within)) s window closed, without \(check.then.description)",
                        [window.ref, event.ref]
                    )
                    return true
                }
                switch check.outcome {
                case .expect:
                    self.record(index, window, pairOf, .fail, "the connection of \(stimulus) closed after \(after) s (\(event.ref)) without \(check.then.description)", [window.ref, event.ref], at: ts)
                case .forbid:
                    self.record(index, window, pairOf, .pass, "the connection of \(stimulus) closed after \(after) s (\(event.ref)) without \(check.then.description)", [window.ref, event.ref])
                }
                return true
            }
            return false
        }
        self.windows[index].put(windows, for: chargePoint)
    }

    /// Decides the windows whose end the capture's clock has passed.
    private func expire(now: Int64, pairOf: (String) -> PairKey) {
        var earliest = Int64.max
        for index in self.checks.indices {
            let check = self.checks[index]
            let (due, next) = self.windows[index].removeDue(before: now)
            earliest = min(earliest, next)
            for window in due {
                let stimulus = window.stimulus(check)
                switch check.outcome {
                case .expect where window.provisional:
                    self.record(
                        index, window, pairOf, .inconclusive,
                        "\(stimulus) was not followed by \(check.then.description) within \(Self.format(check.within)) s; \(window.connector?.description ?? "the connector") was known only from an earlier proxy run, so it may be gone",
                        [window.ref]
                    )
                case .expect:
                    self.record(index, window, pairOf, .fail, "\(stimulus) was not followed by \(check.then.description) within \(Self.format(check.within)) s", [window.ref])
                case .forbid:
                    self.record(index, window, pairOf, .pass, "\(stimulus) was not followed by \(check.then.description) within \(Self.format(check.within)) s", [window.ref])
                }
            }
        }
        self.earliestDeadline = earliest
        for index in self.fanOuts.indices where !self.fanOuts[index].isEmpty {
            self.fanOuts[index] = self.fanOuts[index].compactMapValues { fanOuts in
                let left = fanOuts.filter { $0.template.deadline >= now }
                return left.isEmpty ? nil : left
            }
        }
    }

    /// Counts one occurrence. A failure the policy's fault explains (it touched the stimulus, its answer, or anything of
    /// the charge point inside the window up to `at`; a fault that is the check's stimulus explains nothing) is
    /// inconclusive and says so: it counts against neither vendor (docs/reports.md, "Whose side").
    private func record(
        _ index: Int, _ window: Window, _ pairOf: (String) -> PairKey, _ verdict: CheckVerdict, _ detail: String, _ refs: [String],
        at: Int64? = nil, event: Event? = nil
    ) {
        // A stimulus seen before the charger said who it is belongs to the charger it turned out to be.
        let pair = window.pair.charger == .unknown ? pairOf(window.chargePoint) : window.pair
        var verdict = verdict
        var detail = detail
        var refs = refs
        if verdict == .fail {
            let check = self.checks[index]
            let stimulusIsFault = check.when.faults != nil || check.when.injected == true
            let through = at ?? window.deadline
            // A forbid check waits for nothing: a cut connection explains no forbidden event that came.
            if let touch = self.faults?.explanation(
                for: window.chargePoint, stimulus: window.ref, refs: refs.filter { $0 != window.ref }, from: check.outcome == .forbid ? .max : window.ts,
                through: through, stimulusIsFault: stimulusIsFault, excludingRules: check.when.faults ?? []
            ) {
                verdict = .inconclusive
                detail += "; \(touch.sentence) inside the window, which explains it: this counts against neither vendor"
                if !refs.contains(touch.ref) { refs.append(touch.ref) }
                self.outcomes[index][pair, default: Outcome()].explained.count += 1
                if self.outcomes[index][pair]?.explained.reason == nil { self.outcomes[index][pair]?.explained.reason = touch.sentence }
            } else if self.outcomes[index][pair]?.failedOn == nil {
                self.outcomes[index][pair, default: Outcome()].failedOn = Self.side(of: check, event: event)
            }
        }
        self.outcomes[index][pair, default: Outcome()].add(verdict, "\(window.chargePoint): \(detail)", refs)
    }

    /// The verdict of every check for each of `pairs`; windows still open are inconclusive when the
    /// capture ended before they closed.
    /// The latest record time of the run being read.
    private var runLastTs: Int64 = 0
    private var run: Int?

    /// Ends the windows of the run that ended: what a later run of the proxy records was not watched
    /// continuously (a restart, another pilot), so it neither proves nor disproves them.
    private func endRun(pairOf: (String) -> PairKey) {
        self.expire(now: self.runLastTs &+ 1, pairOf: pairOf)
        for index in self.checks.indices {
            let check = self.checks[index]
            for window in self.windows[index].inOrder {
                self.record(
                    index, window, pairOf, .inconclusive,
                    "the capture of this proxy run ends \(Self.seconds(self.runLastTs - window.ts)) s after \(check.when.description) (\(window.ref)), \(Self.seconds(window.deadline - self.runLastTs)) s before its \(Self.format(check.within)) s window closed, without \(check.then.description)",
                    [window.ref]
                )
            }
            self.windows[index] = OpenWindows()
            self.fanOuts[index] = [:]
        }
        self.earliestDeadline = .max
        self.connectionVersions.removeAll()
        self.runLastTs = 0
    }

    /// `pairs` are the pairs with their charge points; a check for other OCPP versions than theirs is not listed for them.
    func finish(lastTs: Int64, pairs: [PairKey: Set<String>], pairOf: (String) -> PairKey) -> [PairKey: [AreaResult]] {
        self.endRun(pairOf: pairOf)
        var results: [PairKey: [AreaResult]] = [:]
        for pair in Set(pairs.keys).union(self.outcomes.flatMap(\.keys)) {
            results[pair] = self.areas(pair, chargePoints: pairs[pair])
        }
        return results
    }

    /// The verdicts so far, while records still come (the live page): what is settled counts as in `finish`,
    /// the run goes on, and a check whose stimulus happened while its windows are all still open has no
    /// verdict yet: `pending`, with how many windows are open. Only pairs with a check that ran or waits are listed.
    func interim(pairs: [PairKey: Set<String>], pairOf: (String) -> PairKey) -> [PairKey: JSONValue] {
        var open: [Int: [PairKey: Int]] = [:]
        for index in self.checks.indices {
            for window in self.windows[index].unordered {
                let pair = window.pair.charger == .unknown ? pairOf(window.chargePoint) : window.pair
                open[index, default: [:]][pair, default: 0] += 1
            }
        }
        var results: [PairKey: JSONValue] = [:]
        for pair in Set(self.outcomes.flatMap(\.keys)).union(open.values.flatMap(\.keys)) {
            let areas: [JSONValue] = self.areas(pair, chargePoints: pairs[pair]).compactMap { area in
                var checks: [JSONValue] = []
                var pending = false
                for check in area.checks {
                    let index = self.checks.firstIndex { $0.name == check.name }
                    let waiting = index.flatMap { open[$0]?[pair] } ?? 0
                    guard var json = check.json.objectValue else { continue }
                    if check.verdict == .notRun && waiting > 0 {
                        json["verdict"] = "pending"
                        json["detail"] = .string("waiting: \(waiting) stimulus window(s) still open")
                        pending = true
                    }
                    json["open"] = .int(waiting)
                    checks.append(.object(json))
                }
                guard !checks.isEmpty else { return nil }
                let verdict = area.verdict == .fail ? "fail" : pending ? "pending" : area.verdict.rawValue
                return ["area": .string(area.area.rawValue), "verdict": .string(verdict), "checks": .array(checks)]
            }
            results[pair] = .array(areas)
        }
        return results
    }

    private func areas(_ pair: PairKey, chargePoints: Set<String>?) -> [AreaResult] {
        let spoken = chargePoints.map { $0.reduce(into: Set<OCPPVersion>()) { $0.formUnion(self.versions[$1] ?? []) } }
        let applies = self.checks.indices.filter { index in
            guard let versions = self.checks[index].versions, let spoken, !spoken.isEmpty else { return true }
            return !versions.isDisjoint(with: spoken) || self.outcomes[index][pair] != nil
        }
        return WitnessArea.allCases.map { area in
            AreaResult(area: area, checks: applies.filter { self.checks[$0].area == area }.map { self.result($0, pair: pair) })
        }
    }

    private func result(_ index: Int, pair: PairKey) -> CheckResult {
        let check = self.checks[index]
        guard let outcome = self.outcomes[index][pair] else {
            let detail = check.judge.map { "not run: the capture shows no \($0.occurrence) for this pair" }
                ?? "not run: the stimulus never happened; nothing in the capture for this pair was \(check.when.description)"
            return CheckResult(name: check.name, area: check.area, description: check.description, verdict: .notRun, detail: detail, refs: [], counts: [:])
        }
        let verdict: CheckVerdict =
            (outcome.counts[.fail] ?? 0) > 0 ? .fail : (outcome.counts[.pass] ?? 0) > 0 ? .pass : .inconclusive
        let shown = outcome.shown[verdict] ?? []
        let total = outcome.counts.values.reduce(0, +)
        let tally = [CheckVerdict.pass, .fail, .inconclusive].compactMap { verdict in
            outcome.counts[verdict].map { "\($0) \(verdict.rawValue)" }
        }.joined(separator: ", ")
        let what = check.judge == nil ? "stimulus seen" : "judged"
        let detail = (shown.first?.detail ?? "") + (total > 1 ? " (\(what) \(total) times: \(tally))" : "")
        var result = CheckResult(
            name: check.name, area: check.area, description: check.description, verdict: verdict, detail: detail,
            refs: shown.flatMap(\.refs), counts: outcome.counts
        )
        result.explainedByFault = outcome.explained.count
        if verdict == .fail, let failedOn = outcome.failedOn {
            (result.side, result.sideReason) = (failedOn.side, failedOn.reason)
        } else if verdict == .inconclusive, let reason = outcome.explained.reason, outcome.explained.count == outcome.counts[.inconclusive] ?? 0 {
            (result.side, result.sideReason) = (.fault, reason + ", which explains what did not happen")
        }
        return result
    }

    // MARK: Matching

    /// One capture record as the checks see it.
    struct Event {
        var kind: RecordKind?
        var ref: String
        var connection: ConnectionKey?
        var direction: Direction?
        var type: MessageType?
        var action: String?
        var id: String?
        var fault: String?
        var injected: Bool
        var payload: JSONValue?
        var callPayload: JSONValue?
        /// The close the proxy writes when it is stopped: the end of the run, not something a peer did.
        var endsRun = false
        var connector: Connector?

        init(record: CaptureRecord, connection: ConnectionKey?, callPayload: JSONValue?, connector: Connector? = nil) {
            self.connector = connector
            self.kind = record.recordKind
            if record.recordKind == .close {
                self.endsRun = record.fields["by"]?.stringValue == "proxy" && record.fields["reason"]?.stringValue == CheckEvaluator.shutdownReason
            }
            self.ref = record.reference
            self.connection = connection
            self.direction = record.direction
            self.type = record.opcode == .text ? record.messageType : nil
            self.action = record.action
            self.id = record.messageId
            self.fault = record.faultRule
            self.injected = record.injected
            if let type = self.type, let message = record.message {
                switch type {
                case .call, .send: self.payload = message[3]
                case .callResult: self.payload = message[2]
                case .callError, .callResultError: self.payload = message[4]
                }
                if type.isResponse { self.callPayload = callPayload }
            }
        }
    }

    /// The reason of the close frame the proxy sends every connection when it is stopped.
    static let shutdownReason = "proxy shutting down"

    static func matches(_ pattern: EventPattern, _ event: Event, stimulus: Window?) -> Bool {
        switch pattern.event {
        case .open, .close, .reject:
            guard event.kind?.rawValue == pattern.event.rawValue else { return false }
        case .message:
            guard event.kind == .frame, let type = event.type else { return false }
            if let types = pattern.messageTypes, !types.contains(type) { return false }
            if let direction = pattern.direction, direction != event.direction { return false }
            if let actions = pattern.actions, !actions.contains(event.action ?? "") { return false }
            if let faults = pattern.faults, !faults.contains(event.fault ?? "") { return false }
            if let injected = pattern.injected, injected != event.injected { return false }
        }
        if let stimulus, pattern.connection != .any {
            guard let here = event.connection, let there = stimulus.connection else { return false }
            if pattern.connection == .same && here != there { return false }
            if pattern.connection == .later && here <= there { return false }
        }
        if pattern.connector == .same, let wanted = stimulus?.connector {
            guard let connector = event.connector, connector.names(wanted) else { return false }
        }
        return pattern.payload.allSatisfy { self.holds($0, event, stimulus: stimulus) }
    }

    static func holds(_ condition: CheckCondition, _ event: Event, stimulus: Window?) -> Bool {
        let value = self.resolve(condition.pointer, payload: event.payload, call: event.callPayload)
        switch condition.test {
        case .exists(let flag): return (value != nil) == flag
        case .equals(let expected): return value.map { Self.same($0, expected) } ?? false
        case .notEquals(let other): return value.map { !Self.same($0, other) } ?? false
        case .matches(let pattern): return value.map { pattern.matches($0.stringValue ?? JSONWriter.string($0)) } ?? false
        case .atMost(let limit): return value.flatMap(Self.number).map { $0 <= limit } ?? false
        case .atLeast(let limit): return value.flatMap(Self.number).map { $0 >= limit } ?? false
        case .sameAs(let other):
            guard let stimulus, let value, let expected = self.resolve(other, payload: stimulus.payload, call: stimulus.callPayload) else { return false }
            return Self.same(value, expected)
        }
    }

    static func resolve(_ pointer: String, payload: JSONValue?, call: JSONValue?) -> JSONValue? {
        if pointer.hasPrefix("call:") { return call.flatMap { JSONPointer.resolve(String(pointer.dropFirst(5)), in: $0) } }
        return payload.flatMap { JSONPointer.resolve(pointer, in: $0) }
    }

    /// Values are the same when equal as JSON, or as text (`"7"` and `7`, as OCPP 1.6 meter values write numbers).
    static func same(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        lhs == rhs || (lhs.stringValue ?? JSONWriter.string(lhs)) == (rhs.stringValue ?? JSONWriter.string(rhs))
    }

    static func number(_ value: JSONValue) -> Double? {
        value.doubleValue ?? value.stringValue.flatMap(Double.init)
    }

    static func seconds(_ micros: Int64) -> String { Self.format(Double(micros) / 1_000_000) }

    static func format(_ seconds: Double) -> String {
        let rounded = (seconds * 1000).rounded() / 1000
        return rounded.plainText
    }
}
