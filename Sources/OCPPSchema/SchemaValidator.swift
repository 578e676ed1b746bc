import Foundation
import OCPPWire

/// Checks JSON values against compiled schemas and reports every violation with its JSON pointer.
public struct SchemaValidator: Sendable {
    public var profile: ValidationProfile

    public init(profile: ValidationProfile = .strict) { self.profile = profile }

    public func validate(_ value: JSONValue, against schema: Schema) -> [SchemaViolation] {
        var violations: [SchemaViolation] = []
        var path = Path(root: value)
        self.check(value, schema, path: &path, into: &violations)
        return violations
    }

    /// Where the validator is in the payload: the position of each member or item on the way down from the
    /// root. Positions are plain numbers, so descending costs no reference counting; they are turned into a
    /// JSON pointer (with the members' names) only when a violation is found.
    struct Path {
        let root: JSONValue
        var positions: [Int] = []

        init(root: JSONValue) {
            self.root = root
            self.positions.reserveCapacity(8)
        }

        var pointer: String {
            var out = ""
            var node = self.root
            for position in self.positions {
                switch node {
                case .object(let object):
                    let member = object.members[position]
                    out += "/" + JSONPointer.escape(member.key)
                    node = member.value
                case .array(let items):
                    out += "/" + String(position)
                    node = items[position]
                default:
                    return out
                }
            }
            return out
        }

        func appending(_ key: String) -> String { self.pointer + "/" + JSONPointer.escape(key) }
    }

    static let posix = Locale(identifier: "en_US_POSIX")

    private var quirkSeverity: Severity { self.profile == .lenient ? .warning : .error }

    private func check(_ value: JSONValue, _ schema: Schema, path: inout Path, into violations: inout [SchemaViolation]) {
        if let target = schema.target {
            // A recursive schema's `$ref`, resolved once its target was compiled.
            self.check(value, target, path: &path, into: &violations)
            return
        }
        if let types = schema.keywords.types, !Self.matches(value, types) {
            violations.append(
                SchemaViolation(
                    keyword: "type", pointer: path.pointer, expected: types.names.sorted().joined(separator: " or "),
                    found: Self.describe(value)
                )
            )
            return
        }
        let inEnum: Bool
        if let strings = schema.keywords.enumStrings, case .string(let text) = value {
            inEnum = strings.contains(text)
        } else {
            inEnum = schema.keywords.enumValues.map { $0.contains(value) } ?? true
        }
        if !inEnum, let allowed = schema.keywords.enumValues {
            let caseOnly =
                value.stringValue.map { text in allowed.contains { $0.stringValue?.lowercased() == text.lowercased() } } ?? false
            violations.append(
                SchemaViolation(
                    keyword: "enum", pointer: path.pointer,
                    expected: "one of " + allowed.map { JSONWriter.string($0) }.joined(separator: ", "),
                    found: Self.describe(value) + (caseOnly ? " (differs only in case)" : ""),
                    severity: caseOnly ? self.quirkSeverity : .error
                )
            )
        }
        switch value {
        case .object(let object):
            for name in schema.keywords.required where object[name] == nil {
                violations.append(
                    SchemaViolation(
                        keyword: "required", pointer: path.appending(name), expected: "required property '\(name)'",
                        found: "nothing"
                    )
                )
            }
            var hint = 0
            for position in object.members.indices {
                if let index = schema.property(named: object.members[position].key, after: &hint) {
                    path.positions.append(position)
                    self.check(object.members[position].value, schema.keywords.properties[index].schema, path: &path, into: &violations)
                    path.positions.removeLast()
                } else if !schema.keywords.additionalProperties {
                    let member = object.members[position]
                    violations.append(
                        SchemaViolation(
                            keyword: "additionalProperties", pointer: path.appending(member.key),
                            expected: "only " + (schema.keywords.properties.isEmpty ? "no properties" : schema.declaredProperties.joined(separator: ", ")),
                            found: "unknown property '\(member.key)'"
                        )
                    )
                }
            }
        case .array(let items):
            if let minimum = schema.keywords.minItems, items.count < minimum {
                violations.append(SchemaViolation(keyword: "minItems", pointer: path.pointer, expected: "at least \(minimum) items", found: "\(items.count)"))
            }
            if let maximum = schema.keywords.maxItems, items.count > maximum {
                violations.append(SchemaViolation(keyword: "maxItems", pointer: path.pointer, expected: "at most \(maximum) items", found: "\(items.count)"))
            }
            if let itemSchema = schema.keywords.items {
                for index in items.indices {
                    path.positions.append(index)
                    self.check(items[index], itemSchema, path: &path, into: &violations)
                    path.positions.removeLast()
                }
            }
        case .string(let text):
            guard schema.keywords.maxLength != nil || schema.keywords.minLength != nil || schema.keywords.format != nil else { return }
            // Counting characters walks the string; its UTF-8 size bounds the count from above.
            let bytes = text.utf8.count
            let length = (schema.keywords.minLength ?? 0) == 0 && bytes <= (schema.keywords.maxLength ?? Int.max) ? bytes : text.unicodeScalars.count
            if let maximum = schema.keywords.maxLength, length > maximum {
                violations.append(
                    SchemaViolation(
                        keyword: "maxLength", pointer: path.pointer, expected: "at most \(maximum) characters", found: "\(length) characters",
                        severity: self.quirkSeverity
                    )
                )
            }
            if let minimum = schema.keywords.minLength, length < minimum {
                violations.append(
                    SchemaViolation(keyword: "minLength", pointer: path.pointer, expected: "at least \(minimum) characters", found: "\(length) characters")
                )
            }
            if let format = schema.keywords.format {
                self.checkFormat(format, text, path: path, into: &violations)
            }
        case .number(let text):
            // Most numbers have no numeric constraint; only those that do are read as exact decimals.
            guard schema.keywords.minimum != nil || schema.keywords.maximum != nil || schema.keywords.multipleOf != nil,
                let number = Decimal(string: text, locale: Self.posix)
            else { return }
            if let minimum = schema.keywords.minimum, number < minimum {
                violations.append(SchemaViolation(keyword: "minimum", pointer: path.pointer, expected: "at least \(minimum)", found: text))
            }
            if let maximum = schema.keywords.maximum, number > maximum {
                violations.append(SchemaViolation(keyword: "maximum", pointer: path.pointer, expected: "at most \(maximum)", found: text))
            }
            if let step = schema.keywords.multipleOf, !Self.isMultiple(number, of: step) {
                violations.append(SchemaViolation(keyword: "multipleOf", pointer: path.pointer, expected: "a multiple of \(step)", found: text))
            }
        case .bool, .null:
            break
        }
    }

