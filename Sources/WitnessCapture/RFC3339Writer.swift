import OCPPWire

/// Writes timestamps as `Timestamp.appendRFC3339` does, keeping the text up to the second from the
/// previous one: the records of a batch mostly fall in the same second, so most need only their six
/// digits of microseconds. Owned by one thread (the writer's).
struct RFC3339Writer {
    private var second = Int64.min
    /// The text of `second` up to and including the decimal point (`2026-11-24T19:00:00.`).
    private var prefix: [UInt8] = []

    mutating func append(_ ts: Timestamp, to out: inout [UInt8]) {
        let second = ts.microseconds >= 0 ? ts.microseconds / 1_000_000 : (ts.microseconds - 999_999) / 1_000_000
        if second != self.second {
            self.prefix.removeAll(keepingCapacity: true)
            Timestamp(microseconds: second * 1_000_000).appendRFC3339(to: &self.prefix)
            // Drop "000000Z": the microseconds and the zone follow for each timestamp.
            self.prefix.removeLast(7)
            self.second = second
        }
        out.append(contentsOf: self.prefix)
        var micros = ts.microseconds - second * 1_000_000
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 7) { digits in
            for index in stride(from: 5, through: 0, by: -1) {
                digits[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: micros % 10)
                micros /= 10
            }
            digits[6] = UInt8(ascii: "Z")
            out.append(contentsOf: UnsafeBufferPointer(digits))
        }
    }
}
