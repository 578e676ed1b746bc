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
            self.checkKeys(pairs, allowed: ["seed", "rules", "checks", "site", "description"], in: "the policy", node: root)
            let fields = Dictionary(pairs, uniquingKeysWith: { first, _ in first })
            var seed: UInt64 = 1
            if let node = fields["seed"] {
                if let value = node.int, value >= 0 { seed = UInt64(value) } else { self.fail(node, "seed must be a non-negative integer") }
            }
            let checks = fields["checks"].map { self.checks($0) } ?? []
            let site = fields["site"].map { self.site($0) } ?? SiteDeclaration()
            // A policy of checks (or site declarations) alone injects nothing; it only judges.
            let rulesNode = fields["rules"] ?? (fields["checks"] != nil || fields["site"] != nil ? .sequence(Node.Sequence([])) : nil)
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
            return FaultPolicy(seed: seed, rules: rules, checks: checks, site: site, source: self.file)
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
