import Foundation
import OCPPWire
import WitnessPolicy

/// How a feature was claimed, for one pair.
public enum FeatureClaim: String, Sendable, Hashable {
    /// Every implementation of the version must support it.
    case required
    /// The charger (its configuration) or its vendor (a declaration) says it is there.
    case claimed
    /// The charger says it is not (1.6 SupportedFeatureProfiles without it; 2.0.1 `Available` false), or its vendor.
    case notClaimed
    /// The vendor declares it an option the unit may lack.
    case optional
    /// Nothing on the wire or in a declaration says.
    case unknown
}

/// A feature's verdict for one pair (docs/reports.md, "Features").
public enum FeatureVerdict: String, Sendable, Hashable, CaseIterable {
    /// Claimed (or required), and the charger refused it: CALLERROR NotSupported or NotImplemented, or the status
    /// that says so (1.6 SendLocalList NotSupported, GetLocalListVersion -1, SetChargingProfile NotSupported).
    case claimedButRefused
    /// The backend refused the charger's messages of the feature.
    case backendRefused
    /// Used, and it worked, though the charger (or its vendor) does not claim it.
    case usedButNotClaimed
    /// Used, and answered without a refusal.
    case works
    /// Used, and never answered with a result or a refusal: only other CALLERRORs, no answer, or answers the proxy gave.
    case notAnswered
    /// Used and refused, as the claim says (not claimed, optional, or disabled in the configuration).
    case notSupported
    /// Claimed (or required) and never used in the capture.
    case notExercised
    /// Neither claimed nor used.
    case notClaimed
}

/// How one side answered the other's messages of a feature.
public struct FeatureAnswers: Sendable, Hashable {
    /// Answered with a CALLRESULT that is no refusal of the feature (a business `Rejected` included).
    public var answered = 0
    /// Refused: CALLERROR NotSupported or NotImplemented, or a status that refuses the feature.
    public var refused = 0
    /// Another CALLERROR.
    public var errors = 0
}

/// One row of a pair's feature matrix.
public struct FeatureRow: Sendable, Hashable {
    public var feature: Feature
    public var version: OCPPVersion
    public var claim: FeatureClaim = .unknown
    /// The capture line (or declaration) the claim rests on, and what it says.
    public var claimRef: String?
    public var claimSource: String?
    /// Whether the charger's configuration enables it (1.6 LocalAuthListEnabled, 2.0.1 `Enabled`); nil: not shown.
    public var enabled: Bool?
    public var declared: VendorDeclaration.Support?
    public var declaredIn: String?
    /// CALLs of the feature each side sent.
    public var byCharger = 0
    public var byBackend = 0
    /// CALLs the proxy sent for the policy (`inject`): the charger's answers count, the use is not the backend's.
    public var byPolicy = 0
    /// The charger's answers to the backend's CALLs, and the backend's to the charger's.
    public var chargerAnswers = FeatureAnswers()
    public var backendAnswers = FeatureAnswers()
    public var actionsUsed: Set<String> = []
    /// The first use that was not refused, and the first refusal by each side (line, charge point, how).
    public var firstWorking: (ref: String, chargePoint: String)?
    public var chargerRefusal: (ref: String, chargePoint: String, how: String)?
    public var backendRefusal: (ref: String, chargePoint: String, how: String)?
    /// The first refusal that is no other rule's finding (a required action answered NotImplemented is
    /// `rpc.notImplementedRequired`): the one `feature.claimedButRefused` is reported on.
    var reportableRefusal: (ref: String, chargePoint: String, how: String)?

