/// A span of time read from a person or a file: a command-line option, a policy, an admin request.
///
/// Every such duration is parsed once into this type, which holds only what the proxy can schedule and
/// compute with: finite, not negative, at most `maximum` (30 days; the sample policies' longest window is a
/// day). Conversions to nanoseconds, microseconds or NIO time amounts then cannot overflow, so no input can
/// trap the process, and a value out of range is refused with the field's name and the range.
public struct BoundedDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The longest duration accepted anywhere: 30 days.
    public static let maximum = BoundedDuration(uncheckedNanoseconds: 30 * 24 * 3600 * 1_000_000_000)
    public static let zero = BoundedDuration(uncheckedNanoseconds: 0)

    /// Nanoseconds, from 0 to `maximum.nanoseconds`.
    public let nanoseconds: Int64

    private init(uncheckedNanoseconds: Int64) { self.nanoseconds = uncheckedNanoseconds }

    /// `seconds` as a duration, or an error naming `field` when it is not finite, negative (or zero, unless
    /// `allowsZero`) or over `maximum`.
    public init(seconds: Double, field: String, allowsZero: Bool = true) throws(DurationError) {
        guard seconds.isFinite else { throw DurationError(field: field, value: "\(seconds)", problem: .notFinite, allowsZero: allowsZero) }
        guard seconds >= 0 else { throw DurationError(field: field, value: seconds.plainText, problem: .negative, allowsZero: allowsZero) }
        guard seconds <= Self.maximum.seconds else {
            throw DurationError(field: field, value: seconds.plainText, problem: .tooLong, allowsZero: allowsZero)
        }
        self.nanoseconds = Int64((seconds * 1e9).rounded())
        // Checked after rounding: 1e-12 s is 0 ns, which is zero.
        guard allowsZero || self.nanoseconds > 0 else { throw DurationError(field: field, value: seconds.plainText, problem: .zero, allowsZero: allowsZero) }
    }

    /// Milliseconds as a duration, with the same checks as `init(seconds:field:allowsZero:)`.
    public init(milliseconds: Double, field: String, allowsZero: Bool = true) throws(DurationError) {
        do {
            try self.init(seconds: milliseconds / 1000, field: field, allowsZero: allowsZero)
        } catch {
            // Said in the unit it was given in.
            throw DurationError(field: field, value: milliseconds.plainText, problem: error.problem, allowsZero: allowsZero)
        }
    }

    /// Reads `text` as people write durations: a number of seconds (`90`, `2.5`) or a number with a unit
    /// (`500ms`, `90s`, `5m`, `24h`, `7d`). `nil` when the text is no duration at all; an error when it is
    /// one out of range.
    public static func parse(_ text: String, field: String, allowsZero: Bool = true) throws(DurationError) -> BoundedDuration? {
        let trimmed = text.trimmingASCIISpaces
        for (suffix, factor) in Self.units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            guard let value = number.plainDecimalNumber else { continue }
            return try BoundedDuration(seconds: value * factor, field: field, allowsZero: allowsZero)
        }
        guard let value = Substring(trimmed).plainDecimalNumber else { return nil }
        return try BoundedDuration(seconds: value, field: field, allowsZero: allowsZero)
    }

    /// Units in the order they are tried (`ms` before `s`).
    private static let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]

    public var seconds: Double { Double(self.nanoseconds) / 1e9 }
    public var microseconds: Int64 { self.nanoseconds / 1000 }
    public var milliseconds: Int64 { self.nanoseconds / 1_000_000 }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// `90 s`, `2.5 s`, `500 ms`.
    public var description: String {
        if self.nanoseconds < 1_000_000_000 && self.nanoseconds % 1_000_000 == 0 && self.nanoseconds > 0 {
            return "\(self.milliseconds) ms"
        }
        return self.seconds.plainText + " s"
    }
}

/// A duration a person gave that the proxy cannot use, with the field it came in.
public struct DurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Problem: Sendable, Hashable {
        case notFinite, negative, zero, tooLong
    }

    public var field: String
    public var value: String
    public var problem: Problem
    public var allowsZero: Bool

    public init(field: String, value: String, problem: Problem, allowsZero: Bool) {
        self.field = field
        self.value = value
        self.problem = problem
        self.allowsZero = allowsZero
    }

    public var description: String {
        let range = self.allowsZero ? "from 0 to 30 days" : "above 0 and at most 30 days"
        let what: String
        switch self.problem {
        case .notFinite: what = "is not a finite number"
        case .negative: what = "is negative"
        case .zero: what = "is zero"
        case .tooLong: what = "is longer than 30 days"
        }
        return "\(self.field): \(self.value) \(what); a duration here is \(range)"
    }
}

extension String {
    fileprivate var trimmingASCIISpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " || scalars.first == "\t" { scalars.removeFirst() }
        while scalars.last == " " || scalars.last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
