import OCPPWire
import Yams

/// The fault rules of a policy: names and matchers (direction, type, action, identity globs, payload conditions, counting, time windows).
extension PolicyLoader.Reader {
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
}