    init(feature: Feature, version: OCPPVersion) {
        self.feature = feature
        self.version = version
        if feature.required { self.claim = .required }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.feature == rhs.feature && lhs.version == rhs.version && lhs.verdict == rhs.verdict && lhs.claim == rhs.claim
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.feature)
        hasher.combine(self.version)
    }

    public var used: Bool { self.byCharger + self.byBackend + self.byPolicy > 0 }

    /// Claimed by the charger or its vendor (or required).
    var claimedAtAll: Bool { self.claim == .required || self.claim == .claimed }

    public var verdict: FeatureVerdict {
        let refusedByCharger = self.chargerAnswers.refused > 0
        if refusedByCharger, self.claimedAtAll, self.enabled != false { return .claimedButRefused }
        if self.backendAnswers.refused > 0 { return .backendRefused }
        let worked = self.firstWorking != nil
        if worked, self.claim == .notClaimed { return .usedButNotClaimed }
        if worked { return .works }
        if self.used { return refusedByCharger ? .notSupported : .notAnswered }
        return self.claimedAtAll ? .notExercised : .notClaimed
    }

    /// One sentence for the matrix and the findings.
    public var sentence: String {
        let claim: String =
            switch self.claim {
            case .required: "required in OCPP \(self.version.rawValue)"
            case .claimed: "claimed" + (self.claimSource.map { " (\($0))" } ?? "")
            case .notClaimed: "not claimed" + (self.claimSource.map { " (\($0))" } ?? "")
            case .optional: "an option per its vendor"
            case .unknown: "not claimed either way"
            }
        let disabled = self.enabled == false ? ", disabled in its configuration" : ""
        switch self.verdict {
        case .claimedButRefused:
            return "\(self.feature.label) is \(claim)\(disabled), and the charger refused it (\(self.chargerRefusal.map { "\($0.how) at \($0.ref)" } ?? "?"))"
        case .backendRefused:
            return "the backend refused the charger's \(self.feature.label) messages (\(self.backendRefusal.map { "\($0.how) at \($0.ref)" } ?? "?"))"
        case .usedButNotClaimed:
            return "\(self.feature.label) worked (\(self.firstWorking?.ref ?? "?")) though it is \(claim)"
        case .works:
            return "\(self.feature.label) worked (\(self.firstWorking?.ref ?? "?")); \(claim)\(disabled)"
        case .notAnswered:
            return "\(self.feature.label) was used (\(self.byCharger + self.byBackend + self.byPolicy) CALLs) and never answered with a result or a refusal; \(claim)"
        case .notSupported:
            return "\(self.feature.label) was refused (\(self.chargerRefusal.map { "\($0.how) at \($0.ref)" } ?? "?")), as it is \(claim)\(disabled)"
        case .notExercised:
            return "\(self.feature.label) is \(claim)\(disabled) and was not used in the capture"
        case .notClaimed:
            return "\(self.feature.label) is \(claim) and was not used"
        }
    }

    var json: JSONValue {
        func answers(_ answers: FeatureAnswers) -> JSONValue {
            ["answered": .int(answers.answered), "refused": .int(answers.refused), "errors": .int(answers.errors)]
        }
        return [
            "feature": .string(self.feature.name), "block": self.feature.block.isEmpty ? .null : .string(self.feature.block),
            "version": .string(self.version.rawValue), "verdict": .string(self.verdict.rawValue), "detail": .string(self.sentence),
            "claim": .string(self.claim.rawValue), "claimRef": self.claimRef.map(JSONValue.string) ?? .null,
            "enabled": self.enabled.map(JSONValue.bool) ?? .null,
            "declared": self.declared.map { .string($0.rawValue) } ?? .null, "declaredIn": self.declaredIn.map(JSONValue.string) ?? .null,
            "callsByCharger": .int(self.byCharger), "callsByBackend": .int(self.byBackend), "callsByPolicy": .int(self.byPolicy),
            "chargerAnswers": answers(self.chargerAnswers), "backendAnswers": answers(self.backendAnswers),
            "actions": .array(self.actionsUsed.sorted().map(JSONValue.string)),
            "firstUse": self.firstWorking.map { .string($0.ref) } ?? .null,
            "refusedBy": self.chargerRefusal.map { _ in "charger" } ?? self.backendRefusal.map { _ in "backend" } ?? .null,
            "refusal": (self.chargerRefusal ?? self.backendRefusal).map { .string("\($0.how) at \($0.ref)") } ?? .null,
        ]
    }
}

