import Foundation
import OCPPWire

/// A compiled JSON schema node: the subset of draft-04/draft-06 the OCA schemas use.
///
/// `$ref`s are resolved when compiling, so validation walks plain nodes.
public final class Schema: @unchecked Sendable {
    enum JSONType: String, CaseIterable {
        case object, array, string, number, integer, boolean, null
    }

    /// The types a node allows, as bits: checked for every value validated, so no hashing.
    struct JSONTypes: OptionSet {
        let rawValue: UInt8

        init(rawValue: UInt8) { self.rawValue = rawValue }
        init(_ type: JSONType) { self.rawValue = 1 << UInt8(JSONType.allCases.firstIndex(of: type)!) }
        init(_ types: [JSONType]) { self = types.reduce(into: JSONTypes()) { $0.formUnion(JSONTypes($1)) } }

        static let object = JSONTypes(.object)
        static let array = JSONTypes(.array)
        static let string = JSONTypes(.string)
        static let number = JSONTypes(.number)
        static let integer = JSONTypes(.integer)
        static let boolean = JSONTypes(.boolean)
        static let null = JSONTypes(.null)

        /// The names of the allowed types, as the schema spells them.
        var names: [String] { JSONType.allCases.filter { self.contains(JSONTypes($0)) }.map(\.rawValue) }
    }

    /// What the node requires of a value, by JSON Schema keyword.
    struct Keywords {
        var types: JSONTypes?
        /// Declared properties in schema order, each name once. Every member of every object validated is
        /// looked up here: see `property(named:after:)`.
        var properties: [(name: String, schema: Schema)] = []
        var required: [String] = []
        var additionalProperties = true
        var enumValues: [JSONValue]?
        /// The enum's values when all of them are strings (all OCA enums are), for checks without hashing.
        var enumStrings: StringChoices?
        var maxLength: Int?
        var minLength: Int?
        var minimum: Decimal?
        var maximum: Decimal?
        var multipleOf: Decimal?
        var items: Schema?
        var minItems: Int?
        var maxItems: Int?
        var format: String?
    }

    /// A constant: validation reads the keywords for every value it checks, and a class's constants are
    /// read in place, without the reference counting a variable's reads need.
    let keywords: Keywords
    /// For a `$ref` that refers to a schema still being compiled (a recursive schema): the node it stands
    /// for, set once that is compiled. Nil for every other node, which carries its keywords itself.
    fileprivate(set) var target: Schema?

    fileprivate init(_ keywords: Keywords) {
        self.keywords = keywords
    }

    /// Property names this schema declares, in schema order.
    public var declaredProperties: [String] { self.keywords.properties.map(\.name) }

    /// Where the schema of property `name` is in `properties`. Senders write an object's members in a
    /// steady order, mostly the schema's: the search starts at `hint` (where the previous member's match
    /// ended, updated here), and OCA objects have a handful of properties, so a few string comparisons
    /// replace hashing the name.
    func property(named name: String, after hint: inout Int) -> Int? {
        let count = self.keywords.properties.count
        if hint < count, self.keywords.properties[hint].name == name {
            hint += 1
            return hint - 1
        }
        for index in 0..<count where self.keywords.properties[index].name == name {
            hint = index + 1
            return index
        }
        return nil
    }
}

/// The strings an enum allows, grouped by their length in UTF-8: a value is compared byte for byte with
/// the few choices of its own length (JSON Schema compares strings by their code points), without hashing it.
struct StringChoices {
    private let byLength: [[[UInt8]]]

    init(_ strings: [String]) {
        var byLength: [[[UInt8]]] = Array(repeating: [], count: (strings.map(\.utf8.count).max() ?? 0) + 1)
        for string in strings { byLength[string.utf8.count].append(Array(string.utf8)) }
        self.byLength = byLength
    }

    func contains(_ text: String) -> Bool {
        let length = text.utf8.count
        guard length < self.byLength.count else { return false }
        let choices = self.byLength[length]
        guard !choices.isEmpty else { return false }
        guard length > 0 else { return true }
        return text.utf8.withContiguousStorageIfAvailable { bytes in
            choices.contains { choice in choice.withUnsafeBufferPointer { memcmp($0.baseAddress!, bytes.baseAddress!, length) == 0 } }
        } ?? choices.contains { $0.elementsEqual(text.utf8) }
    }
}

/// Why a schema file could not be compiled, naming the file and the place in it.
public struct SchemaCompileError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var pointer: String
    public var reason: String
    public var description: String { "\(self.file)\(self.pointer.isEmpty ? "" : " at \(self.pointer)"): \(self.reason)" }
}

/// Compiles one schema document.
struct SchemaCompiler {
    let file: String
    let document: JSONValue
    private var resolved: [String: Schema] = [:]

    init(file: String, document: JSONValue) {
        self.file = file
        self.document = document
    }

    mutating func compile() throws -> Schema {
        try self.compile(self.document, pointer: "")
    }

    private func fail(_ pointer: String, _ reason: String) -> SchemaCompileError {
        SchemaCompileError(file: self.file, pointer: pointer, reason: reason)
    }

