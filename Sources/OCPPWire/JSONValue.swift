/// A JSON value that keeps what matters for evidence: member order and the exact text of numbers.
///
/// Numbers stay as their decimal text so that `multipleOf` checks and re-serialisation never suffer
/// from binary rounding, and a payload written back out reads the same as the one received.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Builds a number from an integer.
    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    /// Builds a number from a double, written in its shortest round-tripping form; JSON has no NaN or
    /// infinity, so those are null.
    public static func double(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        if value.rounded() == value, abs(value) < 1e15 { return .number(String(Int(value))) }
        return .number(String(value))
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    public subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    public var intValue: Int? {
        if case .number(let text) = self { return Int(text) ?? Double(text).flatMap { Int(exactly: $0) } }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// The JSON type name used in messages (`object`, `array`, `string`, `number`, `boolean`, `null`).
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON object with its members in the order they were received.
public struct JSONObject: Sendable, Hashable {
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    public var members: [Member]

    public init(_ members: [Member] = []) { self.members = members }

    public init(_ pairs: KeyValuePairs<String, JSONValue>) {
        self.members = pairs.map { Member(key: $0.key, value: $0.value) }
    }

    /// Looks a member up by key; OCPP objects are small, so a linear scan beats hashing.
    public subscript(key: String) -> JSONValue? {
        get { self.members.first(where: { $0.key == key })?.value }
        set {
            if let index = self.members.firstIndex(where: { $0.key == key }) {
                if let newValue { self.members[index].value = newValue } else { self.members.remove(at: index) }
            } else if let newValue {
                self.members.append(Member(key: key, value: newValue))
            }
        }
    }

    public var keys: [String] { self.members.map(\.key) }
    public var count: Int { self.members.count }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { JSONObject.Member(key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.members = elements.map { Member(key: $0.0, value: $0.1) }
    }
}

extension JSONObject: CustomStringConvertible {
    public var description: String { JSONWriter.string(.object(self)) }
}

extension StringProtocol {
    /// The text as a number when it is written as a plain decimal (`-12`, `+0.5`, `1.5e-3`, `1e400` as
    /// infinity): digits with at most a sign, a point and an exponent. Not `nan`, `inf`, hexadecimal or `1,5`,
    /// which `Double(_:)` would also read or a spreadsheet would not.
    public var plainDecimalNumber: Double? {
        guard let first = self.utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".") || (0x30...0x39).contains(first),
            self.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") })
        else { return nil }
        return Double(String(self))
    }
}

extension Double {
    /// The number as people write it: `12` for 12.0, `2.5`, `1e+300`; `nan` and `inf` as Swift spells them.
    /// Safe for any value, unlike `String(Int(value))`, which traps beyond Int's range (a reading of 1e300 Wh
    /// from a charger, a latency of 1e308 ms in a damaged capture).
    public var plainText: String {
        self.rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}
