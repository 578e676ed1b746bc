import OCPPWire

/// What a rule does to the messages it hits.
public enum Fault: Sendable {
    /// Hold the message back; later messages in the same direction wait behind it unless `reorder`.
    case delay(milliseconds: Int, jitterMilliseconds: Int, reorder: Bool)
    case drop
    case duplicate
    /// Close the connection: on the charger side, the backend side, or both; with a close frame or a TCP reset.
    case disconnect(side: DisconnectSide, code: UInt16, reason: String, reset: Bool)
    case malformed(Malformation)
    /// Answer the sender instead of forwarding a CALL.
    case respond(Response)
    /// Forward the message, and send a CALL of the proxy's own towards `target`; its answer is kept from the other side.
    /// `copies` fill payload fields from the message that triggered the rule (a transaction id, say).
    case inject(action: String, payload: JSONValue, copies: [InjectCopy], target: InjectTarget)
    /// Forward the message as WebSocket fragments of at most `bytes` each.
    case slice(bytes: Int)
    /// Forward the message no faster than `bytesPerSecond` (it waits in order for its bytes to "cross the link").
    case bandwidth(bytesPerSecond: Int)
    /// The backend becomes unreachable for `seconds`: for this charger or for all of them.
    case outage(seconds: Double, mode: OutageMode, allChargers: Bool)

    public var kind: String {
        switch self {
        case .delay: return "delay"
        case .drop: return "drop"
        case .duplicate: return "duplicate"
        case .disconnect: return "disconnect"
        case .malformed: return "malformed"
        case .respond: return "respond"
        case .inject: return "inject"
        case .outage: return "outage"
        case .slice: return "slice"
        case .bandwidth: return "bandwidth"
        }
    }
}

/// A field of an injected CALL taken from the message that triggered it: `{fromTrigger: /transactionId}`.
public struct InjectCopy: Sendable, Equatable {
    /// Where the value goes in the injected payload.
    public var pointer: String
    /// Where it comes from in the triggering message's payload.
    public var source: String

    public init(pointer: String, source: String) {
        self.pointer = pointer
        self.source = source
    }

    /// The injected payload with every copied field filled in, or the first source the trigger lacks.
    public static func fill(_ payload: JSONValue, copies: [InjectCopy], from trigger: JSONValue?) -> Result<JSONValue, MissingField> {
        var filled = payload
        for copy in copies {
            guard let value = trigger.flatMap({ JSONPointer.resolve(copy.source, in: $0) }) else { return .failure(MissingField(pointer: copy.source)) }
            filled = JSONPointer.update(filled, at: copy.pointer) { _ in value }
        }
        return .success(filled)
    }

    public struct MissingField: Error, Equatable {
        public var pointer: String

        public init(pointer: String) { self.pointer = pointer }
    }
}

/// How the backend is unreachable during an outage.
public enum OutageMode: String, Sendable {
    /// Connections to the backend are reset; new upgrades are answered 503 at once.
    case refuse
    /// Nothing gets through in either direction and nothing is closed; new upgrades hang until 504.
    case blackhole
}

/// Who receives an injected CALL.
public enum InjectTarget: String, Sendable {
    case charger, csms
}

public enum DisconnectSide: String, Sendable {
    case charger, csms, both
}

/// Ways to break a message on purpose.
public enum Malformation: Sendable {
    /// Cut the text to this fraction of its length.
    case truncate(fraction: Double)
    /// Make the text invalid JSON.
    case invalidJSON
    /// Replace the value at a payload pointer by a value of another JSON type.
    case wrongType(pointer: String)
    case removeField(pointer: String)
    case setField(pointer: String, value: JSONValue)
    /// Change the case of the string at a payload pointer (`Accepted` → `accepted`).
    case wrongCaseEnum(pointer: String)
    /// Replace a CALL's action by one nobody implements.
    case unknownAction
    /// Pad the payload with a field so the message is at least this many bytes.
    case oversize(bytes: Int)
    /// Send the message in a binary frame instead of a text frame.
    case binaryFrame

    public var name: String {
        switch self {
        case .truncate: return "truncate"
        case .invalidJSON: return "invalidJSON"
        case .wrongType: return "wrongType"
        case .removeField: return "removeField"
        case .setField: return "setField"
        case .wrongCaseEnum: return "wrongCaseEnum"
        case .unknownAction: return "unknownAction"
        case .oversize: return "oversize"
        case .binaryFrame: return "binaryFrame"
        }
    }
}

public enum Response: Sendable {
    case callError(code: String, description: String)
    case callResult(payload: JSONValue)
}
