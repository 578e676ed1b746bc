import Foundation
import OCPPWire

/// A charger setting the analyzer judges metering and offline authorization by: its configuration key in
/// OCPP 1.6 (section 9) and its component and variable in 2.0.1/2.1 (Part 2, Appendices, "Referenced
/// Components and Variables"). A site policy can declare the value the site wants; the capture can show
/// the value the charger has.
public enum ChargerSetting: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Seconds between periodic meter readings during a transaction.
    case sampleInterval
    /// Seconds between clock-aligned meter readings, on a grid from midnight.
    case clockAlignedInterval
    /// The measurands of periodic readings.
    case sampledMeasurands
    /// The measurands of the readings a transaction's end carries.
    case stopMeasurands
    /// Whether the charger authorizes known identifiers (local list, cache) itself while offline.
    case localAuthorizeOffline
    /// Whether the charger starts transactions offline for identifiers it does not know.
    case unknownIdsOffline
    /// Whether the local authorization list is in use.
    case localList
    /// Whether the charger stops a transaction the backend answers with an invalid identifier.
    case stopOnInvalidId

    public static func < (lhs: Self, rhs: Self) -> Bool { allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)! }

    public enum Kind: Sendable { case seconds, measurands, flag }

    public var kind: Kind {
        switch self {
        case .sampleInterval, .clockAlignedInterval: return .seconds
        case .sampledMeasurands, .stopMeasurands: return .measurands
        default: return .flag
        }
    }

    /// The 1.6 configuration key (OCPP 1.6 9.1, 9.4).
    public var key16: String {
        switch self {
        case .sampleInterval: return "MeterValueSampleInterval"
        case .clockAlignedInterval: return "ClockAlignedDataInterval"
        case .sampledMeasurands: return "MeterValuesSampledData"
        case .stopMeasurands: return "StopTxnSampledData"
        case .localAuthorizeOffline: return "LocalAuthorizeOffline"
        case .unknownIdsOffline: return "AllowOfflineTxForUnknownId"
        case .localList: return "LocalAuthListEnabled"
        case .stopOnInvalidId: return "StopTransactionOnInvalidId"
        }
    }

    /// The 2.0.1/2.1 component and variable (instance-less, attribute Actual).
    public var variable201: (component: String, variable: String) {
        switch self {
        case .sampleInterval: return ("SampledDataCtrlr", "TxUpdatedInterval")
        case .clockAlignedInterval: return ("AlignedDataCtrlr", "Interval")
        case .sampledMeasurands: return ("SampledDataCtrlr", "TxUpdatedMeasurands")
        case .stopMeasurands: return ("SampledDataCtrlr", "TxEndedMeasurands")
        case .localAuthorizeOffline: return ("AuthCtrlr", "LocalAuthorizeOffline")
        case .unknownIdsOffline: return ("AuthCtrlr", "OfflineTxForUnknownIdEnabled")
        case .localList: return ("LocalAuthListCtrlr", "Enabled")
        case .stopOnInvalidId: return ("TxCtrlr", "StopTxOnInvalidId")
        }
    }

    /// How the setting is named for `version`: `MeterValueSampleInterval`, `SampledDataCtrlr.TxUpdatedInterval`.
    public func name(for version: OCPPVersion) -> String {
        version == .v16 ? self.key16 : "\(self.variable201.component).\(self.variable201.variable)"
    }

    public static func named16(_ key: String) -> ChargerSetting? {
        Self.byKey16[key.lowercased()]
    }

    public static func named201(component: String, variable: String) -> ChargerSetting? {
        Self.by201["\(component).\(variable)".lowercased()]
    }

    private static let byKey16 = Dictionary(uniqueKeysWithValues: allCases.map { ($0.key16.lowercased(), $0) })
    private static let by201 = Dictionary(uniqueKeysWithValues: allCases.map { ("\($0.variable201.component).\($0.variable201.variable)".lowercased(), $0) })
}

/// A setting's value, as a policy declares it or a charger reports it.
public enum SettingValue: Sendable, Hashable, CustomStringConvertible {
    case seconds(Double)
    case measurands([String])
    case flag(Bool)

    /// Reads a configuration value as chargers write it: `"10"`, `"true"`, a comma-separated list. Nil when
    /// it is not a value of the setting's kind.
    public static func parse(_ text: String, as kind: ChargerSetting.Kind) -> SettingValue? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .seconds:
            // At most 30 days, as every duration the tool reads: a hostile 1e13 must not reach an integer conversion.
            guard let seconds = Double(trimmed), seconds.isFinite, seconds >= 0, seconds <= Self.longestSeconds else { return nil }
            return .seconds(seconds)
        case .measurands:
            return .measurands(trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        case .flag:
            switch trimmed.lowercased() {
            case "true": return .flag(true)
            case "false": return .flag(false)
            default: return nil
            }
        }
    }

    public static let longestSeconds: Double = 30 * 86_400

    public var seconds: Double? { if case .seconds(let value) = self { value } else { nil } }
    public var measurands: [String]? { if case .measurands(let value) = self { value } else { nil } }
    public var flag: Bool? { if case .flag(let value) = self { value } else { nil } }

    public var description: String {
        switch self {
        case .seconds(let value): return value.plainText + " s"
        case .measurands(let list): return list.isEmpty ? "(none)" : list.joined(separator: ",")
        case .flag(let value): return value ? "true" : "false"
        }
    }

    /// Whether two values say the same: measurand lists in any order.
    public func agrees(with other: SettingValue) -> Bool {
        switch (self, other) {
        case (.measurands(let lhs), .measurands(let rhs)): return Set(lhs) == Set(rhs)
        default: return self == other
        }
    }
}

