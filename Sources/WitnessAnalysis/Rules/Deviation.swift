import OCPPSchema
import OCPPWire

/// One finding, with enough to find the evidence: the rule, the message and a pointer into it.
public struct Deviation: Sendable, Hashable {
    public var rule: String
    public var severity: Severity
    public var chargePoint: String?
    public var direction: Direction?
    public var action: String?
    public var messageId: String?
    /// JSON pointer into the payload, where it applies.
    public var path: String?
    public var detail: String
    public var ts: String?
    /// `capture-file:line` of the offending record.
    public var ref: String?
    /// The offending message as recorded (compact JSON or text, at most 4 KiB).
    public var evidence: String?
    /// Other capture lines the finding rests on (`capture-file:line`): the message a resend repeats, the
    /// stop a late reading came after.
    public var related: [String] = []
    /// Whose side the finding is on, and why, in one sentence (docs/reports.md, "Whose side").
    public var side: Side
    public var sideReason: String

    /// The side responsible for a finding: a vendor's, or the policy's own fault.
    public enum Side: String, Sendable, Hashable, CaseIterable {
        case charger, backend, fault
    }

    /// The side a rule holds responsible by default: the charger for what it does (transactions, connectors,
    /// metering, offline authorization, commands, security, its configuration), and for a message's form the
    /// side that sent it.
    public static func side(of rule: String, direction: Direction?) -> (Side, String) {
        switch rule.prefix(while: { $0 != "." }) {
        case "schema", "rpc", "websocket":
            return direction == .toCharger
                ? (.backend, "the backend sent the message")
                : (.charger, "the charger sent the message")
        case "security":
            return (.charger, "the charger chose how it connects and authenticates")
        case "site":
            return (.charger, "the charger is configured otherwise than the site declares")
        case "command":
            return (.charger, "the charger accepted the command and did not carry it out")
        case "feature":
            return (.charger, "the charger's claim of its features and its answers disagree")
        case "billing" where rule == "billing.priceMismatch":
            return (.backend, "the backend priced the session")
        default:
            return (.charger, "the charger's own messages show it")
        }
    }

    public init(
        rule: String, severity: Severity? = nil, chargePoint: String? = nil, direction: Direction? = nil, action: String? = nil,
        messageId: String? = nil, path: String? = nil, detail: String, ts: String? = nil, ref: String? = nil, related: [String] = []
    ) {
        self.related = related
        (self.side, self.sideReason) = Self.side(of: rule, direction: direction)
        self.rule = rule
        self.severity = severity ?? RuleCatalog.byId[rule]?.severity ?? .error
        self.chargePoint = chargePoint
        self.direction = direction
        self.action = action
        self.messageId = messageId
        self.path = path
        self.detail = detail
        self.ts = ts
        self.ref = ref
    }

    public var json: JSONValue {
        var object: JSONObject = [
            "rule": .string(self.rule), "severity": .string(self.severity.rawValue),
            "chargePoint": self.chargePoint.map(JSONValue.string) ?? .null,
            "dir": self.direction.map { .string($0.rawValue) } ?? .null,
            "action": self.action.map(JSONValue.string) ?? .null,
            "messageId": self.messageId.map(JSONValue.string) ?? .null,
            "path": self.path.map(JSONValue.string) ?? .null,
            "detail": .string(self.detail),
            "ts": self.ts.map(JSONValue.string) ?? .null,
            "ref": self.ref.map(JSONValue.string) ?? .null,
        ]
        if let evidence { object["message"] = .string(evidence) }
        if let clause = RuleCatalog.byId[self.rule]?.clause { object["clause"] = .string(clause) }
        if !self.related.isEmpty { object["related"] = .array(self.related.map(JSONValue.string)) }
        object["side"] = .string(self.side.rawValue)
        object["sideReason"] = .string(self.sideReason)
        return .object(object)
    }
}

extension Deviation {
    /// An unanswered CALL is the side's that did not answer, not the sender's.
    func answeredBy(_ side: Side) -> Deviation {
        var deviation = self
        deviation.side = side
        deviation.sideReason = side == .backend ? "the backend did not answer the charger's CALL in time" : "the charger did not answer the backend's CALL in time"
        return deviation
    }

    /// On the fault's side when the policy's fault explains it (docs/reports.md, "Whose side").
    func explained(by touch: FaultTouches.Touch?) -> Deviation {
        guard let touch else { return self }
        var deviation = self
        deviation.side = .fault
        deviation.sideReason = touch.sentence + ", which explains this"
        return deviation
    }
}
