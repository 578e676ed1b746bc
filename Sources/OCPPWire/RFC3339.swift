/// RFC 3339 date-times, as OCPP uses them: `2026-11-24T19:00:00Z`, `...00.123+01:00`.
public enum RFC3339 {
    /// A parsed date-time: microseconds since the Unix epoch, and whether the text carried a zone.
    public struct Parsed: Sendable, Hashable {
        public var microseconds: Int64
        /// False for `2026-11-24T19:00:00` (read as UTC); RFC 3339 requires a zone.
        public var hasZone: Bool
    }

    /// Parses `text`; without a zone it is read as UTC and `hasZone` is false.
    public static func parse(_ text: String) -> Parsed? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for index in range {
                guard (48...57).contains(bytes[index]) else { return nil }
                value = value * 10 + Int64(bytes[index] - 48)
            }
            return value
        }
        guard bytes.count >= 19, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116,
            bytes[13] == 58, bytes[16] == 58,
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...daysIn(month, year)).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var micros: Int64 = 0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var digits = 0
            while index < bytes.count, (48...57).contains(bytes[index]) {
                if digits < 6 { micros = micros * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 6) { micros *= 10 }
        }
        var offsetSeconds: Int64 = 0
        var hasZone = true
        if index == bytes.count {
            hasZone = false
        } else {
            switch bytes[index] {
            case 90, 122:
                guard index + 1 == bytes.count else { return nil }
            case 43, 45:
                guard index + 6 == bytes.count, bytes[index + 3] == 58,
                    let offsetHours = number(index + 1..<index + 3), let offsetMinutes = number(index + 4..<index + 6),
                    offsetHours < 24, offsetMinutes < 60
                else { return nil }
                offsetSeconds = (offsetHours * 3600 + offsetMinutes * 60) * (bytes[index] == 43 ? 1 : -1)
            default:
                return nil
            }
        }
        let days = Self.days(fromCivil: year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Parsed(microseconds: seconds * 1_000_000 + micros, hasZone: hasZone)
    }

    static func daysIn(_ month: Int64, _ year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm, exact for the proleptic Gregorian calendar).
    public static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
