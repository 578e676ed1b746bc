/// Why a text is not JSON, and where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Byte offset into the input where the problem was found.
    public var offset: Int
    public var reason: String

    public var description: String { "invalid JSON at byte \(self.offset): \(self.reason)" }
}

/// A strict RFC 8259 JSON parser producing `JSONValue`, with numbers kept as their exact text.
public enum JSONParser {
    /// Nesting deeper than this is refused rather than risking the stack on hostile input.
    public static let maximumDepth = 256

    public static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { bytes in try parse(UnsafeRawBufferPointer(bytes)) }
    }

    public static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        if let result = try bytes.withContiguousStorageIfAvailable({ try parse(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try parse($0) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var scanner = JSONScanner(bytes: bytes)
        scanner.skipWhitespace()
        let value = try scanner.parseValue(depth: 0)
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { throw scanner.error("unexpected data after the JSON value") }
        return value
    }

    /// Where the value of the top-level object member `name` lies in `bytes`, exactly as written.
    ///
    /// Lets a reader recover a member's original text (spacing, number spelling) that a parsed value loses.
    /// Nil when `bytes` are not a JSON object or have no such member.
    public static func rangeOfMember(_ name: String, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var scanner = JSONScanner(bytes: bytes)
        do {
            scanner.skipWhitespace()
            try scanner.expect(UInt8(ascii: "{"), "an object")
            scanner.skipWhitespace()
            if scanner.current == UInt8(ascii: "}") { return nil }
            while true {
                scanner.skipWhitespace()
                let key = try scanner.parseString()
                scanner.skipWhitespace()
                try scanner.expect(UInt8(ascii: ":"), "':'")
                scanner.skipWhitespace()
                let start = scanner.offset
                try scanner.skipValue(depth: 1)
                if key == name { return start..<scanner.offset }
                scanner.skipWhitespace()
                guard scanner.current == UInt8(ascii: ",") else { return nil }
                scanner.offset += 1
            }
        } catch {
            return nil
        }
    }

    /// Whether `bytes` hold exactly one valid JSON value.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var scanner = JSONScanner(bytes: bytes)
        scanner.skipWhitespace()
        do {
            try scanner.skipValue(depth: 0)
        } catch {
            return false
        }
        scanner.skipWhitespace()
        return scanner.isAtEnd
    }
}

