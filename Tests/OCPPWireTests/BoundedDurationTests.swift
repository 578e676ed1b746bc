import OCPPWire
import Testing

@Suite("Durations read from people and files")
struct BoundedDurationTests {
    @Test("units and plain seconds", arguments: [("90", 90.0), ("2.5", 2.5), ("500ms", 0.5), ("90s", 90), ("5m", 300), ("24h", 86_400), ("7d", 604_800), (" 1h ", 3600)])
    func parses(text: String, seconds: Double) throws {
        #expect(try BoundedDuration.parse(text, field: "f")?.seconds == seconds)
    }

    @Test("text that is no duration is nil, not an error", arguments: ["", "soon", "5 minutes", "0x10", "nan", "inf", "h", "1.2.3s"])
    func notADuration(text: String) throws {
        #expect(try BoundedDuration.parse(text, field: "f") == nil)
    }

    @Test("out of range is an error naming the field and the range")
    func outOfRange() {
        #expect(throws: DurationError(field: "--x", value: "inf", problem: .notFinite, allowsZero: true)) {
            try BoundedDuration(seconds: .infinity, field: "--x")
        }
        #expect(throws: DurationError(field: "--x", value: "inf", problem: .notFinite, allowsZero: true)) {
            _ = try BoundedDuration.parse("1e400", field: "--x")
        }
        #expect(throws: DurationError(field: "w", value: "-1", problem: .negative, allowsZero: true)) { try BoundedDuration(seconds: -1, field: "w") }
        #expect(throws: DurationError(field: "w", value: "0", problem: .zero, allowsZero: false)) {
            try BoundedDuration(seconds: 0, field: "w", allowsZero: false)
        }
        #expect(throws: DurationError.self) { try BoundedDuration(seconds: 30 * 86_400 + 1, field: "w") }
        let error = DurationError(field: "within of check 'x'", value: "1e+300", problem: .tooLong, allowsZero: false)
        #expect(error.description == "within of check 'x': 1e+300 is longer than 30 days; a duration here is above 0 and at most 30 days")
    }

    @Test("the limit converts to nanoseconds without overflow")
    func limit() throws {
        let limit = try BoundedDuration(seconds: 30 * 86_400, field: "f")
        #expect(limit == .maximum)
        #expect(limit.nanoseconds == 2_592_000_000_000_000)
        #expect(limit.microseconds == 2_592_000_000_000)
        #expect(try BoundedDuration(milliseconds: 1500, field: "f").description == "1.5 s")
        #expect(try BoundedDuration(milliseconds: 250, field: "f").description == "250 ms")
    }
}
