import OCPPWire

/// A capture event a check waits for: a message (by direction, type, action, the fault that hit it and
/// payload fields) or a connection opening, closing or being refused.
public struct EventPattern: Sendable {
    public enum Event: String, Sendable {
        case message, open, close, reject
    }

    /// Which connection of the charge point the event may come from, relative to the stimulus's.
    public enum ConnectionScope: String, Sendable {
        case any, same, later
    }

    public var event: Event = .message
    public var direction: Direction?
    public var messageTypes: Set<MessageType>?
    /// Actions; for answers, the action of the CALL they answer.
    public var actions: Set<String>?
    /// The names of the policy rules one of whose faults hit the message (`admin` for admin requests).
    public var faults: Set<String>?
    /// Only messages the proxy itself sent (an injected CALL, an answer on the other side's behalf), or none of them.
    public var injected: Bool?
    public var payload: [CheckCondition] = []
    public var connection: ConnectionScope = .any
    /// Which connector the event must be about, relative to the stimulus's (docs/policies.md, "Connectors").
    public var connector: ConnectorScope = .any

    /// `same`: an event about the stimulus's connector (1.6 `connectorId`; 2.0.1 EVSE and connector).
    public enum ConnectorScope: String, Sendable {
        case any, same
    }

    public init() {}

    /// A pattern no event matches (the stimulus of a check the charger model judges).
    public static let never: EventPattern = {
        var pattern = EventPattern()
        pattern.actions = []
        return pattern
    }()
}

/// A condition on a payload field, by JSON pointer. For an answer, `call:` in front of the pointer looks
/// into the CALL it answers.
public struct CheckCondition: Sendable {
    public enum Test: Sendable {
        case equals(JSONValue)
        case notEquals(JSONValue)
        case matches(Pattern)
        /// A number (or a string holding one) at most this.
        case atMost(Double)
        case atLeast(Double)
        case exists(Bool)
        /// Equal to the stimulus's field at this pointer (`call:` prefix: the stimulus's CALL).
        case sameAs(String)
    }

    public var pointer: String
    public var test: Test

    public init(pointer: String, test: Test) {
        self.pointer = pointer
        self.test = test
    }

    /// Readable form for verdict sentences.
    public var description: String {
        switch self.test {
        case .equals(let value): return "\(self.pointer) = \(JSONWriter.string(value))"
        case .notEquals(let value): return "\(self.pointer) ≠ \(JSONWriter.string(value))"
        case .matches(let pattern): return "\(self.pointer) ~ /\(pattern.source)/"
        case .atMost(let limit): return "\(self.pointer) ≤ \(limit)"
        case .atLeast(let limit): return "\(self.pointer) ≥ \(limit)"
        case .exists(let flag): return flag ? "\(self.pointer) present" : "\(self.pointer) absent"
        case .sameAs(let other): return "\(self.pointer) same as the stimulus's \(other)"
        }
    }
}

extension EventPattern {
    /// Readable form for verdict sentences: "a CALLRESULT of Reset to the CSMS with /status = \"Accepted\"".
    public var description: String {
        var words: [String] = []
        switch self.event {
        case .open: words.append("a connection opening")
        case .close: words.append("a connection closing")
        case .reject: words.append("a refused upgrade")
        case .message:
            let types = self.messageTypes.map { $0.map(\.name).sorted().joined(separator: "/") } ?? "message"
            words.append(self.injected == true ? "an injected \(types)" : "a \(types)")
            if let actions = self.actions { words.append("of " + actions.sorted().joined(separator: "/")) }
            if let direction = self.direction { words.append(direction == .toCSMS ? "to the CSMS" : "to the charger") }
            if let faults = self.faults { words.append("hit by fault " + faults.sorted().map { "'\($0)'" }.joined(separator: " or ")) }
        }
        switch self.connection {
        case .any: break
        case .same: words.append("on the same connection")
        case .later: words.append("on a later connection")
        }
        if self.connector == .same { words.append("for the same connector") }
        if !self.payload.isEmpty { words.append("with " + self.payload.map(\.description).joined(separator: " and ")) }
        return words.joined(separator: " ")
    }
}
