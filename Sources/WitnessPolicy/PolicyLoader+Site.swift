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
        self.checkKeys(pairs, allowed: ["metering", "offline", "commands", "tariff"], in: "'site'", node: node)
        if let tariff = pairs.first(where: { $0.0 == "tariff" })?.1 {
            declaration.tariff = self.tariff(tariff)
        }
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

    /// `site.tariff`: currency, energy (per kWh), chargingTime (per hour), parking (perHour, grace), sessionFee,
    /// includesTax, taxRate (a fraction), rounding (a step).
    mutating func tariff(_ node: Node) -> Tariff? {
        guard let fields = self.mapping(node) else {
            self.fail(node, "'site.tariff' must be a mapping with currency, energy, chargingTime, parking, sessionFee, includesTax, taxRate and rounding")
            return nil
        }
        self.checkKeys(fields, allowed: ["currency", "energy", "chargingTime", "parking", "sessionFee", "includesTax", "taxRate", "rounding"], in: "site.tariff", node: node)
        guard let currency = fields.first(where: { $0.0 == "currency" })?.1.string, currency.count == 3, currency.allSatisfy(\.isLetter) else {
            self.fail(fields.first(where: { $0.0 == "currency" })?.1 ?? node, "site.tariff.currency must be an ISO 4217 code of three letters (EUR, USD)")
            return nil
        }
        var tariff = Tariff(currency: currency.uppercased())
        func price(_ value: Node, _ name: String) -> Double? {
            guard let number = value.float ?? value.int.map(Double.init), number.isFinite, number >= 0, number < 1e6 else {
                self.fail(value, "\(name) must be a price from 0 to 1000000 in \(tariff.currency)")
                return nil
            }
            return number
        }
        for (key, value) in fields {
            switch key {
            case "energy": tariff.perKWh = price(value, "site.tariff.energy (per kWh)") ?? 0
            case "chargingTime": tariff.perChargingHour = price(value, "site.tariff.chargingTime (per hour)") ?? 0
            case "sessionFee": tariff.sessionFee = price(value, "site.tariff.sessionFee") ?? 0
            case "includesTax":
                if let flag = value.bool { tariff.includesTax = flag } else { self.fail(value, "site.tariff.includesTax must be true or false") }
            case "taxRate": tariff.taxRate = self.fraction(value, "site.tariff.taxRate") ?? 0
            case "rounding":
                if let step = price(value, "site.tariff.rounding"), step > 0 { tariff.rounding = step } else { self.fail(value, "site.tariff.rounding must be a step above 0 (0.01)") }
            case "parking":
                guard let parking = self.mapping(value) else {
                    self.fail(value, "site.tariff.parking must be a mapping with perHour and grace")
                    continue
                }
                self.checkKeys(parking, allowed: ["perHour", "grace"], in: "site.tariff.parking", node: value)
                for (name, field) in parking {
                    if name == "perHour" { tariff.perParkingHour = price(field, "site.tariff.parking.perHour") ?? 0 }
                    if name == "grace" { tariff.parkingGraceSeconds = self.duration(field, "site.tariff.parking.grace", allowsZero: true) ?? 0 }
                }
            default:
                break
            }
        }
        if tariff.includesTax, tariff.taxRate != 0 {
            self.fail(node, "site.tariff.taxRate applies to prices without tax: give includesTax: false with it, or leave it out")
        }
        return tariff
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
