import Foundation
import OCPPWire

/// Which messages a rule hits. Every condition given must hold; none given matches every message.
public struct FaultMatch: Sendable {
    public var direction: Direction?
    public var messageTypes: Set<MessageType>?
    /// Actions; for answers, the action of the CALL they answer.
    public var actions: Set<String>?
    public var chargePoint: [Glob]?
    public var vendor: Glob?
    public var model: Glob?
    public var firmware: Glob?
    public var payload: [PayloadCondition] = []
    public var probability: Double?
    /// Only the n-th matching message (1-based), per charge point.
    public var nth: Int?
    /// Only the first n matching messages, per charge point.
    public var first: Int?
    /// Every n-th matching message, per charge point.
    public var every: Int?
    /// Time window in seconds, from the proxy's start or from the connection's opening.
    public var after: Double?
    public var before: Double?
    public var fromConnection = false
    /// Only while the charge point has a transaction that has been running for at least this many seconds
    /// (since its StartTransaction or TransactionEvent Started passed the proxy).
    public var transactionFor: Double?
}

/// A condition on a payload field, by JSON pointer.
public struct PayloadCondition: Sendable {
    public var pointer: String
    public var equals: JSONValue?
    public var matches: Pattern?
}

/// A compiled regular expression (the pattern is kept for messages).
public struct Pattern: @unchecked Sendable {
    public let source: String
    let regex: NSRegularExpression

    public init(_ source: String) throws {
        self.source = source
        self.regex = try NSRegularExpression(pattern: source)
    }

    public func matches(_ text: String) -> Bool {
        self.regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

/// `*` and `?` wildcards, for charge point ids and charger identities.
public struct Glob: Sendable, Hashable {
    public let pattern: String

    public init(_ pattern: String) { self.pattern = pattern }

    public func matches(_ text: String) -> Bool {
        Self.match(Array(self.pattern.unicodeScalars), Array(text.unicodeScalars))
    }

    private static func match(_ pattern: [Unicode.Scalar], _ text: [Unicode.Scalar]) -> Bool {
        var p = 0
        var t = 0
        var star = -1
        var mark = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == "?" || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == "*" {
                star = p
                mark = t
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
