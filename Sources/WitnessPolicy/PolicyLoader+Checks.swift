import OCPPWire
import Yams

/// The witness checks of a policy: areas, versions, the stimulus and the expected or forbidden event.
extension PolicyLoader.Reader {
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
        self.checkKeys(pairs, allowed: ["name", "area", "description", "version", "when", "expect", "forbid", "within", "judge"], in: "a check", node: node)
        let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
        let name = fields["name"]?.string ?? "check-\(index + 1)"
        if fields["name"]?.string == nil { self.fail(node, "check \(index + 1) has no 'name'") }
        let areaNames = WitnessArea.allCases.map(\.rawValue).joined(separator: ", ")
        let area = fields["area"]?.string.flatMap(WitnessArea.init(rawValue:))
        if area == nil { self.fail(fields["area"] ?? node, "check '\(name)' needs 'area', one of: \(areaNames)") }
        let versions = fields["version"].flatMap { self.versions($0) }
        if let judgeNode = fields["judge"] {
            return self.judged(judgeNode, name: name, area: area, fields: fields, versions: versions, node: node)
        }
        let when = fields["when"].map { self.pattern($0, what: "'when' of check '\(name)'") } ?? nil
        if fields["when"] == nil { self.fail(node, "check '\(name)' has no 'when' (the stimulus that starts its window)") }
        if let when, when.connector != .any || when.connection != .any, let whenNode = fields["when"] {
            self.fail(whenNode, "'when' of check '\(name)': connection and connector relate an event to the stimulus; give them in 'expect' or 'forbid'")
        }
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
        guard let area, let when, let outcome, let then, let within, within > 0 else { return nil }
        return WitnessCheck(
            name: name, area: area, description: fields["description"]?.string ?? "", when: when, outcome: outcome, then: then, within: within,
            versions: versions
        )
    }

    mutating func versions(_ node: Node) -> Set<OCPPVersion>? {
        let names = self.strings(node) ?? []
        let versions = Set(names.compactMap(OCPPVersion.init(rawValue:)))
        if names.isEmpty || versions.count != names.count {
            self.fail(node, "version must be 1.6, 2.0.1 or 2.1 (or a list of them); quote it in YAML: \"1.6\"")
            return nil
        }
        return versions
    }

    /// A check the charger model judges: `judge:` names what, instead of a stimulus and an outcome.
    mutating func judged(
        _ judgeNode: Node, name: String, area: WitnessArea?, fields: [String: Node], versions: Set<OCPPVersion>?, node: Node
    ) -> WitnessCheck? {
        let names = WitnessCheck.Judgement.allCases.map(\.rawValue).joined(separator: ", ")
        guard let judge = judgeNode.string.flatMap(WitnessCheck.Judgement.init(rawValue:)) else {
            self.fail(judgeNode, "judge of check '\(name)' must be one of: \(names)")
            return nil
        }
        for key in ["when", "expect", "forbid"] where fields[key] != nil {
            self.fail(fields[key], "check '\(name)' is judged by the charger model ('judge'); it has no '\(key)'")
        }
        var within: Double = 0
        if let node = fields["within"] {
            within = self.duration(node, "within of check '\(name)'", allowsZero: false) ?? 0
        } else if judge == .stopOnInvalidId {
            self.fail(node, "check '\(name)' needs 'within', the time the charger has to stop the transaction (90s, 5m)")
            return nil
        }
        guard let area else { return nil }
        return WitnessCheck(name: name, area: area, description: fields["description"]?.string ?? "", judge: judge, within: within, versions: versions)
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
}
