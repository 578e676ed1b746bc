import Foundation
import OCPPWire
import Yams

/// A policy file that cannot be used, with where and why.
public struct PolicyError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public var description: String {
        let place = self.line.map { ":\($0)" + (self.column.map { ":\($0)" } ?? "") } ?? ""
        return "\(self.file)\(place): \(self.message)"
    }
}

/// Reads fault policies from YAML and checks every field, reporting all problems with their lines.
public enum PolicyLoader {
    public static func load(path: String) throws -> FaultPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyErrors(errors: [PolicyError(file: path, message: "cannot read the policy file")])
        }
        return try self.parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses `yaml`; throws `PolicyErrors` with every problem found.
    public static func parse(_ yaml: String, file: String = "policy") throws -> FaultPolicy {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw PolicyErrors(errors: [Self.yamlError(error, file: file)])
        } catch {
            throw PolicyErrors(errors: [PolicyError(file: file, message: "not YAML: \(error)")])
        }
        var reader = Reader(file: file)
        let policy = reader.policy(root)
        guard reader.errors.isEmpty, let policy else { throw PolicyErrors(errors: reader.errors) }
        return policy
    }

    static func yamlError(_ error: YamlError, file: String) -> PolicyError {
        switch error {
        case .parser(_, let problem, let mark, _), .scanner(_, let problem, let mark, _):
            return PolicyError(file: file, line: mark.line, column: mark.column, message: "YAML: \(problem)")
        default:
            return PolicyError(file: file, message: "YAML: \(error)")
        }
    }

    struct Reader {
        let file: String
        var errors: [PolicyError] = []

        mutating func fail(_ node: Node?, _ message: String) {
            self.errors.append(PolicyError(file: self.file, line: node?.mark?.line, column: node?.mark?.column, message: message))
        }

        func mapping(_ node: Node?) -> [(String, Node)]? {
            guard case .mapping(let mapping) = node else { return nil }
            return mapping.compactMap { key, value in key.string.map { ($0, value) } }
        }

        mutating func checkKeys(_ pairs: [(String, Node)], allowed: Set<String>, in what: String, node: Node?) {
            for (key, value) in pairs where !allowed.contains(key) {
                self.fail(value, "unknown field '\(key)' in \(what); expected one of: \(allowed.sorted().joined(separator: ", "))")
            }
        }

        mutating func policy(_ root: Node?) -> FaultPolicy? {
            guard let pairs = self.mapping(root) else {
                self.fail(root, "a policy is a mapping with 'seed' and 'rules'")
                return nil
            }
            self.checkKeys(pairs, allowed: ["seed", "rules", "checks", "description"], in: "the policy", node: root)
            let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
            var seed: UInt64 = 1
            if let node = fields["seed"] {
                if let value = node.int, value >= 0 { seed = UInt64(value) } else { self.fail(node, "seed must be a non-negative integer") }
            }
            let checks = fields["checks"].map { self.checks($0) } ?? []
            // A policy of checks alone injects nothing; it only judges.
            let rulesNode = fields["rules"] ?? (fields["checks"] != nil ? .sequence(Node.Sequence([])) : nil)
            guard let rulesNode, case .sequence(let sequence) = rulesNode else {
                self.fail(fields["rules"] ?? root, "'rules' must be a list of rules")
                return nil
            }
            var rules: [FaultRule] = []
            var names: Set<String> = []
            for (index, node) in sequence.enumerated() {
                // Names are checked even for rules with other errors, so every problem shows in one pass.
                if let name = self.mapping(node)?.first(where: { $0.0 == "name" })?.1.string, !names.insert(name).inserted {
                    self.fail(node, "rule name '\(name)' is used twice")
                }
                if let rule = self.rule(node, index: index) { rules.append(rule) }
            }
            return FaultPolicy(seed: seed, rules: rules, checks: checks, source: self.file)
        }

        // Fields that fault matchers and check events share.

        mutating func direction(_ value: Node) -> Direction? {
            let direction = value.string.flatMap(Direction.init(rawValue:))
            if direction == nil { self.fail(value, "direction must be toCSMS or toCharger") }
            return direction
        }

        mutating func messageTypes(_ value: Node) -> Set<MessageType> {
            let names = self.strings(value) ?? []
            let types = names.compactMap { name in MessageType.allCases.first { $0.name == name.uppercased() } }
            if types.count != names.count || names.isEmpty {
                self.fail(value, "type must be CALL, CALLRESULT, CALLERROR, CALLRESULTERROR or SEND (or a list of them)")
            }
            return Set(types)
        }

        mutating func actions(_ value: Node) -> Set<String>? {
            guard let actions = self.strings(value) else {
                self.fail(value, "action must be a name or a list of names")
                return nil
            }
            return Set(actions)
        }

        mutating func checks(_ node: Node) -> [WitnessCheck] {
            guard case .sequence(let sequence) = node else {
                self.fail(node, "'checks' must be a list of checks")
                return []
            }
            var checks: [WitnessCheck] = []
            var names: Set<String> = []
            for (index, item) in sequence.enumerated() {
                if let name = self.mapping(item)?.first(where: { $0.0 == "name" })?.1.string, !names.insert(name).inserted {
                    self.fail(item, "check name '\(name)' is used twice")
                }
                if let check = self.check(item, index: index) { checks.append(check) }
            }
            return checks
        }

        mutating func check(_ node: Node, index: Int) -> WitnessCheck? {
            guard let pairs = self.mapping(node) else {
                self.fail(node, "check \(index + 1) must be a mapping with 'name', 'area', 'when', 'expect' or 'forbid', and 'within'")
                return nil
            }
            self.checkKeys(pairs, allowed: ["name", "area", "description", "version", "when", "expect", "forbid", "within"], in: "a check", node: node)
            let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
            let name = fields["name"]?.string ?? "check-\(index + 1)"
            if fields["name"]?.string == nil { self.fail(node, "check \(index + 1) has no 'name'") }
            let areaNames = WitnessArea.allCases.map(\.rawValue).joined(separator: ", ")
            let area = fields["area"]?.string.flatMap(WitnessArea.init(rawValue:))
            if area == nil { self.fail(fields["area"] ?? node, "check '\(name)' needs 'area', one of: \(areaNames)") }
            let when = fields["when"].map { self.pattern($0, what: "'when' of check '\(name)'") } ?? nil
            if fields["when"] == nil { self.fail(node, "check '\(name)' has no 'when' (the stimulus that starts its window)") }
            let outcome: WitnessCheck.Outcome?
            switch (fields["expect"], fields["forbid"]) {
            case (.some, .some):
                self.fail(node, "check '\(name)' has both 'expect' and 'forbid'; give one")
                outcome = nil
            case (.some, nil): outcome = .expect
            case (nil, .some): outcome = .forbid
            case (nil, nil):
                self.fail(node, "check '\(name)' needs 'expect' (what must follow) or 'forbid' (what must not)")
                outcome = nil
            }
            let thenNode = fields["expect"] ?? fields["forbid"]
            let then = thenNode.map { self.pattern($0, what: "'\(outcome?.rawValue ?? "expect")' of check '\(name)'") } ?? nil
            var within: Double?
            if let node = fields["within"] {
                within = self.duration(node, "within of check '\(name)'", allowsZero: false)
            } else {
                self.fail(node, "check '\(name)' needs 'within', the window after the stimulus (90s, 5m)")
            }
            var versions: Set<OCPPVersion>?
            if let node = fields["version"] {
                let names = self.strings(node) ?? []
                versions = Set(names.compactMap(OCPPVersion.init(rawValue:)))
                if names.isEmpty || versions?.count != names.count {
                    self.fail(node, "version must be 1.6, 2.0.1 or 2.1 (or a list of them); quote it in YAML: \"1.6\"")
                }
            }
            guard let area, let when, let outcome, let then, let within, within > 0 else { return nil }
            return WitnessCheck(
                name: name, area: area, description: fields["description"]?.string ?? "", when: when, outcome: outcome, then: then, within: within,
                versions: versions
            )
        }

        mutating func pattern(_ node: Node, what: String) -> EventPattern? {
            guard let pairs = self.mapping(node) else {
                self.fail(node, "\(what) must be a mapping (event, direction, type, action, fault, injected, payload, connection, connector)")
                return nil
            }
            self.checkKeys(pairs, allowed: ["event", "direction", "type", "action", "fault", "injected", "payload", "connection", "connector"], in: what, node: node)
            var pattern = EventPattern()
            for (key, value) in pairs {
                switch key {
                case "event":
                    guard let event = value.string.flatMap(EventPattern.Event.init(rawValue:)) else {
                        self.fail(value, "event must be message, open, close or reject")
                        continue
                    }
                    pattern.event = event
                case "direction": pattern.direction = self.direction(value)
                case "type": pattern.messageTypes = self.messageTypes(value)
                case "action": pattern.actions = self.actions(value)
                case "fault":
                    guard let rules = self.strings(value) else {
                        self.fail(value, "fault must be the name of a policy rule (or admin), or a list of them")
                        continue
                    }
                    pattern.faults = Set(rules)
                case "injected":
                    guard let flag = value.bool else {
                        self.fail(value, "injected must be true or false")
                        continue
                    }
                    pattern.injected = flag
                case "payload":
                    pattern.payload = self.checkConditions(value)
                case "connection":
                    guard let scope = value.string.flatMap(EventPattern.ConnectionScope.init(rawValue:)) else {
                        self.fail(value, "connection must be any, same or later")
                        continue
                    }
                    pattern.connection = scope
                case "connector":
                    guard let scope = value.string.flatMap(EventPattern.ConnectorScope.init(rawValue:)) else {
                        self.fail(value, "connector must be any or same")
                        continue
                    }
                    pattern.connector = scope
                default:
                    break
                }
            }
            if pattern.event != .message, pairs.contains(where: { ["direction", "type", "action", "fault", "injected", "payload"].contains($0.0) }) {
                self.fail(node, "\(what): a '\(pattern.event.rawValue)' event has no message fields; give only 'event' and 'connection'")
            }
            if pattern.event != .message, pattern.connector != .any {
                self.fail(node, "\(what): connector applies to messages; a '\(pattern.event.rawValue)' event is about no connector")
            }
            return pattern
        }

        mutating func checkConditions(_ node: Node) -> [CheckCondition] {
            let tests = ["equals", "notEquals", "matches", "atMost", "atLeast", "exists", "sameAs"]
            guard case .sequence(let sequence) = node else {
                self.fail(node, "payload must be a list of {path, and one of: \(tests.joined(separator: ", "))}")
                return []
            }
            var conditions: [CheckCondition] = []
            for item in sequence {
                guard let pairs = self.mapping(item) else {
                    self.fail(item, "a payload condition is a mapping with 'path' and one of: \(tests.joined(separator: ", "))")
                    continue
                }
                self.checkKeys(pairs, allowed: Set(["path"] + tests), in: "a payload condition", node: item)
                let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
                guard let path = fields["path"]?.string, Self.isPointer(path) else {
                    self.fail(item, "a payload condition needs 'path', a JSON pointer such as /connectorId (or call:/idTag, the CALL an answer answers)")
                    continue
                }
                let given = tests.filter { fields[$0] != nil }
                guard given.count == 1, let key = given.first, let value = fields[key] else {
                    self.fail(item, "a payload condition needs exactly one of: \(tests.joined(separator: ", "))")
                    continue
                }
                let test: CheckCondition.Test
                switch key {
                case "equals": test = .equals(Self.json(value))
                case "notEquals": test = .notEquals(Self.json(value))
                case "matches":
                    guard let pattern = try? Pattern(value.string ?? "") else {
                        self.fail(value, "'\(value.string ?? "")' is not a valid regular expression")
                        continue
                    }
                    test = .matches(pattern)
                case "atMost", "atLeast":
                    guard let limit = value.float, case .scalar(let scalar) = value, Double(scalar.string) != nil else {
                        self.fail(value, "\(key) must be a number")
                        continue
                    }
                    test = key == "atMost" ? .atMost(limit) : .atLeast(limit)
                case "exists":
                    guard let flag = value.bool else {
                        self.fail(value, "exists must be true or false")
                        continue
                    }
                    test = .exists(flag)
                default:
                    guard let other = value.string, Self.isPointer(other) else {
                        self.fail(value, "sameAs must be a JSON pointer into the stimulus (call:/idTag for the CALL it answers)")
                        continue
                    }
                    test = .sameAs(other)
                }
                conditions.append(CheckCondition(pointer: path, test: test))
            }
            return conditions
        }

        static func isPointer(_ path: String) -> Bool {
            let pointer = path.hasPrefix("call:") ? String(path.dropFirst(5)) : path
            return pointer.isEmpty || pointer.hasPrefix("/")
        }

        mutating func rule(_ node: Node, index: Int) -> FaultRule? {
            guard let pairs = self.mapping(node) else {
                self.fail(node, "rule \(index + 1) must be a mapping with 'name', 'match' and 'fault'")
                return nil
            }
            self.checkKeys(pairs, allowed: ["name", "match", "fault", "description"], in: "a rule", node: node)
            let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
            let name = fields["name"]?.string ?? "rule-\(index + 1)"
            let match = fields["match"].map { self.match($0, rule: name) } ?? FaultMatch()
            guard let faultNode = fields["fault"] else {
                self.fail(node, "rule '\(name)' has no 'fault'")
                return nil
            }
            guard let fault = self.fault(faultNode, rule: name) else { return nil }
            return FaultRule(name: name, match: match ?? FaultMatch(), fault: fault)
        }

        mutating func strings(_ node: Node) -> [String]? {
            if let text = node.string, case .scalar = node { return [text] }
            if case .sequence(let sequence) = node {
                let values = sequence.compactMap(\.string)
                if values.count == sequence.count { return values }
            }
            return nil
        }

        mutating func match(_ node: Node, rule: String) -> FaultMatch? {
            guard let pairs = self.mapping(node) else {
                self.fail(node, "'match' of rule '\(rule)' must be a mapping")
                return nil
            }
            self.checkKeys(
                pairs,
                allowed: [
                    "direction", "type", "action", "chargePoint", "vendor", "model", "firmware", "payload", "probability", "nth", "first", "every",
                    "after", "before", "from", "transactionFor",
                ],
                in: "'match' of rule '\(rule)'", node: node
            )
            var match = FaultMatch()
            for (key, value) in pairs {
                switch key {
                case "direction": match.direction = self.direction(value)
                case "type": match.messageTypes = self.messageTypes(value)
                case "action": match.actions = self.actions(value)
                case "chargePoint":
                    guard let patterns = self.strings(value) else {
                        self.fail(value, "chargePoint must be a glob or a list of globs")
                        continue
                    }
                    match.chargePoint = patterns.map(Glob.init)
                case "vendor", "model", "firmware":
                    guard let text = value.string else {
                        self.fail(value, "\(key) must be a glob")
                        continue
                    }
                    if key == "vendor" { match.vendor = Glob(text) } else if key == "model" { match.model = Glob(text) } else { match.firmware = Glob(text) }
                case "payload":
                    match.payload = self.payload(value)
                case "probability":
                    guard let probability = value.float, (0...1).contains(probability) else {
                        self.fail(value, "probability must be a number from 0 to 1")
                        continue
                    }
                    match.probability = probability
                case "nth", "first", "every":
                    guard let count = value.int, count > 0 else {
                        self.fail(value, "\(key) must be a positive integer")
                        continue
                    }
                    if key == "nth" { match.nth = count } else if key == "first" { match.first = count } else { match.every = count }
                case "after", "before":
                    guard let seconds = self.duration(value, "\(key) of rule '\(rule)'") else { continue }
                    if key == "after" { match.after = seconds } else { match.before = seconds }
                case "transactionFor":
                    guard let seconds = self.duration(value, "transactionFor of rule '\(rule)'") else { continue }
                    match.transactionFor = seconds
                case "from":
                    switch value.string {
                    case "start": match.fromConnection = false
                    case "connection": match.fromConnection = true
                    default: self.fail(value, "from must be start or connection")
                    }
                default:
                    break
                }
            }
            if let after = match.after, let before = match.before, before <= after {
                self.fail(node, "'before' must be later than 'after' in rule '\(rule)'")
            }
            return match
        }

        mutating func payload(_ node: Node) -> [PayloadCondition] {
            guard case .sequence(let sequence) = node else {
                self.fail(node, "payload must be a list of {path, equals} or {path, matches}")
                return []
            }
            var conditions: [PayloadCondition] = []
            for item in sequence {
                guard let pairs = self.mapping(item) else {
                    self.fail(item, "a payload condition is a mapping with 'path' and 'equals' or 'matches'")
                    continue
                }
                self.checkKeys(pairs, allowed: ["path", "equals", "matches"], in: "a payload condition", node: item)
                let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
                guard let path = fields["path"]?.string, path.hasPrefix("/") || path.isEmpty else {
                    self.fail(item, "a payload condition needs 'path', a JSON pointer such as /connectorId")
                    continue
                }
                var condition = PayloadCondition(pointer: path)
                if let equals = fields["equals"] { condition.equals = Self.json(equals) }
                if let matches = fields["matches"] {
                    do {
                        condition.matches = try Pattern(matches.string ?? "")
                    } catch {
                        self.fail(matches, "'\(matches.string ?? "")' is not a valid regular expression")
                    }
                }
                if condition.equals == nil && condition.matches == nil {
                    self.fail(item, "a payload condition needs 'equals' or 'matches'")
                }
                conditions.append(condition)
            }
            return conditions
        }

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

        /// A duration in seconds (`90`, `2.5`) or with a unit (`500ms`, `90s`, `5m`, `24h`, `7d`), bounded as every
        /// duration is (`BoundedDuration`: finite, not negative, at most 30 days); nil, with the error noted, otherwise.
        mutating func duration(_ node: Node, _ field: String, allowsZero: Bool = true) -> Double? {
            guard case .scalar(let scalar) = node else {
                self.fail(node, "\(field) must be a duration: seconds, or with a unit (500ms, 90s, 5m, 1h)")
                return nil
            }
            do {
                guard let duration = try BoundedDuration.parse(scalar.string, field: field, allowsZero: allowsZero) else {
                    self.fail(node, "\(field) must be a duration: seconds, or with a unit (500ms, 90s, 5m, 1h); got '\(scalar.string)'")
                    return nil
                }
                return duration.seconds
            } catch {
                self.fail(node, error.description)
                return nil
            }
        }

        /// A whole number of milliseconds, not negative and at most 30 days; nil, with the error noted, otherwise.
        mutating func milliseconds(_ node: Node, _ field: String) -> Int? {
            guard case .scalar(let scalar) = node, let value = Double(scalar.string), value == value.rounded(.towardZero) || !value.isFinite else {
                self.fail(node, "\(field) must be a whole number of milliseconds")
                return nil
            }
            do {
                return Int(try BoundedDuration(milliseconds: value, field: field).milliseconds)
            } catch {
                self.fail(node, error.description)
                return nil
            }
        }
    }
}

/// Every problem found in a policy file, in file order.
public struct PolicyErrors: Error, CustomStringConvertible, Sendable {
    public var errors: [PolicyError]
    public var description: String { self.errors.map(\.description).joined(separator: "\n") }
}
