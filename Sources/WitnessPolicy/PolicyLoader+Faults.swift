import Foundation
import OCPPWire
import Yams

/// The faults of a policy: drop, delay, duplicate, disconnect, malformations, answers, outages, slicing, bandwidth and injections.
extension PolicyLoader.Reader {
    mutating func fault(_ node: Node, rule: String) -> Fault? {
        if let name = node.string, case .scalar = node {
            switch name {
            case "drop": return .drop
            case "duplicate": return .duplicate
            case "disconnect": return .disconnect(side: .both, code: 1001, reason: "", reset: false)
            default:
                self.fail(node, "unknown fault '\(name)' in rule '\(rule)'; expected delay, drop, duplicate, disconnect, malformed, respond, inject, outage, slice or bandwidth")
                return nil
            }
        }
        guard let pairs = self.mapping(node), pairs.count == 1, let (kind, body) = pairs.first else {
            self.fail(node, "'fault' of rule '\(rule)' must be one fault: a name (drop) or a mapping with one key (delay: {...})")
            return nil
        }
        let fields = Dictionary(self.mapping(body) ?? [], uniquingKeysWith: { first, _ in first })
        switch kind {
        case "drop": return .drop
        case "duplicate": return .duplicate
        case "delay":
            self.checkKeys(self.mapping(body) ?? [], allowed: ["ms", "jitterMs", "reorder"], in: "delay", node: body)
            guard let millisecondsNode = fields["ms"] ?? (body.int != nil ? body : nil) else {
                self.fail(body, "delay needs 'ms', a non-negative number of milliseconds")
                return nil
            }
            guard let milliseconds = self.milliseconds(millisecondsNode, "ms of delay in rule '\(rule)'") else { return nil }
            let jitter = fields["jitterMs"].flatMap { self.milliseconds($0, "jitterMs of delay in rule '\(rule)'") } ?? 0
            return .delay(milliseconds: milliseconds, jitterMilliseconds: jitter, reorder: fields["reorder"]?.bool ?? false)
        case "disconnect":
            self.checkKeys(self.mapping(body) ?? [], allowed: ["side", "code", "reason", "mode"], in: "disconnect", node: body)
            let side = fields["side"].map { $0.string.flatMap(DisconnectSide.init(rawValue:)) } ?? .both
            guard let side else {
                self.fail(fields["side"], "side must be charger, csms or both")
                return nil
            }
            let code = fields["code"]?.int ?? 1001
            guard (1000...4999).contains(code) else {
                self.fail(fields["code"], "code must be a WebSocket close code from 1000 to 4999")
                return nil
            }
            let mode = fields["mode"]?.string ?? "close"
            guard mode == "close" || mode == "reset" else {
                self.fail(fields["mode"], "mode must be close (a close frame) or reset (TCP reset)")
                return nil
            }
            return .disconnect(side: side, code: UInt16(code), reason: fields["reason"]?.string ?? "", reset: mode == "reset")
        case "malformed":
            return self.malformation(body, fields: fields, rule: rule).map(Fault.malformed)
        case "respond":
            self.checkKeys(self.mapping(body) ?? [], allowed: ["callError", "callResult"], in: "respond", node: body)
            if let error = fields["callError"] {
                let errorFields = Dictionary(self.mapping(error) ?? [], uniquingKeysWith: { first, _ in first })
                guard let code = errorFields["code"]?.string else {
                    self.fail(error, "callError needs 'code'")
                    return nil
                }
                return .respond(.callError(code: code, description: errorFields["description"]?.string ?? ""))
            }
            if let result = fields["callResult"] {
                return .respond(.callResult(payload: Self.json(result)))
            }
            self.fail(body, "respond needs 'callError' or 'callResult'")
            return nil
        case "slice":
            guard let bytes = fields["bytes"]?.int ?? body.int, bytes > 0 else {
                self.fail(body, "slice needs 'bytes', the largest fragment")
                return nil
            }
            return .slice(bytes: bytes)
        case "bandwidth":
            guard let rate = fields["bytesPerSecond"]?.int ?? body.int, rate > 0 else {
                self.fail(body, "bandwidth needs 'bytesPerSecond'")
                return nil
            }
            return .bandwidth(bytesPerSecond: rate)
        case "outage":
            self.checkKeys(self.mapping(body) ?? [], allowed: ["duration", "mode", "scope"], in: "outage", node: body)
            guard let durationNode = fields["duration"] else {
                self.fail(body, "outage needs 'duration', such as 90s or 2m")
                return nil
            }
            guard let seconds = self.duration(durationNode, "duration of outage in rule '\(rule)'", allowsZero: false) else { return nil }
            let mode = fields["mode"].map { $0.string.flatMap(OutageMode.init(rawValue:)) } ?? .refuse
            guard let mode else {
                self.fail(fields["mode"], "mode must be refuse or blackhole")
                return nil
            }
            let scope = fields["scope"]?.string ?? "all"
            guard scope == "all" || scope == "charger" else {
                self.fail(fields["scope"], "scope must be all (every charger) or charger (the one whose message matched)")
                return nil
            }
            return .outage(seconds: seconds, mode: mode, allChargers: scope == "all")
        case "inject":
            self.checkKeys(self.mapping(body) ?? [], allowed: ["action", "payload", "to"], in: "inject", node: body)
            guard let action = fields["action"]?.string else {
                self.fail(body, "inject needs 'action', the CALL to send")
                return nil
            }
            let target = fields["to"].map { $0.string.flatMap(InjectTarget.init(rawValue:)) } ?? .charger
            guard let target else {
                self.fail(fields["to"], "to must be charger or csms")
                return nil
            }
            let given = fields["payload"].map(Self.json) ?? .object(JSONObject())
            guard case .object = given else {
                self.fail(fields["payload"], "payload must be a mapping")
                return nil
            }
            var copies: [InjectCopy] = []
            let payload = Self.placeholders(given, at: "", into: &copies)
            for copy in copies where !Self.isPointer(copy.source) || copy.source.hasPrefix("call:") {
                self.fail(fields["payload"], "fromTrigger must be a JSON pointer into the triggering message, such as /transactionId (at \(copy.pointer))")
            }
            return .inject(action: action, payload: payload, copies: copies, target: target)
        default:
            self.fail(node, "unknown fault '\(kind)' in rule '\(rule)'; expected delay, drop, duplicate, disconnect, malformed, respond, inject, outage, slice or bandwidth")
            return nil
        }
    }