/// What the charger says of its features, per pair: 1.6 SupportedFeatureProfiles and the configuration keys of
/// the profiles (GetConfiguration), 2.0.1/2.1 the controllers' `Available` and `Enabled` (GetVariables,
/// NotifyReport). Bounded by the catalog: a few entries per pair.
struct FeatureClaims {
    struct Seen {
        var value: String
        var ref: String
    }

    /// 1.6 keys (SupportedFeatureProfiles and the profiles' keys), and 2.0.1 `Component.Available` / `Component.Enabled`.
    var settings: [String: Seen] = [:]

    static let keys16: Set<String> = {
        var keys: Set<String> = ["SupportedFeatureProfiles"]
        for feature in FeatureCatalog.features(.v16) {
            if case .profile(_, let implied, let enabledBy) = feature.claim {
                keys.formUnion(implied)
                if let enabledBy { keys.insert(enabledBy) }
            }
        }
        return keys
    }()

    static let components: Set<String> = {
        var components: Set<String> = []
        for feature in FeatureCatalog.features(.v21) {
            if case .components(let names) = feature.claim { components.formUnion(names) }
        }
        return components
    }()

    /// Learns from a GetConfiguration or GetVariables answer, or a NotifyReport.
    mutating func learn(action: String, answer: JSONValue?, request: JSONValue?, version: OCPPVersion, ref: String) {
        switch action {
        case "GetConfiguration" where version == .v16:
            for item in answer?["configurationKey"]?.arrayValue ?? [] {
                guard let key = item["key"]?.stringValue, Self.keys16.contains(key), let value = item["value"]?.stringValue else { continue }
                self.settings[key] = Seen(value: value, ref: ref)
            }
        case "GetVariables" where version != .v16:
            for item in answer?["getVariableResult"]?.arrayValue ?? [] {
                guard item["attributeStatus"]?.stringValue == "Accepted", (item["attributeType"]?.stringValue ?? "Actual") == "Actual",
                    let value = item["attributeValue"]?.stringValue
                else { continue }
                self.note(item, value: value, ref: ref)
            }
        case "NotifyReport" where version != .v16:
            for item in request?["reportData"]?.arrayValue ?? [] {
                for attribute in item["variableAttribute"]?.arrayValue ?? [] where (attribute["type"]?.stringValue ?? "Actual") == "Actual" {
                    if let value = attribute["value"]?.stringValue { self.note(item, value: value, ref: ref) }
                }
            }
        default:
            break
        }
    }

    /// A 2.0.1 controller's Available or Enabled, per instance and EVSE (V2XChargingCtrlr is per EVSE); the latest
    /// value of each counts. At most `entriesKept` of them, so a hostile report grows nothing.
    private mutating func note(_ item: JSONValue, value: String, ref: String) {
        guard let component = item["component"]?["name"]?.stringValue, Self.components.contains(component),
            let variable = item["variable"]?["name"]?.stringValue, variable == "Available" || variable == "Enabled"
        else { return }
        let instance = [item["variable"]?["instance"]?.stringValue, item["component"]?["instance"]?.stringValue, item["component"]?["evse"]?["id"].map { JSONWriter.string($0) }]
            .map { $0 ?? "" }.joined(separator: "/")
        let key = "\(component).\(variable)#\(instance)"
        guard self.settings[key] != nil || self.settings.count < Self.entriesKept else { return }
        self.settings[key] = Seen(value: value, ref: ref)
    }

    static let entriesKept = 64

    /// The values of `component.variable` over its instances and EVSEs: true where any says true (with its line).
    private func any(_ component: String, _ variable: String) -> (value: Bool, ref: String)? {
        let seen = self.settings.filter { $0.key.hasPrefix("\(component).\(variable)#") }.sorted { $0.key < $1.key }.map(\.value)
        guard let first = seen.first else { return nil }
        if let yes = seen.first(where: { $0.value.lowercased() == "true" }) { return (true, yes.ref) }
        return (false, first.ref)
    }