/// What a site allows and needs of its chargers, declared in a policy's `site:` section (docs/policies.md,
/// "Site declarations"). The analyzer judges metering and offline authorization by what the capture shows of
/// a charger's configuration and, where it shows nothing, by this; a charger configured otherwise than the
/// site declares is a finding.
public struct SiteDeclaration: Sendable, Equatable {
    public var settings: [ChargerSetting: SettingValue] = [:]
    /// What the site requires of each remote command (by action), for `commandRequirements` checks.
    public var commands: [String: CommandRequirement] = [:]
    /// How far a transaction's median interval between periodic readings may be from the configured one, as a
    /// fraction of it (never less than the clock tolerance).
    public var intervalTolerance: Double?
    /// The site's tariff, against which each transaction's price is reconciled (docs/billing.md).
    public var tariff: Tariff?
    /// Where the declaration came from (`policy-file:line`), for findings.
    public var source: String = ""

    public init(settings: [ChargerSetting: SettingValue] = [:], intervalTolerance: Double? = nil, source: String = "") {
        self.settings = settings
        self.intervalTolerance = intervalTolerance
        self.source = source
    }

    public var isEmpty: Bool { self.settings.isEmpty && self.intervalTolerance == nil && self.commands.isEmpty && self.tariff == nil }

    /// The declarations of several policies in one: each setting may be declared by one of them, or by
    /// several alike; a setting declared two ways is an error.
    public static func merged(_ declarations: [SiteDeclaration]) throws -> SiteDeclaration {
        var merged = SiteDeclaration()
        var sources: [String] = []
        for declaration in declarations where !declaration.isEmpty {
            for (setting, value) in declaration.settings {
                if let known = merged.settings[setting], !known.agrees(with: value) {
                    throw PolicyErrors(errors: [
                        PolicyError(file: declaration.source, message: "site setting \(setting.rawValue) is declared \(value) here and \(known) in another policy; a site has one value")
                    ])
                }
                merged.settings[setting] = value
            }
            for (action, requirement) in declaration.commands {
                if let known = merged.commands[action], known != requirement {
                    throw PolicyErrors(errors: [PolicyError(file: declaration.source, message: "site requirement for \(action) is declared twice, differently")])
                }
                merged.commands[action] = requirement
            }
            if let tariff = declaration.tariff {
                if let known = merged.tariff, known != tariff {
                    throw PolicyErrors(errors: [PolicyError(file: declaration.source, message: "site tariff is declared twice, differently; a site has one tariff")])
                }
                merged.tariff = tariff
            }
            if let tolerance = declaration.intervalTolerance {
                if let known = merged.intervalTolerance, known != tolerance {
                    throw PolicyErrors(errors: [PolicyError(file: declaration.source, message: "site intervalTolerance is declared twice, differently")])
                }
                merged.intervalTolerance = tolerance
            }
            sources.append(declaration.source)
        }
        merged.source = sources.joined(separator: ", ")
        return merged
    }
}

/// What a site requires of one remote command: answered within, carried out within (its effect on the wire,
/// docs/reports.md "Remote commands"), and the least share of those sent that must be carried out.
public struct CommandRequirement: Sendable, Equatable {
    public var answerWithin: Double?
    public var effectWithin: Double?
    /// A fraction from 0 to 1.
    public var carriedOut: Double?

    public init(answerWithin: Double? = nil, effectWithin: Double? = nil, carriedOut: Double? = nil) {
        self.answerWithin = answerWithin
        self.effectWithin = effectWithin
        self.carriedOut = carriedOut
    }
}

/// A site's tariff (docs/billing.md): what a session costs by its energy, its time charging and its time parked
/// after a grace period, plus a fee; in one currency, with or without tax, rounded to a step.
public struct Tariff: Sendable, Hashable {
    public var currency: String
    public var perKWh: Double = 0
    public var perChargingHour: Double = 0
    public var perParkingHour: Double = 0
    public var parkingGraceSeconds: Double = 0
    public var sessionFee: Double = 0
    /// The prices include tax; else `taxRate` is added, since the backend's total (2.0.1 totalCost) includes it.
    public var includesTax = true
    public var taxRate: Double = 0
    /// The step a price is rounded to, half up (0.01).
    public var rounding: Double = 0.01

    public init(currency: String) { self.currency = currency }
}
