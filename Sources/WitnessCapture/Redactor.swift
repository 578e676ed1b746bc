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

    /// Redacts secrets from a whole OCPP-J message; returns nil when there was nothing to redact.
    /// `action` is the CALL's action, also for its CALLRESULT.
    public func redact(message: JSONValue, action: String, messageType: MessageType) -> JSONValue? {
        guard self.enabled, case .array(var items) = message else { return nil }
        let payloadIndex = messageType == .callResult ? 2 : 3
        guard items.indices.contains(payloadIndex), case .object(var payload) = items[payloadIndex] else { return nil }
        var changed = false
        switch (action, messageType) {
        case ("ChangeConfiguration", .call):
            if Self.isSecret(payload["key"]?.stringValue), payload["value"] != nil {
                payload["value"] = .string(Self.mask)
                changed = true
            }
        case ("GetConfiguration", .callResult):
            changed = Self.redactList(&payload, list: "configurationKey", name: { $0["key"]?.stringValue }, field: "value")
        case ("SetVariables", .call):
            changed = Self.redactList(
                &payload, list: "setVariableData", name: { $0["variable"]?["name"]?.stringValue }, field: "attributeValue"
            )
        case ("GetVariables", .callResult):
            changed = Self.redactList(
                &payload, list: "getVariableResult", name: { $0["variable"]?["name"]?.stringValue }, field: "attributeValue"
            )
        case ("NotifyReport", .call):
            // BasicAuthPassword is write-only, but firmware that reports it anyway must not put it in the capture.
            guard case .array(var entries) = payload["reportData"] else { break }
            for index in entries.indices where Self.isSecret(entries[index]["variable"]?["name"]?.stringValue) {
                guard case .object(var entry) = entries[index] else { continue }
                if Self.redactList(&entry, list: "variableAttribute", name: { _ in "basicauthpassword" }, field: "value") {
                    entries[index] = .object(entry)
                    changed = true
                }
            }
            if changed { payload["reportData"] = .array(entries) }
        case ("SetNetworkProfile", .call):
            // The APN and VPN credentials, and (2.1) the Basic-auth password of the new connection.
            for pointer in ["/connectionData/apn/apnPassword", "/connectionData/vpn/password", "/connectionData/vpn/key", "/connectionData/basicAuthPassword"] {
                let current = JSONValue.object(payload)
                guard JSONPointer.resolve(pointer, in: current) != nil else { continue }
                if case .object(let updated) = JSONPointer.update(current, at: pointer, { _ in .string(Self.mask) }) {
                    payload = updated
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

    private static func redactList(
        _ payload: inout JSONObject, list: String, name: (JSONValue) -> String?, field: String
    ) -> Bool {
        guard case .array(var entries) = payload[list] else { return false }
        var changed = false
        for index in entries.indices {
            guard Self.isSecret(name(entries[index])),
                case .object(var entry) = entries[index], entry[field] != nil
            else { continue }
            entry[field] = .string(mask)
            entries[index] = .object(entry)
            changed = true
        }
        if changed { payload[list] = .array(entries) }
        return changed
    }
}
