import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import OCPPWire
import WitnessPolicy
import WitnessModel

/// Decides, per message, whether a policy rule applies. Reproducible: one generator per charge point,
/// seeded from the policy's seed and the charge point id, so the same seed and the same traffic hit
/// the same messages, however connections interleave.
public final class ChaosEngine: Sendable {
    public let policy: FaultPolicy
    private let state = NIOLockedValueBox(State())

    private struct State {
        var generators: [String: SplitMix64] = [:]
        var matches: [String: Int] = [:]
        var hits: [String: Int] = [:]
        /// The transactions running on each charge point's connectors, since when (microseconds since the proxy started).
        var transactions: [String: ConnectorTransactions] = [:]
        /// `ocpp_witness_faults_total{rule}`, made at a rule's first hit; none once the engine is retired.
        var counters: [String: Counter] = [:]
        var retired = false
    }

    /// Name of the metric that counts faults injected, per rule.
    public static let faultsMetric = "ocpp_witness_faults_total"
    /// HELP text of the metrics the engine makes, by name.
    public static let metricHelp = [faultsMetric: "Faults injected, per policy rule of the policy in force."]

    public init(policy: FaultPolicy) {
        self.policy = policy
    }

    /// Takes this engine's metrics off the exposition: a policy replacing it counts afresh, from the next
    /// message on. Call before the new engine is put in force, so that its counters are its own.
    func retireMetrics() {
        let counters = self.state.withLockedValue { state in
            state.retired = true
            defer { state.counters.removeAll() }
            return Array(state.counters.values)
        }
        for counter in counters { counter.destroy() }
    }

    private static func counter(for rule: String, in state: inout State) -> Counter? {
        guard !state.retired else { return nil }
        if let counter = state.counters[rule] { return counter }
        let counter = Counter(label: Self.faultsMetric, dimensions: [("rule", rule)])
        state.counters[rule] = counter
        return counter
    }

    /// The first rule (in file order) that applies to the message, if any. `payload` is only called when a
    /// rule has payload conditions.
    public func decide(_ facts: MessageFacts, payload: () -> JSONValue?) -> FaultDecision? {
        var parsedPayload: JSONValue??
        var transactionAge: Double?
        if self.policy.tracksTransactions {
            transactionAge = self.followTransactions(facts) {
                if parsedPayload == nil { parsedPayload = .some(payload()) }
                return parsedPayload ?? nil
            }
        }
        for rule in self.policy.rules {
            guard self.staticMatch(rule.match, facts) else { continue }
            if let needed = rule.match.transactionFor {
                guard let age = transactionAge, age >= needed else { continue }
            }
            if !rule.match.payload.isEmpty {
                if parsedPayload == nil { parsedPayload = .some(payload()) }
                guard let value = parsedPayload ?? nil, Self.payloadMatches(rule.match.payload, value) else { continue }
            }
            // Counting and randomness are per charge point, so they do not depend on other chargers' traffic.
            let decision: FaultDecision? = self.state.withLockedValue { state in
                let key = rule.name + "\u{0}" + facts.chargePoint
                let count = state.matches[key, default: 0] + 1
                state.matches[key] = count
                if let nth = rule.match.nth, count != nth { return nil }
                if let first = rule.match.first, count > first { return nil }
                if let every = rule.match.every, count % every != 0 { return nil }
                var generator = state.generators[facts.chargePoint] ?? SplitMix64(seed: self.policy.seed ^ StableHash.fnv1a(facts.chargePoint))
                defer { state.generators[facts.chargePoint] = generator }
                if let probability = rule.match.probability, generator.nextDouble() >= probability { return nil }
                var delay = 0
                if case .delay(let milliseconds, let jitter, _) = rule.fault {
                    delay = milliseconds + (jitter > 0 ? Int(generator.next() % UInt64(jitter + 1)) : 0)
                }
                let hit = state.hits[key, default: 0] + 1
                state.hits[key] = hit
                Self.counter(for: rule.name, in: &state)?.increment()
                return FaultDecision(rule: rule.name, fault: rule.fault, delayMilliseconds: delay, hit: hit)
            }
            if let decision { return decision }
        }
        return nil
    }

