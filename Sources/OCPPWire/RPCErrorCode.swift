/// The CALLERROR codes each OCPP version defines.
///
/// OCPP 1.6 spells two codes differently from later versions (`FormationViolation`,
/// `OccurenceConstraintViolation`); an error code from the wrong table is a real interoperability
/// problem, so the tables are kept per version rather than merged.
public enum RPCErrorCode {
    public static let v16: Set<String> = [
        "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
        "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
        "TypeConstraintViolation", "GenericError",
    ]

    public static let v201: Set<String> = [
        "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported", "NotImplemented",
        "NotSupported", "OccurrenceConstraintViolation", "PropertyConstraintViolation", "ProtocolError",
        "RpcFrameworkError", "SecurityError", "TypeConstraintViolation",
    ]

    public static let v21: Set<String> = v201

    /// The codes valid for `version`.
    public static func codes(for version: OCPPVersion) -> Set<String> {
        switch version {
        case .v16: return v16
        case .v201: return v201
        case .v21: return v21
        }
    }

    /// The code a peer should send for a message it cannot parse, in `version`'s spelling.
    public static func formatViolation(for version: OCPPVersion) -> String {
        version == .v16 ? "FormationViolation" : "FormatViolation"
    }
}
