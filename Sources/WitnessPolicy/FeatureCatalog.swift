import OCPPWire

/// An optional (or required) part of an OCPP version, as a buyer's feature matrix names it: a 1.6 feature profile
/// (OCPP 1.6 §3.3), a 2.0.1/2.1 functional block (OCPP 2.0.1 Part 0 §3.2), with the messages that belong to it
/// and how a charger claims it (docs/reports.md, "Features").
public struct Feature: Sendable, Hashable {
    /// The name a declaration and the report use: `SmartCharging`, `LocalAuthListManagement`.
    public var name: String
    /// The 2.0.1/2.1 functional block's letter (`K`), empty for 1.6.
    public var block: String
    /// The messages (actions) that belong to it.
    public var actions: Set<String>
    /// Every implementation of the version must support it (1.6 Core; 2.0.1 the Core certification profile's
    /// blocks): "used but not claimed" does not apply.
    public var required: Bool
    /// How a charger claims it: the 1.6 SupportedFeatureProfiles token, or the 2.0.1/2.1 controller components whose
    /// `Available` (or, where there is none, `Enabled`) variable says it is there. Nil: the wire has no claim for it.
    public var claim: Claim?
    /// The test area whose judged check `featuresAsClaimed` judges it.
    public var area: WitnessArea

    public enum Claim: Sendable, Hashable {
        /// A token of 1.6 SupportedFeatureProfiles; the configuration keys that imply it, and the one that enables it.
        case profile(String, keys: Set<String>, enabledBy: String?)
        /// 2.0.1/2.1 controller components: `Available` claims, `Enabled` enables (either may be missing).
        case components(Set<String>)
    }

    /// The label a matrix shows: `K SmartCharging`, or the 1.6 profile name.
    public var label: String { self.block.isEmpty ? self.name : "\(self.block) \(self.name)" }
}

/// The features of each OCPP version (OCPP 1.6 §3.3 and ch. 9; OCPP 2.0.1 Part 0 §3.2, Part 2 "Referenced
/// Components and Variables", Part 5 §2; OCPP 2.1 Part 0 ch. 2).
public enum FeatureCatalog {
    public static func features(_ version: OCPPVersion) -> [Feature] {
        switch version {
        case .v16: return Self.v16
        case .v201: return Self.v201
        case .v21: return Self.v21
        }
    }

    /// The feature an action belongs to in a version (nil: none the catalog knows, a vendor's own).
    public static func feature(of action: String, _ version: OCPPVersion) -> Feature? {
        switch version {
        case .v16: return Self.byAction16[action]
        case .v201: return Self.byAction201[action]
        case .v21: return Self.byAction21[action]
        }
    }

    public static func named(_ name: String, _ version: OCPPVersion) -> Feature? {
        self.features(version).first { $0.name.lowercased() == name.lowercased() }
    }

    /// Every action of every version.
    public static let allActions: Set<String> = Set((Self.v16 + Self.v21).flatMap(\.actions))

    /// Every name a declaration may use, over all versions.
    public static var allNames: Set<String> { Set((Self.v16 + Self.v21).map(\.name)) }

    static let v16: [Feature] = [
        Feature(
            name: "Core", block: "",
            actions: [
                "Authorize", "BootNotification", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "DataTransfer", "GetConfiguration", "Heartbeat",
                "MeterValues", "RemoteStartTransaction", "RemoteStopTransaction", "Reset", "StartTransaction", "StatusNotification", "StopTransaction",
                "UnlockConnector",
            ],
            required: true, claim: .profile("Core", keys: [], enabledBy: nil), area: .commissioning
        ),
        Feature(
            name: "FirmwareManagement", block: "",
            actions: ["GetDiagnostics", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "UpdateFirmware"],
            required: false, claim: .profile("FirmwareManagement", keys: [], enabledBy: nil), area: .firmwareUpdate
        ),
        Feature(
            name: "LocalAuthListManagement", block: "", actions: ["GetLocalListVersion", "SendLocalList"], required: false,
            claim: .profile("LocalAuthListManagement", keys: ["LocalAuthListMaxLength", "SendLocalListMaxLength"], enabledBy: "LocalAuthListEnabled"),
            area: .authorization
        ),
        Feature(
            name: "Reservation", block: "", actions: ["CancelReservation", "ReserveNow"], required: false,
            claim: .profile("Reservation", keys: ["ReserveConnectorZeroSupported"], enabledBy: nil), area: .remoteOperations
        ),
        Feature(
            name: "SmartCharging", block: "", actions: ["ClearChargingProfile", "GetCompositeSchedule", "SetChargingProfile"], required: false,
            claim: .profile(
                "SmartCharging", keys: ["ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled"],
                enabledBy: nil
            ),
            area: .smartCharging
        ),
        Feature(
            name: "RemoteTrigger", block: "", actions: ["TriggerMessage"], required: false, claim: .profile("RemoteTrigger", keys: [], enabledBy: nil),
            area: .remoteOperations
        ),
        // The security whitepaper (edition 3) defines no SupportedFeatureProfiles token: nothing on the wire claims it.
        Feature(
            name: "Security", block: "",
            actions: [
                "SignCertificate", "CertificateSigned", "InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds", "GetLog",
                "LogStatusNotification", "SecurityEventNotification", "SignedFirmwareStatusNotification", "SignedUpdateFirmware", "ExtendedTriggerMessage",
            ],
            required: false, claim: nil, area: .commissioning
        ),
    ]