    mutating func malformation(_ body: Node, fields: [String: Node], rule: String) -> Malformation? {
        self.checkKeys(self.mapping(body) ?? [], allowed: ["kind", "path", "value", "fraction", "bytes"], in: "malformed", node: body)
        let kind = fields["kind"]?.string ?? body.string
        func pointer() -> String? {
            guard let path = fields["path"]?.string, path.hasPrefix("/") else {
                self.fail(body, "malformed \(kind ?? "") needs 'path', a JSON pointer into the payload")
                return nil
            }
            return path
        }
        switch kind {
        case "truncate":
            let fraction = fields["fraction"]?.float ?? 0.5
            guard fraction > 0 && fraction < 1 else {
                self.fail(fields["fraction"], "fraction must be between 0 and 1")
                return nil
            }
            return .truncate(fraction: fraction)
        case "invalidJSON": return .invalidJSON
        case "wrongType": return pointer().map { .wrongType(pointer: $0) }
        case "removeField": return pointer().map { .removeField(pointer: $0) }
        case "setField":
            guard let path = pointer() else { return nil }
            guard let value = fields["value"] else {
                self.fail(body, "setField needs 'value'")
                return nil
            }
            return .setField(pointer: path, value: Self.json(value))
        case "wrongCaseEnum": return pointer().map { .wrongCaseEnum(pointer: $0) }
        case "unknownAction": return .unknownAction
        case "oversize":
            guard let bytes = fields["bytes"]?.int, bytes > 0 else {
                self.fail(body, "oversize needs 'bytes', a positive size")
                return nil
            }
            return .oversize(bytes: bytes)
        case "binaryFrame": return .binaryFrame
        default:
            self.fail(body, "malformed needs 'kind': truncate, invalidJSON, wrongType, removeField, setField, wrongCaseEnum, unknownAction, oversize or binaryFrame")
            return nil
        }
    }

    /// A YAML value as JSON: numbers stay numbers, `true`/`false`/`null` keep their meaning.
    /// Replaces every `{fromTrigger: /pointer}` in an injected payload by null, noting where its value goes.
    static func placeholders(_ value: JSONValue, at pointer: String, into copies: inout [InjectCopy]) -> JSONValue {
        switch value {
        case .object(let object):
            if object.members.count == 1, let member = object.members.first, member.key == "fromTrigger" {
                copies.append(InjectCopy(pointer: pointer, source: member.value.stringValue ?? ""))
                return .null
            }
            var result = JSONObject()
            for member in object.members {
                let key = member.key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
                result.members.append(JSONObject.Member(key: member.key, value: placeholders(member.value, at: pointer + "/" + key, into: &copies)))
            }
            return .object(result)
        case .array(let items):
            return .array(items.enumerated().map { placeholders($0.element, at: pointer + "/\($0.offset)", into: &copies) })
        default:
            return value
        }
    }

    static func json(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain {
                if scalar.string == "null" || scalar.string == "~" { return .null }
                if let flag = Bool(scalar.string) { return .bool(flag) }
                if Int(scalar.string) != nil || Double(scalar.string) != nil { return .number(scalar.string) }
            }
            return .string(scalar.string)
        case .sequence(let sequence):
            return .array(sequence.map(json))
        case .mapping(let mapping):
            return .object(JSONObject(mapping.map { JSONObject.Member(key: $0.key.string ?? "", value: json($0.value)) }))
        case .alias:
            return .null
        }
    }
}
