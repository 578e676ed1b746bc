/// An OCPP-J protocol version, as negotiated through the WebSocket subprotocol.
public enum OCPPVersion: String, Sendable, Hashable, CaseIterable, Codable {
    case v16 = "1.6"
    case v201 = "2.0.1"
    case v21 = "2.1"

    /// The `Sec-WebSocket-Protocol` token for this version (`ocpp1.6`, `ocpp2.0.1`, `ocpp2.1`).
    public var subprotocol: String { "ocpp" + self.rawValue }

    /// Recognises a subprotocol token; matching is case-insensitive because some chargers send `OCPP1.6`.
    public init?(subprotocol: String) {
        let lowered = subprotocol.lowercased()
        guard lowered.hasPrefix("ocpp") else { return nil }
        self.init(rawValue: String(lowered.dropFirst(4)))
    }

    /// Message types this version allows; SEND (6) and CALLRESULTERROR (5) arrived with 2.1.
    public func allows(_ type: MessageType) -> Bool {
        switch type {
        case .call, .callResult, .callError: return true
        case .callResultError, .send: return self == .v21
        }
    }
}

/// The OCPP-J message type, the first element of every message array.
public enum MessageType: Int, Sendable, Hashable, CaseIterable, Codable {
    case call = 2
    case callResult = 3
    case callError = 4
    case callResultError = 5
    case send = 6

    /// Number of elements the message array must have.
    public var arity: Int {
        switch self {
        case .call, .send: return 4
        case .callResult: return 3
        case .callError, .callResultError: return 5
        }
    }

    /// The name used in the specification and in capture files.
    public var name: String {
        switch self {
        case .call: return "CALL"
        case .callResult: return "CALLRESULT"
        case .callError: return "CALLERROR"
        case .callResultError: return "CALLRESULTERROR"
        case .send: return "SEND"
        }
    }

    /// Whether this message answers an earlier CALL.
    public var isResponse: Bool {
        switch self {
        case .callResult, .callError, .callResultError: return true
        case .call, .send: return false
        }
    }
}