    static let v201: [Feature] = [
        // Block A: security events are in the Core profile; client certificates (A02, A03) are Advanced Security (Part 5 §2).
        Feature(name: "Security", block: "A", actions: ["SecurityEventNotification"], required: true, claim: nil, area: .commissioning),
        Feature(name: "AdvancedSecurity", block: "A", actions: ["SignCertificate", "CertificateSigned"], required: false, claim: nil, area: .commissioning),
        Feature(
            name: "Provisioning", block: "B",
            actions: ["BootNotification", "SetVariables", "GetVariables", "GetBaseReport", "GetReport", "NotifyReport", "SetNetworkProfile", "Reset"],
            required: true, claim: nil, area: .commissioning
        ),
        Feature(name: "Authorization", block: "C", actions: ["Authorize", "ClearCache"], required: true, claim: nil, area: .authorization),
        Feature(
            name: "LocalAuthorizationListManagement", block: "D", actions: ["SendLocalList", "GetLocalListVersion"], required: false,
            claim: .components(["LocalAuthListCtrlr"]), area: .authorization
        ),
        Feature(name: "Transactions", block: "E", actions: ["TransactionEvent", "GetTransactionStatus"], required: true, claim: nil, area: .meteringBilling),
        Feature(
            name: "RemoteControl", block: "F", actions: ["RequestStartTransaction", "RequestStopTransaction", "UnlockConnector", "TriggerMessage"],
            required: true, claim: nil, area: .remoteOperations
        ),
        Feature(
            name: "Availability", block: "G", actions: ["StatusNotification", "Heartbeat", "ChangeAvailability", "NotifyEvent"], required: true, claim: nil,
            area: .commissioning
        ),
        Feature(
            name: "Reservation", block: "H", actions: ["ReserveNow", "CancelReservation", "ReservationStatusUpdate"], required: false,
            claim: .components(["ReservationCtrlr"]), area: .remoteOperations
        ),
        Feature(name: "TariffAndCost", block: "I", actions: ["CostUpdated"], required: false, claim: .components(["TariffCostCtrlr"]), area: .meteringBilling),
        Feature(name: "MeterValues", block: "J", actions: ["MeterValues"], required: true, claim: nil, area: .meteringBilling),
        Feature(
            name: "SmartCharging", block: "K",
            actions: [
                "SetChargingProfile", "GetCompositeSchedule", "GetChargingProfiles", "ReportChargingProfiles", "ClearChargingProfile", "NotifyChargingLimit",
                "ClearedChargingLimit", "NotifyEVChargingNeeds", "NotifyEVChargingSchedule",
            ],
            required: false, claim: .components(["SmartChargingCtrlr"]), area: .smartCharging
        ),
        // Block L: the secure firmware update (L01) is Core; publishing firmware (L03, L04) is for local controllers.
        Feature(name: "FirmwareManagement", block: "L", actions: ["UpdateFirmware", "FirmwareStatusNotification"], required: true, claim: nil, area: .firmwareUpdate),
        Feature(
            name: "FirmwarePublishing", block: "L", actions: ["PublishFirmware", "PublishFirmwareStatusNotification", "UnpublishFirmware"], required: false,
            claim: nil, area: .firmwareUpdate
        ),
        // Block M: installing and deleting certificates (M03-M05) is Core; the ISO 15118 ones (M01, M02, M06) are not.
        Feature(
            name: "CertificateManagement", block: "M", actions: ["GetInstalledCertificateIds", "DeleteCertificate", "InstallCertificate"], required: true,
            claim: nil, area: .commissioning
        ),
        Feature(
            name: "ISO15118Certificates", block: "M", actions: ["Get15118EVCertificate", "GetCertificateStatus"], required: false, claim: nil,
            area: .commissioning
        ),
        // Block N splits in two: monitoring is optional (MonitoringCtrlr, the Advanced Device Management profile);
        // logs and customer information are in the Core profile (Part 5 §2).
        Feature(
            name: "Monitoring", block: "N",
            actions: ["GetMonitoringReport", "NotifyMonitoringReport", "SetMonitoringBase", "SetVariableMonitoring", "SetMonitoringLevel", "ClearVariableMonitoring"],
            required: false, claim: .components(["MonitoringCtrlr"]), area: .faultHandling
        ),
        Feature(
            name: "Diagnostics", block: "N", actions: ["GetLog", "LogStatusNotification", "CustomerInformation", "NotifyCustomerInformation"], required: true,
            claim: nil, area: .faultHandling
        ),
        Feature(
            name: "DisplayMessage", block: "O", actions: ["SetDisplayMessage", "GetDisplayMessages", "NotifyDisplayMessages", "ClearDisplayMessage"],
            required: false, claim: .components(["DisplayMessageCtrlr"]), area: .remoteOperations
        ),
        Feature(name: "DataTransfer", block: "P", actions: ["DataTransfer"], required: true, claim: nil, area: .dataHandover),
    ]

