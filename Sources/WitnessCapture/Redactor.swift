#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OCPPWire

/// Removes secrets from what is recorded: Basic-auth passwords and the authorization keys OCPP
/// transports in configuration messages. Forwarded traffic is never changed; only the capture is.
public struct Redactor: Sendable {
    /// The text that replaces a secret.
    public static let mask = "<redacted>"

    public var enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    /// Redacts the password of a `Basic` Authorization header, keeping the user (the charge point id).
    public func authorizationHeader(_ value: String) -> String {
        guard self.enabled else { return value }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return Self.mask }
        guard parts[0].lowercased() == "basic" else { return "\(parts[0]) \(Self.mask)" }
        guard let user = Self.basicUser(encoded: String(parts[1])) else { return "Basic \(Self.mask)" }
        return "Basic user=\(user) password=\(Self.mask)"
    }

    /// The user of base64 `user:password` Basic credentials; nil when they do not decode.
    public static func basicUser(encoded: String) -> String? {
        guard let decoded = Base64.decode(encoded), let text = String(validating: decoded, as: UTF8.self), let colon = text.firstIndex(of: ":")
        else { return nil }
        return String(text[..<colon])
    }

    /// The user of a `Basic` Authorization header as a capture holds it: redacted by `authorizationHeader`
    /// (`Basic user=<id> password=<redacted>`) or, with secrets kept, as sent.
    public static func basicUser(recordedHeader header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return nil }
        if parts[1].hasPrefix("user=") {
            let rest = parts[1].dropFirst(5)
            if let space = rest.firstIndex(of: " "), rest[space...].hasPrefix(" password=") { return String(rest[..<space]) }
        }
        return self.basicUser(encoded: parts[1])
    }

    /// Whether a message of this action may carry a secret, so the writer only parses those.
    /// Request headers as capture records keep them: names lower-cased, repeated headers joined with
    /// ", ", and the Authorization headers' passwords redacted.
    public func recordedHeaders(_ headers: some Sequence<(String, String)>) -> JSONObject {
        var object = JSONObject()
        for (name, value) in headers {
            let lowered = name.lowercased()
            let recorded = lowered == "authorization" || lowered == "proxy-authorization" ? self.authorizationHeader(value) : value
            if case .string(let existing) = object[lowered] {
                object[lowered] = .string(existing + ", " + recorded)
            } else {
                object[lowered] = .string(recorded)
            }
        }
        return object
    }

    public func mayCarrySecret(action: String?) -> Bool {
        guard self.enabled, let action else { return false }
        // Asked for every recorded message: the length rules out nearly all actions before any comparison.
        switch action.utf8.count {
        case 19: return action == "ChangeConfiguration"
        case 17: return action == "SetNetworkProfile"
        case 16: return action == "GetConfiguration"
        case 12: return action == "SetVariables" || action == "GetVariables" || action == "NotifyReport"
        default: return false
        }
    }
    /// Configuration keys and variables whose values are secrets, compared without letter case (1.6 key
    /// names are not case-sensitive, and firmware spells them as it likes).
    static let secretKeys: Set<String> = ["authorizationkey", "basicauthpassword"]

    static func isSecret(_ name: String?) -> Bool { name.map { secretKeys.contains($0.lowercased()) } ?? false }

    /// Every value of the members named `name`: JSON allows a name twice, `JSONObject`'s subscript reads the
    /// first, and a charger's or backend's parser may read the last. A secret under either must be found.
    static func values(_ object: JSONObject, _ name: String) -> [JSONValue] {
        object.members.filter { $0.key == name }.map(\.value)
    }

    /// Sets every member named `name` to the mask; true when there was one.
    static func mask(_ object: inout JSONObject, _ name: String) -> Bool {
        var found = false
        for index in object.members.indices where object.members[index].key == name {
            object.members[index].value = .string(Self.mask)
            found = true
        }
        return found
    }

    /// Whether any `variable` member of `entry` has any `name` member that is a secret.
    static func namesSecretVariable(_ entry: JSONValue) -> Bool {
        guard case .object(let object) = entry else { return false }
        return Self.values(object, "variable").contains { variable in
            guard case .object(let inner) = variable else { return false }
            return Self.values(inner, "name").contains { Self.isSecret($0.stringValue) }
        }
    }

    /// Redacts secrets from a whole OCPP-J message; returns nil when there was nothing to redact.
    /// `action` is the CALL's action, also for its CALLRESULT.
    public func redact(message: JSONValue, action: String, messageType: MessageType) -> JSONValue? {
        guard self.enabled, case .array(var items) = message else { return nil }
        let payloadIndex = messageType == .callResult ? 2 : 3
        guard items.indices.contains(payloadIndex), case .object(var payload) = items[payloadIndex] else { return nil }
        var changed = false
        switch (action, messageType) {
        case ("ChangeConfiguration", .call):
            if Self.values(payload, "key").contains(where: { Self.isSecret($0.stringValue) }) {
                changed = Self.mask(&payload, "value")
            }
        case ("GetConfiguration", .callResult):
            changed = Self.redactList(&payload, list: "configurationKey", name: { entry in
                guard case .object(let object) = entry else { return false }
                return Self.values(object, "key").contains { Self.isSecret($0.stringValue) }
            }, field: "value")
        case ("SetVariables", .call):
            changed = Self.redactList(&payload, list: "setVariableData", name: Self.namesSecretVariable, field: "attributeValue")
        case ("GetVariables", .callResult):
            changed = Self.redactList(&payload, list: "getVariableResult", name: Self.namesSecretVariable, field: "attributeValue")
        case ("NotifyReport", .call):
            // BasicAuthPassword is write-only, but firmware that reports it anyway must not put it in the capture.
            for member in payload.members.indices where payload.members[member].key == "reportData" {
                guard case .array(var entries) = payload.members[member].value else { continue }
                var listChanged = false
                for index in entries.indices where Self.namesSecretVariable(entries[index]) {
                    guard case .object(var entry) = entries[index] else { continue }
                    if Self.redactList(&entry, list: "variableAttribute", name: { _ in true }, field: "value") {
                        entries[index] = .object(entry)
                        listChanged = true
                    }
                }
                if listChanged {
                    payload.members[member].value = .array(entries)
                    changed = true
                }
            }
        case ("SetNetworkProfile", .call):
            // The APN and VPN credentials, and (2.1) the Basic-auth password of the new connection.
            for member in payload.members.indices where payload.members[member].key == "connectionData" {
                for pointer in ["/apn/apnPassword", "/vpn/password", "/vpn/key", "/basicAuthPassword"] {
                    let current = payload.members[member].value
                    guard JSONPointer.resolve(pointer, in: current) != nil else { continue }
                    payload.members[member].value = JSONPointer.update(current, at: pointer, { _ in .string(Self.mask) })
                    changed = true
                }
            }
        default:
            break
        }
        guard changed else { return nil }
        items[payloadIndex] = .object(payload)
        return .array(items)
    }

    /// Masks `field` in every entry of every member named `list` for which `isSecretEntry` holds.
    private static func redactList(
        _ payload: inout JSONObject, list: String, name isSecretEntry: (JSONValue) -> Bool, field: String
    ) -> Bool {
        var changed = false
        for member in payload.members.indices where payload.members[member].key == list {
            guard case .array(var entries) = payload.members[member].value else { continue }
            var listChanged = false
            for index in entries.indices {
                guard isSecretEntry(entries[index]), case .object(var entry) = entries[index], Self.mask(&entry, field) else { continue }
                entries[index] = .object(entry)
                listChanged = true
            }
            if listChanged {
                payload.members[member].value = .array(entries)
                changed = true
            }
        }
        return changed
    }

    // MARK: Failing closed

    /// Names whose values are secrets, for `maskAroundSecretNames`, lower-cased.
    static let secretNames = Self.secretKeys.union(["apnpassword"])

    static func isSecretName(_ text: String) -> Bool { Self.secretNames.contains(text.lowercased()) }

    /// For a strict message that mentions a secret-bearing name where the field-by-field rules found nothing
    /// (member names in another letter case, an answer whose CALL the proxy does not know): every string in an
    /// object that names a secret (as a member name, as a member's value, or in a member object's value, as
    /// `variable.name` does) is masked, except the names themselves, and so is every string in the arrays such
    /// an object holds. Numbers and booleans stay: no secret OCPP defines is one. Nil when nothing changed.
    public static func maskAroundSecretNames(_ message: JSONValue) -> JSONValue? {
        var changed = false
        let result = Self.maskStrings(message, inSecret: false, changed: &changed)
        return changed ? result : nil
    }

    private static func namesSecret(_ object: JSONObject) -> Bool {
        object.members.contains { member in
            if Self.isSecretName(member.key) { return true }
            switch member.value {
            case .string(let text): return Self.isSecretName(text)
            case .object(let inner): return inner.members.contains { $0.value.stringValue.map(Self.isSecretName) ?? false }
            default: return false
            }
        }
    }

    private static func maskStrings(_ value: JSONValue, inSecret: Bool, changed: inout Bool) -> JSONValue {
        switch value {
        case .string(let text) where inSecret && !Self.isSecretName(text) && text != Self.mask:
            changed = true
            return .string(Self.mask)
        case .object(var object):
            let secret = Self.namesSecret(object)
            for index in object.members.indices {
                let member = object.members[index].value
                switch member {
                case .string: object.members[index].value = Self.maskStrings(member, inSecret: secret, changed: &changed)
                case .array: object.members[index].value = Self.maskStrings(member, inSecret: secret || inSecret, changed: &changed)
                default: object.members[index].value = Self.maskStrings(member, inSecret: false, changed: &changed)
                }
            }
            return .object(object)
        case .array(let items):
            return .array(items.map { Self.maskStrings($0, inSecret: inSecret, changed: &changed) })
        default:
            return value
        }
    }

    /// Names whose values are secrets wherever they appear, lower-cased: what a message that is not strict
    /// OCPP-J is searched for.
    static let secretMarkers: [[UInt8]] = (Self.secretNames.sorted() + ["setnetworkprofile"]).map { Array($0.utf8) }

    /// Whether a text that is not strict OCPP-J must go through `redactFailingClosed`: it mentions a
    /// secret-bearing name, or holds a `\u` escape that could spell one.
    public static func needsFailingClosed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if Self.mentionsSecret(bytes) { return true }
        guard let base = bytes.baseAddress, bytes.count > 1 else { return false }
        var from = 0
        while from < bytes.count - 1, let found = memchr(base + from, 0x5C, bytes.count - 1 - from) {
            let offset = base.distance(to: UnsafeRawPointer(found))
            if bytes[offset + 1] | 0x20 == UInt8(ascii: "u") { return true }
            from = offset + 2
        }
        return false
    }

    /// Whether `bytes` mention a secret-bearing name, without regard to letter case.
    public static func mentionsSecret(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 11 else { return false }
        for marker in Self.secretMarkers where bytes.count >= marker.count {
            var index = 0
            while index + marker.count <= bytes.count {
                var matched = true
                for offset in 0..<marker.count where bytes[index + offset] | 0x20 != marker[offset] {
                    matched = false
                    break
                }
                if matched { return true }
                index += 1
            }
        }
        return false
    }

    /// How a message that cannot be redacted field by field was redacted.
    public enum Fallback: String, Sendable {
        /// Every value inside an object was replaced; names and structure were kept.
        case values
        /// Nothing of the payload was kept.
        case whole
    }

    /// Redacts a text that mentions a secret but is not a message `redact(message:action:messageType:)` can
    /// handle (a CALL with five elements, a trailing `]`, broken JSON): inside every object, each string that is
    /// not a member name (followed by `:`) and each number or literal is replaced by the mask, whatever order
    /// the members come in and however the text is broken; the names, the structure and what stands outside
    /// any object (the message type, id and action) are kept. When the text cannot be scanned as JSON tokens
    /// to its end (an unterminated string, stray bytes), nothing is kept: the result is the mask alone.
    public static func redactFailingClosed(_ bytes: UnsafeRawBufferPointer) -> (text: String, fallback: Fallback) {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        // The open containers, innermost last: true for an object. `objects` counts the trues.
        var containers: [Bool] = []
        var objects = 0
        let mask = Array("\"\(Self.mask)\"".utf8)
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ":"), UInt8(ascii: ","):
                out.append(byte)
                index += 1
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                containers.append(byte == UInt8(ascii: "{"))
                if byte == UInt8(ascii: "{") { objects += 1 }
                out.append(byte)
                index += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if let last = containers.popLast(), last { objects -= 1 }
                out.append(byte)
                index += 1
            case UInt8(ascii: "\""):
                var end = index + 1
                while end < bytes.count && bytes[end] != UInt8(ascii: "\"") {
                    end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard end < bytes.count else { return (Self.mask, .whole) }
                if objects > 0 && !Self.followedByColon(bytes, from: end + 1) {
                    out.append(contentsOf: mask)
                } else {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index...end]))
                }
                index = end + 1
            default:
                // A number or a literal: up to the next structural byte or space.
                var end = index
                while end < bytes.count, ![0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: ":")].contains(bytes[end]) {
                    guard bytes[end] >= 0x21 && bytes[end] < 0x7F && bytes[end] != UInt8(ascii: "\"") && bytes[end] != UInt8(ascii: "{") && bytes[end] != UInt8(ascii: "[") else {
                        return (Self.mask, .whole)
                    }
                    end += 1
                }
                if objects > 0 {
                    out.append(contentsOf: mask)
                } else {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
                }
                index = end
            }
        }
        return (String(decoding: out, as: UTF8.self), .values)
    }

    /// Whether the next byte after spaces from `index` is ':' (the string before it was a name).
    private static func followedByColon(_ bytes: UnsafeRawBufferPointer, from index: Int) -> Bool {
        var index = index
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        return index < bytes.count && bytes[index] == UInt8(ascii: ":")
    }
}
