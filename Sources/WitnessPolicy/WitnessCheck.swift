import OCPPWire

/// The test areas of a structured witness test, in the order a buyer's test plan lists them.
public enum WitnessArea: String, Sendable, Hashable, CaseIterable, Comparable {
    case commissioning
    case authorization
    case communicationLoss
    case smartCharging
    case meteringBilling
    case remoteOperations
    case faultHandling
    case firmwareUpdate
    case dataHandover

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// How the area reads in a report heading.
    public var title: String {
        switch self {
        case .commissioning: return "Commissioning"
        case .authorization: return "Authorization"
        case .communicationLoss: return "Communication loss"
        case .smartCharging: return "Smart charging"
        case .meteringBilling: return "Metering and billing"
        case .remoteOperations: return "Remote operations"
        case .faultHandling: return "Fault handling"
        case .firmwareUpdate: return "Firmware update"
        case .dataHandover: return "Data handover"
        }
    }
}

/// The areas a kind of site needs passed before its pilot is complete (the buyer's guide).
public struct WitnessScope: Sendable, Hashable {
    public var name: String
    public var description: String
    public var areas: [WitnessArea]

    public static let all: [WitnessScope] = {
        let workplace: [WitnessArea] = [.commissioning, .authorization, .communicationLoss, .remoteOperations]
        let semiPublic = workplace + [.meteringBilling, .faultHandling]
        let fleetDepot = semiPublic + [.smartCharging]
        let portfolio = fleetDepot + [.firmwareUpdate, .dataHandover]
        return [
            WitnessScope(name: "workplace", description: "small private workplace", areas: workplace),
            WitnessScope(name: "semi-public", description: "semi-public paid site", areas: semiPublic.sorted()),
            WitnessScope(name: "fleet-depot", description: "fleet depot", areas: fleetDepot.sorted()),
            WitnessScope(name: "portfolio", description: "multi-site portfolio", areas: portfolio.sorted()),
            WitnessScope(name: "cpo", description: "charge point operator: every area, as a matrix", areas: WitnessArea.allCases),
        ]
    }()

    public static func named(_ name: String) -> WitnessScope? { self.all.first { $0.name == name } }
}

/// A pass condition of a witness test: after a stimulus, something must (or must not) happen within a
/// time window, judged from the capture. See docs/policies.md, "Checks".
public struct WitnessCheck: Sendable {
    public enum Outcome: String, Sendable {
        /// A matching event must follow the stimulus within the window.
        case expect
        /// No matching event may follow the stimulus within the window.
        case forbid
    }

    public var name: String
    public var area: WitnessArea
    public var description: String
    /// What starts the window.
    public var when: EventPattern
    public var outcome: Outcome
    /// What must, or must not, happen in the window.
    public var then: EventPattern
    /// The window's length in seconds.
    public var within: Double
    /// The OCPP versions the check is for (nil: every version); a pair that never spoke one of them does not list it.
    public var versions: Set<OCPPVersion>?
    /// A check the charger model judges (`judge:` instead of `when` and `expect`/`forbid`); nil for a window check.
    public var judge: Judgement?

    /// What the charger model judges for a check, once per occurrence (docs/witness-tests.md, "Judged checks").
    public enum Judgement: String, Sendable, CaseIterable {
        /// Each transaction with messages queued during an outage: delivered in order, each once, with the times
        /// they happened (no recovery finding on it).
        case sessionRecovery
        /// Each transaction started while the charger was offline: its identifier was one the site allows offline.
        case offlineAuthorization
        /// Each transaction whose start the backend answered with an identifier not accepted, on a charger that
        /// stops on an invalid identifier: stopped within the window.
        case stopOnInvalidId
        /// Each transaction: periodic readings at the configured interval, without long gaps, with the configured
        /// measurands.
        case meterCadence
        /// Each remote command the site states a requirement for (`site.commands`): answered and carried out in
        /// time; and, per pair and command, the share carried out.
        case commandRequirements
        /// Each feature of the check's area that the pair used: it works as claimed (a feature claimed and refused
        /// fails on the charger's side, one the backend refused on the backend's; one never answered is inconclusive).
        case featuresAsClaimed
        /// Each stopped transaction: its bill reconciles (the backend's final price is the tariff's, the charger's
        /// energies agree) and its signed meter values verify and agree with the unsigned ones.
        case billingReconciles

        /// What an occurrence is, for a verdict sentence.
        public var occurrence: String {
            switch self {
            case .sessionRecovery: return "a transaction with messages queued during an outage"
            case .offlineAuthorization: return "a transaction started while the charger was offline"
            case .stopOnInvalidId: return "a transaction whose start was answered with an identifier not accepted"
            case .meterCadence: return "a transaction with periodic meter readings"
            case .commandRequirements: return "a remote command the site states a requirement for"
            case .featuresAsClaimed: return "use of a feature of this area"
            case .billingReconciles: return "a stopped transaction"
            }
        }
    }

    /// A check the charger model judges.
    public init(name: String, area: WitnessArea, description: String = "", judge: Judgement, within: Double = 0, versions: Set<OCPPVersion>? = nil) {
        self.init(name: name, area: area, description: description, when: EventPattern.never, outcome: .expect, then: EventPattern.never, within: within, versions: versions)
        self.judge = judge
    }

    public init(
        name: String, area: WitnessArea, description: String = "", when: EventPattern, outcome: Outcome, then: EventPattern, within: Double,
        versions: Set<OCPPVersion>? = nil
    ) {
        self.versions = versions
        self.name = name
        self.area = area
        self.description = description
        self.when = when
        self.outcome = outcome
        self.then = then
        self.within = within
    }
}
