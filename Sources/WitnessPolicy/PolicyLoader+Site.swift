import OCPPWire
import Yams

/// A policy's `site:` section: what the site needs of its chargers' metering and allows offline.
extension PolicyLoader.Reader {
    mutating func site(_ node: Node) -> SiteDeclaration {
        var declaration = SiteDeclaration(source: self.file + (node.mark.map { ":\($0.line)" } ?? ""))
        guard let pairs = self.mapping(node) else {
            self.fail(node, "'site' must be a mapping with 'metering' and/or 'offline'")
            return declaration
        }
        self.checkKeys(pairs, allowed: ["metering", "offline", "commands"], in: "'site'", node: node)
        if let commands = pairs.first(where: { $0.0 == "commands" })?.1 {
            declaration.commands = self.commandRequirements(commands)
        }
        let sections: [(String, [ChargerSetting], [String])] = [
            ("metering", [.sampleInterval, .clockAlignedInterval, .sampledMeasurands, .stopMeasurands], ["intervalTolerance"]),
            ("offline", [.localAuthorizeOffline, .unknownIdsOffline, .localList, .stopOnInvalidId], []),
        ]
        for (section, settings, extra) in sections {
            guard let sectionNode = pairs.first(where: { $0.0 == section })?.1 else { continue }
            guard let fields = self.mapping(sectionNode) else {
                self.fail(sectionNode, "'site.\(section)' must be a mapping")
                continue
            }
            self.checkKeys(fields, allowed: Set(settings.map(\.declaredName) + extra), in: "'site.\(section)'", node: sectionNode)
            for (key, value) in fields {
                if key == "intervalTolerance" {
                    declaration.intervalTolerance = self.fraction(value, "site.metering.intervalTolerance")
                    continue
                }
                guard let setting = settings.first(where: { $0.declaredName == key }) else { continue }
                switch setting.kind {
                case .seconds:
                    if let seconds = self.duration(value, "site.\(section).\(key)") { declaration.settings[setting] = .seconds(seconds) }
                case .measurands:
                    guard let names = self.strings(value) else {
                        self.fail(value, "site.\(section).\(key) must be a list of measurands, such as [Energy.Active.Import.Register, Power.Active.Import]")
                        continue
                    }
                    declaration.settings[setting] = .measurands(names)
                case .flag:
                    guard let flag = value.bool else {
                        self.fail(value, "site.\(section).\(key) must be true or false")
                        continue
                    }
                    declaration.settings[setting] = .flag(flag)
                }
            }
        }
        return declaration
    }

    /// `site.commands`: per action, `answerWithin`, `effectWithin` (durations) and `carriedOut` (a fraction).
    mutating func commandRequirements(_ node: Node) -> [String: CommandRequirement] {
        guard let actions = self.mapping(node) else {
            self.fail(node, "'site.commands' must be a mapping of actions (Reset, RemoteStartTransaction, ...) to requirements")
            return [:]
        }
        var requirements: [String: CommandRequirement] = [:]
        for (action, value) in actions {
            guard FeatureCatalog.allActions.contains(action) else {
                // A misspelt action would never be judged: say so, with the nearest names.
                let near = FeatureCatalog.allActions.filter { $0.lowercased().hasPrefix(String(action.lowercased().prefix(4))) }.sorted()
                self.fail(value, "site.commands: '\(action)' is no OCPP 1.6, 2.0.1 or 2.1 action" + (near.isEmpty ? "" : "; did you mean one of: \(near.joined(separator: ", "))?"))
                continue
            }
            guard let fields = self.mapping(value) else {
                self.fail(value, "site.commands.\(action) must be a mapping with answerWithin, effectWithin and/or carriedOut")
                continue
            }
            self.checkKeys(fields, allowed: ["answerWithin", "effectWithin", "carriedOut"], in: "site.commands.\(action)", node: value)
            var requirement = CommandRequirement()
            for (key, field) in fields {
                switch key {
                case "answerWithin": requirement.answerWithin = self.duration(field, "site.commands.\(action).answerWithin", allowsZero: false)
                case "effectWithin": requirement.effectWithin = self.duration(field, "site.commands.\(action).effectWithin", allowsZero: false)
                case "carriedOut": requirement.carriedOut = self.fraction(field, "site.commands.\(action).carriedOut")
                default: break
                }
            }
            requirements[action] = requirement
        }
        return requirements
    }

    /// A fraction: `0.1` or `10%`, from 0 to 1.
    mutating func fraction(_ node: Node, _ field: String) -> Double? {
        let text = node.string ?? ""
        let value = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard let value, value.isFinite, value >= 0, value <= 1 else {
            self.fail(node, "\(field) must be a fraction from 0 to 1 (0.1) or a percentage (10%); got '\(text)'")
            return nil
        }
        return value
    }
}

extension ChargerSetting {
    /// The field naming the setting in a policy's `site:` section.
    public var declaredName: String {
        switch self {
        case .sampledMeasurands: return "measurands"
        case .localList: return "localList"
        default: return self.rawValue
        }
    }
}
