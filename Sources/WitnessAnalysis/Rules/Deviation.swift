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

    public init(
        rule: String, severity: Severity? = nil, chargePoint: String? = nil, direction: Direction? = nil, action: String? = nil,
        messageId: String? = nil, path: String? = nil, detail: String, ts: String? = nil, ref: String? = nil, related: [String] = []
    ) {
        self.related = related
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
        return .object(object)
    }
}