    /// 2.1 adds messages to blocks C, I, K, M and N, and the blocks Q, R and S (OCPP 2.1 Part 0 ch. 2).
    static let v21: [Feature] = {
        var features = Self.v201
        func add(_ name: String, _ actions: Set<String>) {
            if let index = features.firstIndex(where: { $0.name == name }) { features[index].actions.formUnion(actions) }
        }
        add("TariffAndCost", ["SetDefaultTariff", "GetTariffs", "ClearTariffs", "ChangeTransactionTariff"])
        add("SmartCharging", ["UsePriorityCharging", "NotifyPriorityCharging", "UpdateDynamicSchedule", "PullDynamicScheduleUpdate"])
        add("ISO15118Certificates", ["GetCertificateChainStatus"])
        add(
            "Monitoring", ["OpenPeriodicEventStream", "GetPeriodicEventStream", "ClosePeriodicEventStream", "AdjustPeriodicEventStream", "NotifyPeriodicEventStream"]
        )
        let payment = features.firstIndex { $0.name == "Authorization" } ?? features.endIndex
        features.insert(
            Feature(
                name: "Payment", block: "C", actions: ["NotifySettlement", "VatNumberValidation", "NotifyWebPaymentStarted"], required: false,
                claim: .components(["PaymentCtrlr"]), area: .meteringBilling
            ),
            at: features.index(after: payment)
        )
        features += [
            Feature(
                name: "BidirectionalPowerTransfer", block: "Q", actions: ["NotifyAllowedEnergyTransfer", "AFRRSignal"], required: false,
                claim: .components(["V2XChargingCtrlr"]), area: .smartCharging
            ),
            Feature(
                name: "DERControl", block: "R",
                actions: ["SetDERControl", "GetDERControl", "ReportDERControl", "ClearDERControl", "NotifyDERStartStop", "NotifyDERAlarm"], required: false,
                claim: .components(["DCDERCtrlr", "ACDERCtrlr"]), area: .smartCharging
            ),
            Feature(name: "BatterySwapping", block: "S", actions: ["BatterySwap", "RequestBatterySwap"], required: false, claim: nil, area: .remoteOperations),
        ]
        return features
    }()

    private static func index(_ features: [Feature]) -> [String: Feature] {
        var byAction: [String: Feature] = [:]
        for feature in features {
            for action in feature.actions where byAction[action] == nil { byAction[action] = feature }
        }
        return byAction
    }

    private static let byAction16 = Self.index(Self.v16)
    private static let byAction201 = Self.index(Self.v201)
    private static let byAction21 = Self.index(Self.v21)
}