    /// The claim the settings make for `row`'s feature.
    func apply(to row: inout FeatureRow) {
        switch row.feature.claim {
        case .profile(let token, let implied, let enabledBy):
            if let enabledBy, let seen = self.settings[enabledBy] { row.enabled = seen.value.lowercased() == "true" }
            guard !row.feature.required else { return }
            if let profiles = self.settings["SupportedFeatureProfiles"] {
                let listed = profiles.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                row.claim = listed.contains(token.lowercased()) ? .claimed : .notClaimed
                row.claimRef = profiles.ref
                row.claimSource = "SupportedFeatureProfiles at \(profiles.ref)"
            } else if let key = implied.sorted().first(where: { self.settings[$0] != nil }), let seen = self.settings[key] {
                row.claim = .claimed
                row.claimRef = seen.ref
                row.claimSource = "its configuration key \(key) at \(seen.ref)"
            }
        case .components(let names):
            // Any of the components that says so: enabled where one is enabled; claimed where one is available, or
            // reports Enabled at all (a controller that has the variable has the feature, enabled or not).
            let enabled = names.sorted().compactMap { name in self.any(name, "Enabled").map { (name, $0) } }
            if !enabled.isEmpty { row.enabled = enabled.contains { $0.1.value } }
            for name in names.sorted() where row.claim != .claimed {
                if let available = self.any(name, "Available") {
                    row.claim = available.value ? .claimed : .notClaimed
                    row.claimRef = available.ref
                    row.claimSource = "\(name).Available = \(available.value) at \(available.ref)"
                } else if let (_, seen) = enabled.first(where: { $0.0 == name }) {
                    row.claim = .claimed
                    row.claimRef = seen.ref
                    row.claimSource = "\(name).Enabled = \(seen.value) at \(seen.ref)"
                }
            }
        case nil:
            break
        }
    }
}

/// Per pair, the features claimed and observed (docs/reports.md, "Features").
struct FeatureObservations {
    struct Key: Hashable {
        var pair: PairKey
        var version: OCPPVersion
        var feature: String
    }

    private(set) var rows: [Key: FeatureRow] = [:]
    private(set) var claims: [PairKey: [OCPPVersion: FeatureClaims]] = [:]
    /// The versions each pair spoke.
    private(set) var versions: [PairKey: Set<OCPPVersion>] = [:]

    mutating func spoke(_ version: OCPPVersion, pair: PairKey) { self.versions[pair, default: []].insert(version) }

    private mutating func update(_ pair: PairKey, _ version: OCPPVersion, _ feature: Feature, _ change: (inout FeatureRow) -> Void) {
        let key = Key(pair: pair, version: version, feature: feature.name)
        change(&self.rows[key, default: FeatureRow(feature: feature, version: version)])
    }

    /// A CALL of a feature's action.
    mutating func called(_ action: String, byCharger: Bool, injected: Bool, version: OCPPVersion, pair: PairKey) {
        guard pair.charger != .unknown, let feature = FeatureCatalog.feature(of: action, version) else { return }
        self.spoke(version, pair: pair)
        self.update(pair, version, feature) { row in
            if injected { row.byPolicy += 1 } else if byCharger { row.byCharger += 1 } else { row.byBackend += 1 }
            row.actionsUsed.insert(action)
        }
    }

