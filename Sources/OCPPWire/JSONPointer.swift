import Foundation

/// RFC 6901 JSON pointers.
public enum JSONPointer {
    /// Escapes one reference token (`~` → `~0`, `/` → `~1`).
    public static func escape(_ token: String) -> String {
        guard token.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return token }
        return token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    /// Undoes `escape`.
    public static func unescape(_ token: String) -> String {
        guard token.contains("~") else { return token }
        return token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
    }

    public static func tokens(_ pointer: String) -> [String] {
        guard pointer.hasPrefix("/") else { return [] }
        return pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map { self.unescape(String($0)) }
    }

    public static func resolve(_ pointer: String, in value: JSONValue) -> JSONValue? {
        var current = value
        for token in self.tokens(pointer) {
            switch current {
            case .object(let object):
                guard let next = object[token] else { return nil }
                current = next
            case .array(let items):
                guard let index = Int(token), items.indices.contains(index) else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }

    /// Returns `value` with the node at `pointer` replaced by `transform(old)` (nil removes it).
    public static func update(_ value: JSONValue, at pointer: String, _ transform: (JSONValue?) -> JSONValue?) -> JSONValue {
        self.update(value, tokens: ArraySlice(self.tokens(pointer)), transform)
    }

    private static func update(_ value: JSONValue, tokens: ArraySlice<String>, _ transform: (JSONValue?) -> JSONValue?) -> JSONValue {
        guard let token = tokens.first else { return transform(value) ?? .null }
        let rest = tokens.dropFirst()
        switch value {
        case .object(var object):
            if rest.isEmpty {
                object[token] = transform(object[token])
            } else if let child = object[token] {
                object[token] = self.update(child, tokens: rest, transform)
            }
            return .object(object)
        case .array(var items):
            guard let index = Int(token), items.indices.contains(index) else { return value }
            if rest.isEmpty {
                if let replacement = transform(items[index]) { items[index] = replacement } else { items.remove(at: index) }
            } else {
                items[index] = self.update(items[index], tokens: rest, transform)
            }
            return .array(items)
        default:
            return value
        }
    }
}