    private mutating func compile(_ value: JSONValue, pointer: String) throws -> Schema {
        guard case .object(let object) = value else { throw self.fail(pointer, "a schema must be an object") }
        if let reference = object["$ref"] {
            guard case .string(let ref) = reference else { throw self.fail(pointer, "$ref must be a string") }
            return try self.resolve(ref, from: pointer)
        }
        var schema = Schema.Keywords()
        for member in object.members {
            let here = pointer + "/" + member.key
            switch member.key {
            case "type":
                switch member.value {
                case .string(let name):
                    guard let type = Schema.JSONType(rawValue: name) else { throw self.fail(here, "unknown type '\(name)'") }
                    schema.types = Schema.JSONTypes(type)
                case .array(let names):
                    schema.types = Schema.JSONTypes(try names.map { name in
                        guard let text = name.stringValue, let type = Schema.JSONType(rawValue: text) else {
                            throw self.fail(here, "unknown type \(name)")
                        }
                        return type
                    })
                default: throw self.fail(here, "type must be a string or an array")
                }
            case "properties":
                guard case .object(let properties) = member.value else { throw self.fail(here, "properties must be an object") }
                for property in properties.members {
                    let compiled = try self.compile(property.value, pointer: here + "/" + JSONPointer.escape(property.key))
                    // A name given twice keeps its place and takes the later schema, as a JSON reader would.
                    if let index = schema.properties.firstIndex(where: { $0.name == property.key }) {
                        schema.properties[index].schema = compiled
                    } else {
                        schema.properties.append((property.key, compiled))
                    }
                }
            case "required":
                guard case .array(let names) = member.value else { throw self.fail(here, "required must be an array") }
                schema.required = try names.map {
                    guard let name = $0.stringValue else { throw self.fail(here, "required must list strings") }
                    return name
                }
            case "additionalProperties":
                switch member.value {
                case .bool(let allowed): schema.additionalProperties = allowed
                case .object: schema.additionalProperties = true  // a schema for extra members: none of the OCA files constrain them
                default: throw self.fail(here, "additionalProperties must be a boolean or a schema")
                }
            case "enum":
                guard case .array(let values) = member.value else { throw self.fail(here, "enum must be an array") }
                schema.enumValues = values
                let strings = values.compactMap(\.stringValue)
                if strings.count == values.count { schema.enumStrings = StringChoices(strings) }
            case "maxLength": schema.maxLength = try self.integer(member.value, here)
            case "minLength": schema.minLength = try self.integer(member.value, here)
            case "minItems": schema.minItems = try self.integer(member.value, here)
            case "maxItems": schema.maxItems = try self.integer(member.value, here)
            case "minimum": schema.minimum = try self.decimal(member.value, here)
            case "maximum": schema.maximum = try self.decimal(member.value, here)
            case "multipleOf":
                let step = try self.decimal(member.value, here)
                guard step > 0 else { throw self.fail(here, "multipleOf must be positive") }
                schema.multipleOf = step
            case "items":
                guard case .object = member.value else { throw self.fail(here, "only a single items schema is supported") }
                schema.items = try self.compile(member.value, pointer: here)
            case "format":
                guard case .string(let format) = member.value else { throw self.fail(here, "format must be a string") }
                schema.format = format
            case "$schema", "$id", "id", "title", "description", "comment", "$comment", "javaType", "default",
                "definitions", "additionalItems", "tsEnumNames", "examples":
                // Annotations, or keywords that cannot constrain the OCA schemas (additionalItems only applies
                // to tuple-form items, which the OCA schemas never use).
                continue
            default:
                throw self.fail(here, "unsupported schema keyword '\(member.key)'")
            }
        }
        return Schema(schema)
    }

    private mutating func resolve(_ ref: String, from pointer: String) throws -> Schema {
        if let known = self.resolved[ref] { return known.target ?? known }
        guard ref.hasPrefix("#") else { throw self.fail(pointer, "only local $ref is supported, found '\(ref)'") }
        var node = self.document
        for token in ref.dropFirst().split(separator: "/", omittingEmptySubsequences: true) {
            let key = JSONPointer.unescape(String(token))
            guard let next = node[key] else { throw self.fail(pointer, "$ref '\(ref)' points nowhere") }
            node = next
        }
        // A placeholder first, so that a schema referring to itself terminates.
        let placeholder = Schema(Schema.Keywords())
        self.resolved[ref] = placeholder
        let compiled = try self.compile(node, pointer: String(ref.dropFirst()))
        placeholder.target = compiled
        self.resolved[ref] = compiled
        return compiled
    }

    private func integer(_ value: JSONValue, _ pointer: String) throws -> Int {
        guard let number = value.intValue else { throw self.fail(pointer, "expected an integer") }
        return number
    }

    private func decimal(_ value: JSONValue, _ pointer: String) throws -> Decimal {
        guard case .number(let text) = value, let decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw self.fail(pointer, "expected a number")
        }
        return decimal
    }
}