    /// The answer to a CALL of a feature's action: `result` for a CALLRESULT, `errorCode` for a CALLERROR.
    /// `reportable`: a refusal here would be no other rule's finding.
    mutating func answered(
        _ action: String, callByCharger: Bool, version: OCPPVersion, pair: PairKey, result: JSONValue?, errorCode: String?,
        ref makeRef: @autoclosure () -> String, chargePoint: String, reportable: Bool = true
    ) {
        guard pair.charger != .unknown, let feature = FeatureCatalog.feature(of: action, version) else { return }
        let refusal = Self.refusal(action, version: version, result: result, errorCode: errorCode)
        self.update(pair, version, feature) { row in
            var answers = callByCharger ? row.backendAnswers : row.chargerAnswers
            // The line is written down once per row and side, not for every answer.
            var ref: String { makeRef() }
            if let refusal {
                answers.refused += 1
                if callByCharger {
                    if row.backendRefusal == nil { row.backendRefusal = (ref, chargePoint, "\(action): \(refusal)") }
                } else {
                    if row.chargerRefusal == nil { row.chargerRefusal = (ref, chargePoint, "\(action): \(refusal)") }
                    if reportable, row.reportableRefusal == nil { row.reportableRefusal = (ref, chargePoint, "\(action): \(refusal)") }
                }
            } else if errorCode != nil {
                answers.errors += 1
            } else {
                answers.answered += 1
                if row.firstWorking == nil { row.firstWorking = (ref, chargePoint) }
            }
            if callByCharger { row.backendAnswers = answers } else { row.chargerAnswers = answers }
        }
    }

    /// Whether an answer refuses the feature itself (not a business `Rejected`), and how.
    static func refusal(_ action: String, version: OCPPVersion, result: JSONValue?, errorCode: String?) -> String? {
        if let errorCode { return errorCode == "NotSupported" || errorCode == "NotImplemented" ? "CALLERROR \(errorCode)" : nil }
        guard version == .v16 else { return nil }
        switch action {
        case "SendLocalList", "SetChargingProfile":
            // 1.6 §7.47 UpdateStatus and §7.11 ChargingProfileStatus: NotSupported.
            return result?["status"]?.stringValue == "NotSupported" ? "status NotSupported" : nil
        case "GetLocalListVersion":
            // 1.6 §5.10: -1 says the charger does not support local lists.
            return result?["listVersion"]?.intValue == -1 ? "listVersion -1" : nil
        default:
            return nil
        }
    }

    mutating func learnClaims(action: String, answer: JSONValue?, request: JSONValue?, version: OCPPVersion, pair: PairKey, ref: String) {
        guard pair.charger != .unknown else { return }
        self.spoke(version, pair: pair)
        self.claims[pair, default: [:]][version, default: FeatureClaims()].learn(action: action, answer: answer, request: request, version: version, ref: ref)
    }

    /// Each pair's matrix: every feature of each version it spoke, claimed, declared and observed. `pairOf` maps a
    /// pair seen before the charger said who it is to the one it turned out to be (not needed: rows are keyed as seen).
    func matrix(declarations: [VendorDeclaration]) -> [PairKey: [FeatureRow]] {
        var matrix: [PairKey: [FeatureRow]] = [:]
        for (pair, versions) in self.versions {
            for version in versions.sorted(by: { $0.rawValue < $1.rawValue }) {
                let declaration = declarations.first {
                    $0.applies(vendor: pair.charger.vendor, model: pair.charger.model, firmware: pair.charger.firmware) && ($0.ocppVersion.map { $0 == version } ?? true)
                }
                for feature in FeatureCatalog.features(version) {
                    var row = self.rows[Key(pair: pair, version: version, feature: feature.name)] ?? FeatureRow(feature: feature, version: version)
                    self.claims[pair]?[version]?.apply(to: &row)
                    if let support = declaration?.features[feature.name] {
                        row.declared = support
                        row.declaredIn = declaration?.source
                        Self.declare(support, source: declaration?.source ?? "", on: &row)
                    }
                    matrix[pair, default: []].append(row)
                }
            }
        }
        return matrix
    }

    /// A declaration stands where the charger's configuration shows nothing (the capture comes first); a vendor's
    /// `optional` makes a refusal no finding.
    private static func declare(_ support: VendorDeclaration.Support, source: String, on row: inout FeatureRow) {
        guard !row.feature.required, row.claim == .unknown else { return }
        switch support {
        case .supported, .implemented: row.claim = .claimed
        case .optional: row.claim = .optional
        case .unsupported: row.claim = .notClaimed
        }
        row.claimSource = "declared \(support.rawValue) in \(source)"
        row.claimRef = source
    }
}
