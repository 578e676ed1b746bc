#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A wall-clock instant with microsecond precision, written as RFC 3339 UTC (`2026-11-24T19:00:00.123456Z`).
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }

    /// The current wall-clock time.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(microseconds: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.microseconds < rhs.microseconds }

    /// Nanoseconds since 1970 (zero for instants before it): the clock call correlation reads a capture's
    /// or a packet trace's times on.
    public var nanosecondsSince1970: UInt64 { UInt64(clamping: self.microseconds) &* 1000 }

    public var description: String { self.rfc3339 }

    /// RFC 3339 in UTC with six fractional digits.
    public var rfc3339: String {
        String(unsafeUninitializedCapacity: Self.maximumRFC3339Bytes) { self.writeRFC3339(into: $0) }
    }

    /// Appends `rfc3339`'s UTF-8 to `out` without building a string; the capture writer does this for
    /// every record.
    public func appendRFC3339(to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.maximumRFC3339Bytes) { buffer in
            let count = self.writeRFC3339(into: buffer)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// A sign, a year of up to six digits (the range of `microseconds`) and the 23 bytes after it.
    private static let maximumRFC3339Bytes = 32

    /// Writes the digits into `out` (at least `maximumRFC3339Bytes` long); returns how many bytes.
    private func writeRFC3339(into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let seconds = self.microseconds >= 0 ? self.microseconds / 1_000_000 : (self.microseconds - 999_999) / 1_000_000
        let micros = self.microseconds - seconds * 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = Self.civil(fromDays: days)
        var at = 0
        func put(_ byte: UInt8) {
            out[at] = byte
            at += 1
        }
        /// Decimal digits of a non-negative `value`, zero-padded to at least `width`.
        func put(_ value: Int64, width: Int) {
            var digits = 1
            var limit: Int64 = 10
            while digits < 19 && value >= limit {
                digits += 1
                limit &*= 10
            }
            let count = max(digits, width)
            var rest = value
            for index in stride(from: at + count - 1, through: at, by: -1) {
                out[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            at += count
        }
        if year < 0 { put(UInt8(ascii: "-")) }
        put(year < 0 ? -year : year, width: 4)
        put(UInt8(ascii: "-"))
        put(month, width: 2)
        put(UInt8(ascii: "-"))
        put(day, width: 2)
        put(UInt8(ascii: "T"))
        put(secondOfDay / 3600, width: 2)
        put(UInt8(ascii: ":"))
        put(secondOfDay % 3600 / 60, width: 2)
        put(UInt8(ascii: ":"))
        put(secondOfDay % 60, width: 2)
        put(UInt8(ascii: "."))
        put(micros, width: 6)
        put(UInt8(ascii: "Z"))
        return at
    }

    /// A compact form for file names (`20261124T190000Z`).
    public var fileNameStamp: String {
        let full = self.rfc3339
        return String(full.prefix(19).filter { $0 != "-" && $0 != ":" }) + "Z"
    }

    /// Parses RFC 3339 (`Z` or a numeric offset, any number of fractional digits); a zone is required.
    public init?(rfc3339 text: String) {
        guard let parsed = RFC3339.parse(text), parsed.hasZone else { return nil }
        self.microseconds = parsed.microseconds
    }

    // Howard Hinnant's civil-from-days algorithms: exact for the proleptic Gregorian calendar.
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
