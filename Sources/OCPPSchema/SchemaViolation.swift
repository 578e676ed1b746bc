import OCPPWire

/// How serious a finding is.
public enum Severity: String, Sendable, Hashable, Codable, Comparable, CaseIterable {
    case info, warning, error

    private var rank: Int {
        switch self {
        case .info: return 0
        case .warning: return 1
        case .error: return 2
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// One way a payload breaks its schema.
public struct SchemaViolation: Sendable, Hashable, CustomStringConvertible {
    /// The schema keyword that failed (`type`, `required`, `enum`, `maxLength`...).
    public var keyword: String
    /// JSON pointer into the payload (`/chargingStation/model`); empty for the payload itself.
    public var pointer: String
    public var expected: String
    public var found: String
    public var severity: Severity

    public init(keyword: String, pointer: String, expected: String, found: String, severity: Severity = .error) {
        self.keyword = keyword
        self.pointer = pointer
        self.expected = expected
        self.found = found
        self.severity = severity
    }

    public var description: String {
        "\(self.pointer.isEmpty ? "payload" : self.pointer): \(self.keyword): expected \(self.expected), found \(self.found)"
    }
}

/// How strictly payloads are judged.
public enum ValidationProfile: String, Sendable, Hashable, CaseIterable, Codable {
    /// The schemas as written; date-times must be RFC 3339 with a zone.
    case strict
    /// Well-known field quirks (date-time without a zone, enum in the wrong case, a string longer than
    /// `maxLength`) are reported as warnings instead of errors.
    case lenient
}