/// Byte-level cursor shared by the full parser and the envelope scanner.
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { self.offset >= self.bytes.count }
    var current: UInt8? { self.offset < self.bytes.count ? self.bytes[self.offset] : nil }

    func error(_ reason: String) -> JSONParseError { JSONParseError(offset: self.offset, reason: reason) }

    mutating func skipWhitespace() {
        while self.offset < self.bytes.count {
            switch self.bytes[self.offset] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): self.offset += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard self.current == byte else {
            throw self.error(self.isAtEnd ? "input ends where \(what) was expected" : "expected \(what)")
        }
        self.offset += 1
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < JSONParser.maximumDepth else { throw self.error("nesting deeper than \(JSONParser.maximumDepth)") }
        guard let byte = self.current else { throw self.error("input ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"):
            self.offset += 1
            var members: [JSONObject.Member] = []
            self.skipWhitespace()
            if self.current == UInt8(ascii: "}") {
                self.offset += 1
                return .object(JSONObject(members))
            }
            // OCPP objects mostly have a few members: one allocation instead of growing from one.
            members.reserveCapacity(4)
            while true {
                self.skipWhitespace()
                guard self.current == UInt8(ascii: "\"") else { throw self.error("expected a string as object key") }
                let key = try self.parseString()
                self.skipWhitespace()
                try self.expect(UInt8(ascii: ":"), "':' after object key")
                self.skipWhitespace()
                let value = try self.parseValue(depth: depth + 1)
                members.append(JSONObject.Member(key: key, value: value))
                self.skipWhitespace()
                if self.current == UInt8(ascii: ",") {
                    self.offset += 1
                    continue
                }
                try self.expect(UInt8(ascii: "}"), "',' or '}' in object")
                return .object(JSONObject(members))
            }
        case UInt8(ascii: "["):
            self.offset += 1
            var items: [JSONValue] = []
            self.skipWhitespace()
            if self.current == UInt8(ascii: "]") {
                self.offset += 1
                return .array(items)
            }
            items.reserveCapacity(4)
            while true {
                self.skipWhitespace()
                items.append(try self.parseValue(depth: depth + 1))
                self.skipWhitespace()
                if self.current == UInt8(ascii: ",") {
                    self.offset += 1
                    continue
                }
                try self.expect(UInt8(ascii: "]"), "',' or ']' in array")
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try self.parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let range = try self.scanNumber()
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[range]), as: UTF8.self))
        default:
            if try self.scanLiteral("true") { return .bool(true) }
            if try self.scanLiteral("false") { return .bool(false) }
            if try self.scanLiteral("null") { return .null }
            throw self.error("unexpected character '\(Self.printable(byte))'")
        }
    }

    /// Validates and skips a value without building it; the envelope scanner and validity checks use this.
    mutating func skipValue(depth: Int) throws {
        guard depth < JSONParser.maximumDepth else { throw self.error("nesting deeper than \(JSONParser.maximumDepth)") }
        guard let byte = self.current else { throw self.error("input ends where a value was expected") }
        switch byte {
        case UInt8(ascii: "{"):
            self.offset += 1
            self.skipWhitespace()
            if self.current == UInt8(ascii: "}") {
                self.offset += 1
                return
            }
            while true {
                self.skipWhitespace()
                guard self.current == UInt8(ascii: "\"") else { throw self.error("expected a string as object key") }
                try self.skipString()
                self.skipWhitespace()
                try self.expect(UInt8(ascii: ":"), "':' after object key")
                self.skipWhitespace()
                try self.skipValue(depth: depth + 1)
                self.skipWhitespace()
                if self.current == UInt8(ascii: ",") {
                    self.offset += 1
                    continue
                }
                try self.expect(UInt8(ascii: "}"), "',' or '}' in object")
                return
            }
        case UInt8(ascii: "["):
            self.offset += 1
            self.skipWhitespace()
            if self.current == UInt8(ascii: "]") {
                self.offset += 1
                return
            }
            while true {
                self.skipWhitespace()
                try self.skipValue(depth: depth + 1)
                self.skipWhitespace()
                if self.current == UInt8(ascii: ",") {
                    self.offset += 1
                    continue
                }
                try self.expect(UInt8(ascii: "]"), "',' or ']' in array")
                return
            }
        case UInt8(ascii: "\""):
            try self.skipString()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            _ = try self.scanNumber()
        default:
            if try self.scanLiteral("true") { return }
            if try self.scanLiteral("false") { return }
            if try self.scanLiteral("null") { return }
            throw self.error("unexpected character '\(Self.printable(byte))'")
        }
    }

    mutating func scanLiteral(_ literal: StaticString) throws -> Bool {
        let count = literal.utf8CodeUnitCount
        guard self.offset + count <= self.bytes.count else {
            if self.bytes[self.offset] == literal.utf8Start[0] { throw self.error("input ends inside a literal") }
            return false
        }
        for index in 0..<count where self.bytes[self.offset + index] != literal.utf8Start[index] {
            return false
        }
        self.offset += count
        return true
    }

    /// Scans a number per the JSON grammar and returns its byte range.
    mutating func scanNumber() throws -> Range<Int> {
        let start = self.offset
        if self.current == UInt8(ascii: "-") { self.offset += 1 }
        guard let first = self.current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw self.error("expected a digit in number")
        }
        if first == UInt8(ascii: "0") {
            self.offset += 1
        } else {
            self.skipDigits()
        }
        if self.current == UInt8(ascii: ".") {
            self.offset += 1
            guard self.skipDigits() > 0 else { throw self.error("expected a digit after the decimal point") }
        }
        if self.current == UInt8(ascii: "e") || self.current == UInt8(ascii: "E") {
            self.offset += 1
            if self.current == UInt8(ascii: "+") || self.current == UInt8(ascii: "-") { self.offset += 1 }
            guard self.skipDigits() > 0 else { throw self.error("expected a digit in the exponent") }
        }
        return start..<self.offset
    }

    @discardableResult
    mutating func skipDigits() -> Int {
        let start = self.offset
        while let byte = self.current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { self.offset += 1 }
        return self.offset - start
    }

    /// Skips a string, validating escapes and rejecting raw control characters.
    mutating func skipString() throws {
        var index = self.offset + 1
        while true {
            index = self.endOfPlainRun(from: index)
            guard index < self.bytes.count else { break }
            let byte = self.bytes[index]
            if byte == UInt8(ascii: "\"") {
                self.offset = index + 1
                return
            }
            self.offset = index
            guard byte == UInt8(ascii: "\\") else { throw self.error("unescaped control character in string") }
            self.offset += 1
            guard let escaped = self.current else { break }
            if escaped == UInt8(ascii: "u") {
                self.offset += 1
                _ = try self.readUnicodeEscape()
            } else if Self.simpleEscape(escaped) != nil {
                self.offset += 1
            } else {
                throw self.error("invalid escape '\\\(Self.printable(escaped))' in string")
            }
            index = self.offset
        }
        self.offset = self.bytes.count
        throw self.error("input ends inside a string")
    }

    /// The index of the first byte from `start` on that ends a run of plain string bytes: a quote, a
    /// backslash or a control character; `bytes.count` when there is none. Looks at eight bytes at a time.
    @inline(__always)
    func endOfPlainRun(from start: Int) -> Int {
        let count = self.bytes.count
        guard let base = self.bytes.baseAddress, start < count else { return max(start, count) }
        var index = start
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while index + 8 <= count {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            let quote = word ^ 0x2222_2222_2222_2222
            let backslash = word ^ 0x5C5C_5C5C_5C5C_5C5C
            // A byte is zero where (x - 1) & ~x has its high bit set, and below 0x20 where (x - 0x20) & ~x
            // does. A borrow can only mark bytes above one that matched, so the lowest mark is exact.
            let marks = ((quote &- ones) & ~quote | (backslash &- ones) & ~backslash | (word &- 0x2020_2020_2020_2020) & ~word) & highs
            if marks != 0 { return index + marks.trailingZeroBitCount / 8 }
            index += 8
        }
        while index < count {
            let byte = base.load(fromByteOffset: index, as: UInt8.self)
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { return index }
            index += 1
        }
        return count
    }

    /// Parses a string, decoding escapes; the fast path copies the bytes when there are none.
    mutating func parseString() throws -> String {
        let start = self.offset + 1
        let index = self.endOfPlainRun(from: start)
        if index < self.bytes.count, self.bytes[index] == UInt8(ascii: "\"") {
            self.offset = index + 1
            return String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[start..<index]), as: UTF8.self)
        }
        self.offset = start
        var utf8: [UInt8] = []
        utf8.reserveCapacity(index - start + 16)
        utf8.append(contentsOf: self.bytes[start..<index])
        self.offset = index
        while self.offset < self.bytes.count {
            let byte = self.bytes[self.offset]
            switch byte {
            case UInt8(ascii: "\""):
                self.offset += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                self.offset += 1
                guard let escaped = self.current else { throw self.error("input ends inside a string") }
                if let simple = Self.simpleEscape(escaped) {
                    utf8.append(simple)
                    self.offset += 1
                } else if escaped == UInt8(ascii: "u") {
                    self.offset += 1
                    let unicode = try self.readUnicodeEscape()
                    utf8.append(contentsOf: Array(String(Character(unicode)).utf8))
                } else {
                    throw self.error("invalid escape '\\\(Self.printable(escaped))' in string")
                }
            case 0..<0x20:
                throw self.error("unescaped control character in string")
            default:
                utf8.append(byte)
                self.offset += 1
            }
        }
        throw self.error("input ends inside a string")
    }

    /// Reads the hex digits after `\u`, and the low half of a surrogate pair where one is needed.
    mutating func readUnicodeEscape() throws -> Unicode.Scalar {
        var scalar = try self.readHex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard self.offset + 1 < self.bytes.count, self.bytes[self.offset] == UInt8(ascii: "\\"),
                self.bytes[self.offset + 1] == UInt8(ascii: "u")
            else { throw self.error("unpaired surrogate in string") }
            self.offset += 2
            let low = try self.readHex4()
            guard (0xDC00..<0xE000).contains(low) else { throw self.error("unpaired surrogate in string") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(scalar) {
            throw self.error("unpaired surrogate in string")
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw self.error("invalid unicode escape") }
        return unicode
    }

    mutating func readHex4() throws -> UInt32 {
        guard self.offset + 4 <= self.bytes.count else { throw self.error("input ends inside a unicode escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.error("invalid hex digit in unicode escape")
            }
            value = value << 4 | UInt32(digit)
            self.offset += 1
        }
        return value
    }

    static func simpleEscape(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "\""): return UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): return UInt8(ascii: "\\")
        case UInt8(ascii: "/"): return UInt8(ascii: "/")
        case UInt8(ascii: "b"): return 0x08
        case UInt8(ascii: "f"): return 0x0C
        case UInt8(ascii: "n"): return 0x0A
        case UInt8(ascii: "r"): return 0x0D
        case UInt8(ascii: "t"): return 0x09
        default: return nil
        }
    }

    static func printable(_ byte: UInt8) -> String {
        (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }
}