    /// Follows the charge point's transactions per connector (the charger model's `ConnectorTransactions`) and
    /// returns how long, in seconds, the transaction the message belongs to has been running: the one on the
    /// connector or with the transaction id the message names, else (a Heartbeat) the charge point's
    /// longest-running one. A stop or an Ended event itself belongs to no running transaction.
    private func followTransactions(_ facts: MessageFacts, payload: () -> JSONValue?) -> Double? {
        let now = Int64(facts.secondsSinceStart * 1_000_000)
        // A start is matched with its answer by message id, which is unique on its connection only (made only
        // for the messages of a start).
        var startId: String? { facts.messageId.map { "\(facts.connection) \($0)" } }
        var named: (connector: Connector?, id: String?) = (nil, nil)
        var change: ((inout ConnectorTransactions) -> Void)?
        var starts = false
        switch (facts.direction, facts.messageType, facts.action) {
        case (.toCSMS, .call?, "StartTransaction"?):
            let connector = payload().flatMap { Connector.named(action: "StartTransaction", payload: $0, version: .v16) }
            named = (connector, nil)
            starts = true
            let key = startId
            change = { $0.start(.init(id: nil, connector: connector, since: now, startMessageId: key)) }
        case (.toCharger, .callResult?, "StartTransaction"?):
            guard let id = payload()?["transactionId"].map({ JSONWriter.string($0) }), let messageId = startId else { break }
            change = { $0.assign(id, toStart: messageId) }
        case (.toCharger, .callError?, "StartTransaction"?):
            // A start the backend refused to process runs nothing.
            guard let messageId = startId else { break }
            change = { $0.abandon(start: messageId) }
        case (.toCSMS, .call?, "StopTransaction"?):
            guard let id = payload()?["transactionId"].map({ JSONWriter.string($0) }) else { break }
            named = (nil, id)
            change = { $0.end(id) }
        case (.toCSMS, .call?, "TransactionEvent"?):
            guard let payload = payload(), let id = payload["transactionInfo"]?["transactionId"]?.stringValue else { break }
            let connector = Connector.named(action: "TransactionEvent", payload: payload, version: .v201)
            named = (connector, id)
            switch payload["eventType"]?.stringValue {
            case "Ended"?: change = { $0.end(id) }
            case "Started"?, "Updated"?:
                starts = true
                change = { transactions in
                    // An event of a transaction that ended, delivered late (2.0.1 E 1.3.2), starts nothing.
                    guard transactions.running(id: id) == nil, !transactions.hasEnded(id) else { return }
                    transactions.start(.init(id: id, connector: connector, since: now))
                }
            default: break
            }
        case (.toCSMS, .call?, "MeterValues"?), (.toCSMS, .call?, "StatusNotification"?):
            guard let payload = payload(), let action = facts.action else { break }
            named = (Connector.named(action: action, payload: payload, version: payload["evseId"] == nil ? .v16 : .v201),
                     payload["transactionId"].map { JSONWriter.string($0) })
        case (.toCharger, .call?, "RemoteStopTransaction"?), (.toCharger, .call?, "RequestStopTransaction"?):
            named = (nil, payload()?["transactionId"].map { JSONWriter.string($0) })
        default:
            break
        }
        return self.state.withLockedValue { state in
            // Changed in place: the model is not copied under the lock. Only a start makes a charge point's
            // model; an end, an answer or a refusal changes one that exists.
            if let change {
                if starts {
                    change(&state.transactions[facts.chargePoint, default: ConnectorTransactions()])
                } else if state.transactions[facts.chargePoint] != nil {
                    change(&state.transactions[facts.chargePoint]!)
                }
            }
            guard let transactions = state.transactions[facts.chargePoint] else { return nil }
            let running = named.id.flatMap(transactions.running(id:)) ?? named.connector.flatMap(transactions.running(on:))
                ?? (named.id == nil && named.connector == nil && facts.action != "StartTransaction" ? transactions.longestRunning : nil)
            return running.map { Double(now - $0.since) / 1_000_000 }
        }
    }

    private func staticMatch(_ match: FaultMatch, _ facts: MessageFacts) -> Bool {
        if let direction = match.direction, direction != facts.direction { return false }
        if let types = match.messageTypes {
            guard let type = facts.messageType, types.contains(type) else { return false }
        }
        if let actions = match.actions {
            guard let action = facts.action, actions.contains(action) else { return false }
        }
        if let globs = match.chargePoint, !globs.contains(where: { $0.matches(facts.chargePoint) }) { return false }
        if match.vendor != nil || match.model != nil || match.firmware != nil {
            guard let identity = facts.identity else { return false }
            if let vendor = match.vendor, !vendor.matches(identity.vendor) { return false }
            if let model = match.model, !model.matches(identity.model) { return false }
            if let firmware = match.firmware, !firmware.matches(identity.firmware) { return false }
        }
        let elapsed = match.fromConnection ? facts.secondsSinceConnection : facts.secondsSinceStart
        if let after = match.after, elapsed < after { return false }
        if let before = match.before, elapsed >= before { return false }
        return true
    }

    static func payloadMatches(_ conditions: [PayloadCondition], _ payload: JSONValue) -> Bool {
        conditions.allSatisfy { condition in
            guard let value = JSONPointer.resolve(condition.pointer, in: payload) else { return false }
            if let equals = condition.equals, equals != value && JSONWriter.string(equals) != JSONWriter.string(value) { return false }
            if let pattern = condition.matches {
                let text = value.stringValue ?? JSONWriter.string(value)
                if !pattern.matches(text) { return false }
            }
            return true
        }
    }
}

/// A small, fast, seedable generator (SplitMix64); the same seed gives the same sequence everywhere.
package struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    package init(seed: UInt64) { self.state = seed }

    package mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A double in [0, 1).
    mutating func nextDouble() -> Double {
        Double(self.next() >> 11) / Double(1 << 53)
    }
}