    private func checkFormat(_ format: String, _ text: String, path: Path, into violations: inout [SchemaViolation]) {
        switch format {
        case "date-time":
            guard let parsed = RFC3339.parse(text) else {
                violations.append(
                    SchemaViolation(keyword: "format", pointer: path.pointer, expected: "an RFC 3339 date-time", found: Self.describe(.string(text)))
                )
                return
            }
            if !parsed.hasZone {
                violations.append(
                    SchemaViolation(
                        keyword: "format", pointer: path.pointer, expected: "an RFC 3339 date-time with a time zone",
                        found: Self.describe(.string(text)) + " (no zone)", severity: self.quirkSeverity
                    )
                )
            }
        case "uri":
            let scheme = text.prefix(while: { $0 != ":" })
            let valid = scheme.count < text.count && !scheme.isEmpty && scheme.first!.isLetter
                && scheme.allSatisfy { $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }
                && !text.contains(" ")
            if !valid {
                violations.append(
                    SchemaViolation(keyword: "format", pointer: path.pointer, expected: "a URI with a scheme", found: Self.describe(.string(text)))
                )
            }
        default:
            break
        }
    }

    static func matches(_ value: JSONValue, _ types: Schema.JSONTypes) -> Bool {
        switch value {
        case .null: return types.contains(.null)
        case .bool: return types.contains(.boolean)
        case .string: return types.contains(.string)
        case .array: return types.contains(.array)
        case .object: return types.contains(.object)
        case .number(let text):
            if types.contains(.number) { return true }
            guard types.contains(.integer) else { return false }
            // Plain digits are an integer; otherwise draft-06 counts any number with a zero fraction (1.0).
            if !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
                return true
            }
            guard let number = Decimal(string: text, locale: posix) else { return false }
            var rounded = Decimal()
            var copy = number
            NSDecimalRound(&rounded, &copy, 0, .plain)
            return rounded == number
        }
    }

    static func isMultiple(_ value: Decimal, of step: Decimal) -> Bool {
        var quotient = value / step
        var rounded = Decimal()
        NSDecimalRound(&rounded, &quotient, 0, .plain)
        return rounded == quotient
    }

    static func describe(_ value: JSONValue) -> String {
        let text = JSONWriter.string(value)
        let short = text.count > 60 ? String(text.prefix(57)) + "..." : text
        return "\(value.typeName) \(short)"
    }
}
