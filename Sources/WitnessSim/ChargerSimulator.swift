import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import OCPPWire

/// Deliberate misbehaviour a simulated charger can show, so the tool has something to find.
public enum ChargerQuirk: String, Sendable, Hashable, CaseIterable {
    /// The energy register in MeterValues drops between two samples.
    case registerGoesBackwards
    /// Meter value timestamps carry no time zone.
    case timestampWithoutZone
    /// Starts charging even when the CSMS answered Authorize with anything but Accepted (Blocked, Invalid, ...).
    case startsDespiteRefusal
    /// After a Reset it boots again but reports connector (EVSE) 1 Faulted instead of Available; the charger as a
    /// whole (connector 0, with more than one connector) and its other connectors come back Available.
    case faultedAfterReset
    /// Does not reboot on an accepted Reset: it answers Accepted and carries on as before.
    case ignoresReset
    /// Once its connection is lost it stays offline (`keepAlive` ends instead of reconnecting).
    case neverReconnects
    /// Accepts a charging profile and keeps drawing its full power.
    case ignoresChargingLimit
    /// Accepts ClearChargingProfile and stays at the limit it had.
    case keepsLimitAfterClear
    /// Answers TriggerMessage Accepted and never sends the message asked for.
    case ignoresTrigger
    /// After a fault it reports Faulted and never Available again.
    case staysFaulted
    /// Sends a second BootNotification on the same connection after being accepted.
    case bootsTwice
    /// Stops (1.6) or ends (2.0.1) its transactions with a transaction id one higher than the real one.
    case stopsWithWrongTransactionId
    /// During a firmware update it reports Downloading and then Installing, never Downloaded.
    case skipsDownloaded
    /// When its connection drops during a transaction, it reconnects and starts a new transaction instead of
    /// carrying on with the old one (which is never stopped).
    case restartsTransactionAfterReconnect
    /// Forgets its charging profiles when its connection drops and charges at full power after reconnecting.
    case forgetsLimitAfterReconnect
    /// Answers GetConfiguration with no keys and GetBaseReport with NotSupported.
    case withholdsConfiguration
    /// Answers RemoteStopTransaction / RequestStopTransaction Accepted and keeps charging.
    case ignoresRemoteStop
    /// Answers Reset and SetChargingProfile Rejected.
    case refusesCommands
    /// Boots without ever reporting its connector status.
    case noStatusAfterBoot
    /// Sends Authorize, gets Accepted, and never starts the transaction.
    case neverStartsAfterAuthorize
    /// Runs its transactions without sending meter values between start and stop.
    case sendsNoMeterValues
    /// Leaves RemoteStartTransaction / RequestStartTransaction unanswered.
    case ignoresRemoteStart
    /// Closes its connection when the CSMS sends something that is not OCPP-J (invalid JSON, say).
    case dropsConnectionOnInvalidJSON
    /// Starts a second transaction on its connector (EVSE) while the first still runs, and never stops the first.
    case doubleBooksConnector
    /// Sends its transactions' meter values (1.6 MeterValues; 2.0.1 Updated events) and its 2.0.1 Ended event
    /// naming the next connector (EVSE) instead of the one the transaction runs on.
    case metersWrongConnector
    /// 1.6: a transaction started while offline is delivered with its StartTransaction stamped at the
    /// reconnection, not when it began.
    case stampsQueuedStartAtDelivery
    /// 2.0.1: events that happened while offline are delivered without `offline: true`.
    case forgetsOfflineFlag
    /// 2.0.1: numbers its transaction's events with a gap (one seqNo skipped).
    case skipsSeqNo
    /// Stamps its whole offline queue (the start and every reading; 2.0.1 every event) when it sends it, after the
    /// reconnection, not when things happened.
    case stampsQueueAtReconnection
    /// After an outage, delivers its queued readings after the transaction's stop (1.6 out of the order things
    /// happened; 2.0.1 events out of seqNo order, which 2.0.1 allows).
    case deliversReadingsAfterStop
    /// Takes its periodic readings every three configured sample intervals (30 s where 10 s is configured).
    case samplesSlowerThanConfigured
    /// Leaves Power.Active.Import out of its periodic readings, though it is a configured measurand.
    case omitsConfiguredMeasurand
    /// Starts a transaction while offline with an identifier the backend refused before (its cache says so).
    case startsOfflineForRefusedTag
    /// Goes on charging a transaction whose start the backend answered with an identifier not accepted,
    /// though it is configured to stop on an invalid identifier.
    case keepsChargingOnInvalidId
    /// Answers the smart-charging commands (SetChargingProfile, ClearChargingProfile, GetCompositeSchedule) with
    /// CALLERROR NotSupported, whatever its configuration claims (SupportedFeatureProfiles, SmartChargingCtrlr.Available).
    case refusesClaimedFeature
    /// Answers UnlockConnector Unlocked, but only after two seconds (a slow lock motor, a busy firmware).
    case answersUnlockLate
}

/// What `chargingSession` came to.
public enum ChargingOutcome: Sendable, Equatable {
    /// Energy was delivered in a transaction.
    case charged
    /// The CSMS did not accept the idTag (its status), so no transaction was started.
    case refused(String)
    /// The idTag was accepted and no transaction followed (`neverStartsAfterAuthorize`).
    case notStarted
}

/// Who a simulated charger is.
public struct ChargerProfile: Sendable, Hashable {
    public var id: String
    public var vendor: String
    public var model: String
    public var firmware: String
    public var serialNumber: String
    public var version: OCPPVersion
    public var password: String?
    public var quirks: Set<ChargerQuirk>
    /// Connectors (1.6) or EVSEs of one connector each (2.0.1, 2.1). With more than one, the charger also reports
    /// its own status (connector 0 in 1.6) after booting.
    public var connectors: Int
    /// Its configuration at power-up, by 1.6 key (2.0.1/2.1 read the same settings as controller variables,
    /// `ChargerSimulator.variables`). A MeterValueSampleInterval above 0 makes sessions stamp their periodic
    /// readings that far apart (time-compressed: the session is dated back so that its last reading is now).
    public var configuration: [String: String]

    public init(
        id: String, vendor: String = "Witness Labs", model: String = "SimCharger 22", firmware: String = "1.0.0",
        serialNumber: String? = nil, version: OCPPVersion = .v16, password: String? = nil, quirks: Set<ChargerQuirk> = [], connectors: Int = 1,
        configuration: [String: String] = [:]
    ) {
        self.connectors = max(1, connectors)
        self.configuration = ["HeartbeatInterval": "300"].merging(configuration) { _, given in given }
        self.id = id
        self.vendor = vendor
        self.model = model
        self.firmware = firmware
        self.serialNumber = serialNumber ?? "SN-" + id
        self.version = version
        self.password = password
        self.quirks = quirks
    }
}

/// A simulated charger: boots, reports status, heartbeats, authorizes and charges, and answers the
/// CSMS's remote start and reset like real firmware does.
public final class ChargerSimulator: Sendable {
    public let profile: ChargerProfile
    public let url: WebSocketURL
    private let options: OCPPClientOptions
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private struct State {
        var endpoint: OCPPEndpoint?
        var meterWh = 10_000
        var transactionSeq = 0
        var remoteStarts = 0
        var resets = 0
        var reboots = 0
        var powerLimitW: Int?
        /// A charging profile was set: from then on the meter values report power, limited or not.
        var reportsPower = false
        var firmwareUpdates = 0
        /// Connections opened so far; a transaction message that finds a new one was cut off and resent.
        var connections = 0
        /// The running transaction's id, and whether the CSMS asked for it to stop.
        var transactionId: JSONValue?
        var stopRequested = false
        var callsCompleted = 0
        var callErrors = 0
        /// `disconnect()` was called: a reboot still pending from a Reset does not bring the charger back.
        var switchedOff = false
        /// What firmware does after an answer (a reboot, a triggered message, a report), still running.
        var followUps: [Int: Task<Void, Never>] = [:]
        var nextFollowUp = 0
        /// Its configuration by 1.6 key, as ChangeConfiguration and SetVariables leave it.
        var configuration: [String: String] = [:]
        /// Identifiers the backend answered with a status other than Accepted (its authorization cache).
        var refusedTags: Set<String> = []
    }

    /// `baseURL` is the CSMS (or proxy) address without the charge point id; the id is appended.
    public init(profile: ChargerProfile, baseURL: WebSocketURL, tls: OCPPClientOptions? = nil, group: any EventLoopGroup) {
        self.profile = profile
        var url = baseURL
        url.pathPrefix = baseURL.pathPrefix + "/" + ChargerRequestTarget.percentEncodeComponent(profile.id)
        self.url = url
        var options = tls ?? OCPPClientOptions(subprotocols: [])
        options.subprotocols = [profile.version.subprotocol]
        if let password = profile.password { options.basicAuth = (profile.id, password) }
        self.options = options
        self.group = group
        self.state.withLockedValue { $0.configuration = profile.configuration }
    }

    /// The 2.0.1/2.1 controller variables for the 1.6 keys the simulator knows (component, variable, key).
    static let variables: [(component: String, variable: String, key: String)] = [
        ("OCPPCommCtrlr", "HeartbeatInterval", "HeartbeatInterval"),
        ("SampledDataCtrlr", "TxUpdatedInterval", "MeterValueSampleInterval"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "MeterValuesSampledData"),
        ("SampledDataCtrlr", "TxEndedMeasurands", "StopTxnSampledData"),
        ("AlignedDataCtrlr", "Interval", "ClockAlignedDataInterval"),
        ("AuthCtrlr", "LocalAuthorizeOffline", "LocalAuthorizeOffline"),
        ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "AllowOfflineTxForUnknownId"),
        ("LocalAuthListCtrlr", "Enabled", "LocalAuthListEnabled"),
        ("TxCtrlr", "StopTxOnInvalidId", "StopTransactionOnInvalidId"),
        // What the charger claims of its features (no 1.6 key: SupportedFeatureProfiles lists them).
        ("SmartChargingCtrlr", "Available", "SmartChargingCtrlr.Available"),
        ("ReservationCtrlr", "Available", "ReservationCtrlr.Available"),
    ]

    static func key(component: String?, variable: String?) -> String? {
        Self.variables.first { $0.component == component && $0.variable == variable }?.key
    }

    /// A configuration value by 1.6 key.
    public func setting(_ key: String) -> String? { self.state.withLockedValue { $0.configuration[key] } }

    /// The configured sample interval, if above 0, and how far apart this charger stamps its periodic readings.
    private var readingSpacing: Duration? {
        guard let seconds = self.setting("MeterValueSampleInterval").flatMap(Int.init), seconds > 0 else { return nil }
        return .seconds(self.profile.quirks.contains(.samplesSlowerThanConfigured) ? 3 * seconds : seconds)
    }

    /// The power a periodic reading reports: with a limit in force, or when Power.Active.Import is configured.
    private func readingPower() -> Int? {
        if let power = self.activePowerW { return power }
        let configured = (self.setting("MeterValuesSampledData") ?? "").split(separator: ",").map { String($0.filter { $0 != " " }) }
        guard configured.contains("Power.Active.Import"), !self.profile.quirks.contains(.omitsConfiguredMeasurand) else { return nil }
        return Self.maximumPowerW
    }

    public var endpoint: OCPPEndpoint? { self.state.withLockedValue { $0.endpoint } }
    /// CALLs that got a CALLRESULT, and those that got a CALLERROR or no answer.
    public var counts: (completed: Int, errors: Int) { self.state.withLockedValue { ($0.callsCompleted, $0.callErrors) } }
    public var remoteStartsAccepted: Int { self.state.withLockedValue { $0.remoteStarts } }
    public var resetsAccepted: Int { self.state.withLockedValue { $0.resets } }

    /// Opens the WebSocket and installs the handler for CSMS-initiated CALLs.
    @discardableResult
    public func connect() async throws -> OCPPEndpoint {
        self.state.withLockedValue { $0.switchedOff = false }
        let endpoint = try await OCPPClient.connect(to: self.url, options: self.options, group: self.group, idPrefix: "\(self.profile.id)-")
        endpoint.onCall { [self] action, payload in try await self.answer(action, payload) }
        if self.profile.quirks.contains(.dropsConnectionOnInvalidJSON) {
            endpoint.onMalformed { [weak endpoint] _ in
                guard let endpoint else { return }
                Task { await endpoint.close(code: .protocolError, reason: "cannot read the CSMS's message") }
            }
        }
        let forgets = self.profile.quirks.contains(.forgetsLimitAfterReconnect)
        self.state.withLockedValue { state in
            state.endpoint = endpoint
            state.connections += 1
            if forgets, state.connections > 1 { state.powerLimitW = nil }
        }
        return endpoint
    }

    /// Sends a CALL on the current connection and counts the outcome.
    @discardableResult
    public func call(_ action: String, _ payload: JSONValue) async throws -> JSONValue {
        guard let endpoint = self.endpoint else { throw OCPPEndpointError("\(self.profile.id) is not connected") }
        // One CALL at a time, as OCPP-J asks: messages the charger sends on its own (a firmware status, a
        // triggered message, a report) wait for the CALL in flight to be answered.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(35)
        while endpoint.pendingCalls > 0, endpoint.isActive, clock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        do {
            let payload = try await endpoint.call(action, payload).payload()
            self.state.withLockedValue { $0.callsCompleted += 1 }
            return payload
        } catch {
            self.state.withLockedValue { $0.callErrors += 1 }
            throw error
        }
    }

    /// Sends a transaction message like firmware with an offline queue: when the connection is lost before
    /// the answer, it reconnects (booting again, reporting `status`) and sends the message again on the new
    /// connection. Returns the answer and whether it had to reconnect.
    private func deliver(_ action: String, _ payload: JSONValue, status: String) async throws -> (answer: JSONValue, reconnected: Bool) {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        var reconnected = false
        while true {
            do {
                return (try await self.call(action, payload), reconnected)
            } catch {
                guard self.endpoint?.isActive != true, !self.profile.quirks.contains(.neverReconnects), clock.now < deadline else { throw error }
            }
            try await Task.sleep(for: .milliseconds(200))
            do {
                try await self.connect()
                try await self.boot(reason: "Triggered", status: status)
                reconnected = true
            } catch {
                // Still offline: the next round tries again.
            }
        }
    }

    /// Boot, status, heartbeat: what every charger does after connecting.
    public func boot(reason: String = "PowerUp", afterReset: Bool = false, status: String = "Available") async throws {
        let version = self.profile.version
        _ = try await self.call("BootNotification", OCPPMessages.bootNotification(self.profile, reason: reason))
        if self.profile.quirks.contains(.bootsTwice) {
            _ = try await self.call("BootNotification", OCPPMessages.bootNotification(self.profile, reason: reason))
        }
        let faulted = afterReset && self.profile.quirks.contains(.faultedAfterReset)
        if !self.profile.quirks.contains(.noStatusAfterBoot) {
            // A 1.6 charger with several connectors reports itself (connector 0) first, then each connector.
            if self.profile.connectors > 1, version == .v16 {
                _ = try await self.call("StatusNotification", OCPPMessages.statusNotification(version, status: "Available", connector: 0))
            }
            for connector in 1...self.profile.connectors {
                let faultedHere = faulted && connector == 1
                _ = try await self.call("StatusNotification", OCPPMessages.statusNotification(version, status: faultedHere ? "Faulted" : status, connector: connector))
            }
        }
        _ = try await self.call("Heartbeat", [:])
    }

    /// The charger's full power, and what it reports drawing while a charging profile limits it.
    public static let maximumPowerW = 11_000
    var activePowerW: Int? {
        let (limit, reports) = self.state.withLockedValue { ($0.powerLimitW, $0.reportsPower) }
        guard reports else { return nil }
        guard let limit, !self.profile.quirks.contains(.ignoresChargingLimit) else { return Self.maximumPowerW }
        return min(limit, Self.maximumPowerW)
    }

    /// A hardware fault on connector 1 (a ground failure, an emergency stop): reported Faulted with
    /// `errorCode`, and Available again after `recovery` unless the profile has `staysFaulted`.
    public func fault(errorCode: String = "GroundFailure", recovery: Duration = .milliseconds(200)) async throws {
        let version = self.profile.version
        var faulted = OCPPMessages.statusNotification(version, status: "Faulted")
        if version == .v16 { faulted = JSONPointer.update(faulted, at: "/errorCode") { _ in .string(errorCode) } }
        _ = try await self.call("StatusNotification", faulted)
        try await Task.sleep(for: recovery)
        if !self.profile.quirks.contains(.staysFaulted) {
            _ = try await self.call("StatusNotification", OCPPMessages.statusNotification(version, status: "Available"))
        }
    }

    /// Firmware updates carried out (downloaded, installed, rebooted into).
    public var firmwareUpdates: Int { self.state.withLockedValue { $0.firmwareUpdates } }

    /// What firmware does after accepting UpdateFirmware: reports the download and the installation, reboots,
    /// and reports Installed on the new connection.
    private func updateFirmware(requestId: Int?) async {
        func status(_ value: String) async throws {
            var payload: JSONObject = ["status": .string(value)]
            if let requestId, self.profile.version != .v16 { payload["requestId"] = .int(requestId) }
            _ = try await self.call("FirmwareStatusNotification", .object(payload))
        }
        do {
            try await status("Downloading")
            if !self.profile.quirks.contains(.skipsDownloaded) { try await status("Downloaded") }
            try await status("Installing")
            await self.reboot(reason: "FirmwareUpdate")
            try await status("Installed")
            self.state.withLockedValue { $0.firmwareUpdates += 1 }
        } catch {
            self.state.withLockedValue { $0.callErrors += 1 }
        }
    }

    /// How many reboots after an accepted Reset have completed (connection closed, reopened, booted).
    public var reboots: Int { self.state.withLockedValue { $0.reboots } }

    /// What firmware does after accepting a Reset (or installing an update): closes its connection, comes
    /// back and boots again.
    private func reboot(reason: String = "RemoteReset") async {
        // Switched off in the meantime: it stays off (and does not dial an event loop its owner shut down).
        guard !self.state.withLockedValue({ $0.switchedOff }) else { return }
        await self.endpoint?.close(code: .goingAway, reason: "rebooting")
        do {
            try await self.connect()
            try await self.boot(reason: reason, afterReset: reason == "RemoteReset")
            self.state.withLockedValue { $0.reboots += 1 }
        } catch {
            self.state.withLockedValue { $0.callErrors += 1 }
        }
    }

    /// A full charging session: authorize, start, `meterSamples` meter values, stop. Like real firmware it
    /// starts nothing when the CSMS does not accept the idTag (unless the profile has `startsDespiteRefusal`).
    @discardableResult
    public func chargingSession(
        idTag: String = "04A2B3C4D5", meterSamples: Int = 3, whPerSample: Int = 1500, sampleInterval: Duration = .zero, connector: Int = 1
    ) async throws -> ChargingOutcome {
        let meteredConnector = self.profile.quirks.contains(.metersWrongConnector) ? connector + 1 : connector
        let doubleBooks = self.profile.quirks.contains(.doubleBooksConnector)
        let version = self.profile.version
        let authorized = try await self.call("Authorize", OCPPMessages.authorize(version, idTag: idTag))
        let status = (version == .v16 ? authorized["idTagInfo"] : authorized["idTokenInfo"])?["status"]?.stringValue ?? "Accepted"
        self.state.withLockedValue { state in
            if status == "Accepted" { state.refusedTags.remove(idTag) } else { state.refusedTags.insert(idTag) }
        }
        if status != "Accepted", !self.profile.quirks.contains(.startsDespiteRefusal) { return .refused(status) }
        if status == "Accepted", self.profile.quirks.contains(.neverStartsAfterAuthorize) { return .notStarted }
        let silent = self.profile.quirks.contains(.sendsNoMeterValues)
        // With a sample interval configured, readings are stamped that far apart, the session dated back.
        let spacing = self.readingSpacing
        let began = Timestamp.now()
        let sessionStart = spacing.map { OCPPMessages.stamp(began, minus: $0 * meterSamples) }
        func readingStamp(_ sample: Int) -> String? { spacing.map { OCPPMessages.stamp(began, minus: $0 * (meterSamples - sample - 1)) } }
        _ = try await self.call("StatusNotification", OCPPMessages.statusNotification(version, status: "Preparing", connector: connector))
        switch version {
        case .v16:
            let restarts = self.profile.quirks.contains(.restartsTransactionAfterReconnect)
            func start() async throws -> Int {
                let started = try await self.deliver(
                    "StartTransaction",
                    ["connectorId": .int(connector), "idTag": .string(idTag), "meterStart": .int(self.meter(advance: 0)), "timestamp": .string(sessionStart ?? OCPPMessages.now())],
                    status: "Preparing"
                ).answer
                let transactionId = started["transactionId"]?.intValue ?? 0
                self.beginTransaction(.int(transactionId))
                return transactionId
            }
            var transactionId = try await start()
            // The quirk: a second start on the busy connector; the first transaction is never stopped.
            if doubleBooks { transactionId = try await start() }
            _ = try await self.deliver("StatusNotification", OCPPMessages.statusNotification(version, status: "Charging", connector: connector), status: "Charging")
            var reason = "Local"
            for sample in 0..<meterSamples {
                if sample > 0, sampleInterval > .zero { try await Task.sleep(for: sampleInterval) }
                if self.stopRequested {
                    reason = "Remote"
                    break
                }
                if silent { continue }
                let wh = self.meter(advance: self.sampleStep(sample, whPerSample))
                let sent = try await self.deliver(
                    "MeterValues",
                    [
                        "connectorId": .int(meteredConnector), "transactionId": .int(transactionId),
                        "meterValue": [
                            OCPPMessages.energySample(
                                version, wh: wh, withoutZone: self.profile.quirks.contains(.timestampWithoutZone), timestamp: readingStamp(sample),
                                powerW: self.readingPower()
                            )
                        ],
                    ],
                    status: "Charging"
                )
                if sent.reconnected, restarts { transactionId = try await start() }
            }
            let stopId = self.profile.quirks.contains(.stopsWithWrongTransactionId) ? transactionId + 1 : transactionId
            _ = try await self.deliver(
                "StopTransaction",
                [
                    "transactionId": .int(stopId), "idTag": .string(idTag), "meterStop": .int(self.meter(advance: 100)),
                    "timestamp": .string(OCPPMessages.now()), "reason": .string(reason),
                ],
                status: "Charging"
            )
        case .v201, .v21:
            func newTransactionId() -> String {
                "\(self.profile.id)-tx-\(self.state.withLockedValue { state -> Int in state.transactionSeq += 1; return state.transactionSeq })"
            }
            var transactionId = newTransactionId()
            var seqNo = 0
            // Start and end readings carry their event's own timestamp: two clock reads could straddle a
            // millisecond and put the reading outside the transaction.
            let wrongEnd = self.profile.quirks.contains(.stopsWithWrongTransactionId)
            func event(
                _ type: String, trigger: String, at timestamp: String = OCPPMessages.now(), stoppedReason: String? = nil, evse: Int? = nil, extra: JSONObject
            ) -> JSONValue {
                let id = type == "Ended" && wrongEnd ? transactionId + "-1" : transactionId
                var info: JSONObject = ["transactionId": .string(id)]
                if let stoppedReason { info["stoppedReason"] = .string(stoppedReason) }
                var object: JSONObject = [
                    "eventType": .string(type), "timestamp": .string(timestamp), "triggerReason": .string(trigger),
                    "seqNo": .int(seqNo), "transactionInfo": .object(info),
                    "evse": ["id": .int(evse ?? connector), "connectorId": 1],
                ]
                object.members.append(contentsOf: extra.members)
                seqNo += 1
                return .object(object)
            }
            func start() async throws {
                let startedAt = sessionStart ?? OCPPMessages.now()
                self.beginTransaction(.string(transactionId))
                _ = try await self.deliver(
                    "TransactionEvent",
                    event(
                        "Started", trigger: "Authorized", at: startedAt,
                        extra: [
                            "idToken": ["idToken": .string(idTag), "type": "ISO14443"],
                            "meterValue": [
                                OCPPMessages.energySample(
                                    version, wh: self.meter(advance: 0), withoutZone: false, context: "Transaction.Begin", timestamp: startedAt
                                )
                            ],
                        ]
                    ),
                    status: "Occupied"
                )
            }
            let withoutZone = self.profile.quirks.contains(.timestampWithoutZone)
            try await start()
            // The quirk: a second transaction started on the busy EVSE; the first never ends.
            if doubleBooks {
                transactionId = newTransactionId()
                seqNo = 0
                try await start()
            }
            _ = try await self.deliver("StatusNotification", OCPPMessages.statusNotification(version, status: "Occupied", connector: connector), status: "Occupied")
            var remote = false
            for sample in 0..<meterSamples {
                if sample > 0, sampleInterval > .zero { try await Task.sleep(for: sampleInterval) }
                if self.stopRequested {
                    remote = true
                    break
                }
                if silent { continue }
                let wh = self.meter(advance: self.sampleStep(sample, whPerSample))
                let sent = try await self.deliver(
                    "TransactionEvent",
                    event(
                        "Updated", trigger: "MeterValuePeriodic", at: readingStamp(sample) ?? OCPPMessages.now(), evse: meteredConnector,
                        extra: [
                            "meterValue": [
                                OCPPMessages.energySample(version, wh: wh, withoutZone: withoutZone, timestamp: readingStamp(sample), powerW: self.readingPower())
                            ]
                        ]
                    ),
                    status: "Occupied"
                )
                if sent.reconnected, self.profile.quirks.contains(.restartsTransactionAfterReconnect) {
                    transactionId = newTransactionId()
                    try await start()
                }
            }
            let endedAt = OCPPMessages.now()
            _ = try await self.deliver(
                "TransactionEvent",
                event(
                    "Ended", trigger: remote ? "RemoteStop" : "StopAuthorized", at: endedAt, stoppedReason: remote ? "Remote" : nil, evse: meteredConnector,
                    extra: [
                        "meterValue": [
                            OCPPMessages.energySample(
                                version, wh: self.meter(advance: 100), withoutZone: false, context: "Transaction.End", timestamp: endedAt
                            )
                        ],
                    ]
                ),
                status: "Occupied"
            )
        }
        self.state.withLockedValue { $0.transactionId = nil }
        _ = try await self.deliver("StatusNotification", OCPPMessages.statusNotification(version, status: "Available", connector: connector), status: "Available")
        return .charged
    }

    /// A session that begins while the charger has no connection, as firmware with an offline queue runs it:
    /// the connection drops (for at least `outage`), the transaction starts and is metered `samples` times during the
    /// outage, every message queued with the time it happened (2.0.1: `offline: true`); on reconnecting (without
    /// booting, as after a network loss) the queue goes out in order, and the transaction is stopped online.
    /// An identifier the backend refused before (its cache holds it as not valid) starts nothing offline: the
    /// charger only loses and regains its connection, and the result is false. When the backend answers the
    /// delivered start with an identifier not accepted and StopTransactionOnInvalidId is true, the transaction
    /// stops at once with reason DeAuthorized (2.0.1: Ended, triggered by Deauthorized).
    /// Quirks: `stampsQueuedStartAtDelivery` (1.6), `stampsQueueAtReconnection`, `forgetsOfflineFlag`, `skipsSeqNo` (2.0.1), `startsOfflineForRefusedTag`,
    /// `keepsChargingOnInvalidId` (the transaction is left running).
    @discardableResult
    public func offlineSession(idTag: String = "04A2B3C4D5", outage: Duration = .seconds(3), samples: Int = 2, whPerSample: Int = 700) async throws -> Bool {
        let version = self.profile.version
        let refused = self.state.withLockedValue { $0.refusedTags.contains(idTag) } && !self.profile.quirks.contains(.startsOfflineForRefusedTag)
        let stopsOnInvalid = self.setting("StopTransactionOnInvalidId") == "true" && !self.profile.quirks.contains(.keepsChargingOnInvalidId)
        await self.endpoint?.close(code: .goingAway, reason: "network lost")
        if refused {
            try await Task.sleep(for: outage)
            try await self.connect()
            return false
        }
        // Everything queued happens in the middle of the outage: a third of it after the connection dropped and
        // before it comes back, however late a loaded machine wakes the sleeps.
        try await Task.sleep(for: outage / 3)
        let startedAt = OCPPMessages.now()
        let meterStart = self.meter(advance: 0)
        var readings: [(timestamp: String, wh: Int, powerW: Int?)] = []
        for sample in 0..<samples {
            // Each reading a step after the one before (the first a step after the start): energy takes time.
            try await Task.sleep(for: outage / (3 * max(1, samples)))
            readings.append((OCPPMessages.now(), self.meter(advance: whPerSample), self.readingPower()))
        }
        try await Task.sleep(for: outage / 3)
        try await self.connect()
        switch version {
        case .v16:
            let atDelivery = self.profile.quirks.contains(.stampsQueueAtReconnection)
            let startStamp = atDelivery || self.profile.quirks.contains(.stampsQueuedStartAtDelivery) ? OCPPMessages.now() : startedAt
            let started = try await self.call(
                "StartTransaction", ["connectorId": 1, "idTag": .string(idTag), "meterStart": .int(meterStart), "timestamp": .string(startStamp)]
            )
            let transactionId = started["transactionId"] ?? .int(0)
            let status = started["idTagInfo"]?["status"]?.stringValue ?? "Accepted"
            func deliverReadings() async throws {
                for reading in readings {
                    _ = try await self.call(
                        "MeterValues",
                        [
                            "connectorId": 1, "transactionId": transactionId,
                            "meterValue": [
                                OCPPMessages.energySample(
                                    version, wh: reading.wh, withoutZone: false, timestamp: atDelivery ? OCPPMessages.now() : reading.timestamp,
                                    powerW: reading.powerW
                                )
                            ],
                        ]
                    )
                }
            }
            let late = self.profile.quirks.contains(.deliversReadingsAfterStop)
            if !late { try await deliverReadings() }
            if status != "Accepted" && !stopsOnInvalid {
                if late { try await deliverReadings() }
                return true
            }
            let stoppedAt = OCPPMessages.now()
            _ = try await self.call(
                "StopTransaction",
                [
                    "transactionId": transactionId, "idTag": .string(idTag), "meterStop": .int(self.meter(advance: 100)), "timestamp": .string(stoppedAt),
                    "reason": .string(status != "Accepted" ? "DeAuthorized" : "Local"),
                ]
            )
            if late { try await deliverReadings() }
        case .v201, .v21:
            let transactionId = "\(self.profile.id)-offline-\(self.state.withLockedValue { state -> Int in state.transactionSeq += 1; return state.transactionSeq })"
            let flag = !self.profile.quirks.contains(.forgetsOfflineFlag)
            let atDelivery = self.profile.quirks.contains(.stampsQueueAtReconnection)
            var seqNo = 0
            func event(_ type: String, at timestamp: String, offline: Bool, wh: Int, context: String, powerW: Int? = nil, extra: JSONObject = [:]) -> JSONValue {
                var object: JSONObject = [
                    "eventType": .string(type), "timestamp": .string(timestamp), "triggerReason": type == "Started" ? "Authorized" : type == "Ended" ? "StopAuthorized" : "MeterValuePeriodic",
                    "seqNo": .int(seqNo), "transactionInfo": ["transactionId": .string(transactionId)], "evse": ["id": 1, "connectorId": 1],
                    "meterValue": [OCPPMessages.energySample(version, wh: wh, withoutZone: false, context: context, timestamp: timestamp, powerW: powerW)],
                ]
                if offline { object["offline"] = true }
                for member in extra.members { object[member.key] = member.value }
                seqNo += self.profile.quirks.contains(.skipsSeqNo) && seqNo == 1 ? 2 : 1
                return .object(object)
            }
            let started = try await self.call(
                "TransactionEvent",
                event(
                    "Started", at: atDelivery ? OCPPMessages.now() : startedAt, offline: flag, wh: meterStart, context: "Transaction.Begin",
                    extra: ["idToken": ["idToken": .string(idTag), "type": "ISO14443"]]
                )
            )
            let status = started["idTokenInfo"]?["status"]?.stringValue ?? "Accepted"
            // Numbered in the order they happened, whatever the order they go out in.
            let updates = readings.map { reading in
                event("Updated", at: atDelivery ? OCPPMessages.now() : reading.timestamp, offline: flag, wh: reading.wh, context: "Sample.Periodic", powerW: reading.powerW)
            }
            let late = self.profile.quirks.contains(.deliversReadingsAfterStop)
            if !late { for update in updates { _ = try await self.call("TransactionEvent", update) } }
            if status != "Accepted" && !stopsOnInvalid {
                if late { for update in updates { _ = try await self.call("TransactionEvent", update) } }
                return true
            }
            let endedAt = OCPPMessages.now()
            let deauthorized: JSONObject = status != "Accepted" ? ["triggerReason": "Deauthorized", "transactionInfo": ["transactionId": .string(transactionId), "stoppedReason": "DeAuthorized"]] : [:]
            _ = try await self.call(
                "TransactionEvent", event("Ended", at: endedAt, offline: false, wh: self.meter(advance: 100), context: "Transaction.End", extra: deauthorized)
            )
            if late { for update in updates { _ = try await self.call("TransactionEvent", update) } }
        }
        return true
    }

    private func beginTransaction(_ id: JSONValue) {
        self.state.withLockedValue { state in
            state.transactionId = id
            state.stopRequested = false
        }
    }

    private var stopRequested: Bool { self.state.withLockedValue { $0.stopRequested } }

    /// Sends Heartbeat and MeterValues alternately, each waiting for its answer, until `duration` passes
    /// or `messages` CALLs were answered; `interval` spaces them (zero: as fast as answers come).
    public func load(messages: Int, duration: Duration, interval: Duration = .zero) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        var sent = 0
        while sent < messages && clock.now < deadline {
            if sent % 2 == 0 {
                _ = try await self.call("Heartbeat", [:])
            } else if self.profile.version == .v16 {
                _ = try await self.call(
                    "MeterValues",
                    ["connectorId": 1, "meterValue": [OCPPMessages.energySample(.v16, wh: self.meter(advance: 10), withoutZone: false)]]
                )
            } else {
                _ = try await self.call(
                    "MeterValues",
                    ["evseId": 1, "meterValue": [OCPPMessages.energySample(self.profile.version, wh: self.meter(advance: 10), withoutZone: false)]]
                )
            }
            sent += 1
            if interval > .zero { try await Task.sleep(for: interval) }
        }
    }

    /// What `keepAlive` went through.
    public struct KeepAliveOutcome: Sendable {
        public var connections = 0
        /// Connection attempts the server refused with an HTTP status (503 during an outage, say).
        public var refused = 0
        /// Attempts that failed without an HTTP answer, and calls cut short by a dropped connection.
        public var failures = 0
        public var heartbeats = 0
    }

    /// Stays connected until `deadline` (or until `enough` says so) like real firmware: boots after every
    /// (re)connection, sends a Heartbeat every `interval`, and when the connection drops or is refused,
    /// waits `retry` and tries again.
    public func keepAlive(
        until deadline: ContinuousClock.Instant, interval: Duration, retry: Duration = .milliseconds(200),
        enough: (@Sendable (KeepAliveOutcome) -> Bool)? = nil
    ) async -> KeepAliveOutcome {
        var outcome = KeepAliveOutcome()
        let clock = ContinuousClock()
        while clock.now < deadline, enough?(outcome) != true {
            do {
                try await self.connect()
                outcome.connections += 1
                try await self.boot(reason: outcome.connections == 1 ? "PowerUp" : "Triggered")
                while clock.now < deadline, self.endpoint?.isActive == true, enough?(outcome) != true {
                    _ = try await self.call("Heartbeat", [:])
                    outcome.heartbeats += 1
                    try await Task.sleep(for: interval)
                }
            } catch let error as OCPPConnectError where error.status != nil {
                outcome.refused += 1
            } catch {
                outcome.failures += 1
            }
            if self.profile.quirks.contains(.neverReconnects), outcome.connections > 0 { break }
            if clock.now < deadline, enough?(outcome) != true { try? await Task.sleep(for: retry) }
        }
        await self.disconnect()
        return outcome
    }

    /// Runs `work` after `delay`, as firmware acts after it has answered; `stop()` waits for it.
    private func later(after delay: Duration, _ work: @escaping @Sendable () async -> Void) {
        self.state.withLockedValue { state in
            let key = state.nextFollowUp
            state.nextFollowUp += 1
            state.followUps[key] = Task {
                try? await Task.sleep(for: delay)
                await work()
                _ = self.state.withLockedValue { $0.followUps.removeValue(forKey: key) }
            }
        }
    }

    /// Switches the charger off for good: no reboot or follow-up message comes after this; the ones already
    /// under way finish first, then the connection closes. Its owner calls this before shutting down the
    /// event loops the charger dials with.
    public func stop() async {
        self.state.withLockedValue { $0.switchedOff = true }
        while let pending = self.state.withLockedValue({ $0.followUps.values.first }) {
            await pending.value
        }
        await self.endpoint?.close(code: .normalClosure, reason: "")
    }

    /// Closes the connection with a normal close, and calls off a reboot still pending from a Reset or a
    /// firmware update: a charger switched off stays off until `connect()`.
    public func disconnect(reason: String = "") async {
        self.state.withLockedValue { $0.switchedOff = true }
        await self.endpoint?.close(code: .normalClosure, reason: reason)
    }

    private func sampleStep(_ sample: Int, _ whPerSample: Int) -> Int {
        // The quirky firmware reports a register that drops by a few Wh on the second sample.
        self.profile.quirks.contains(.registerGoesBackwards) && sample == 1 ? -7 : whPerSample
    }

    private func meter(advance: Int) -> Int {
        self.state.withLockedValue { state in
            state.meterWh += advance
            return state.meterWh
        }
    }

    private func answer(_ action: String, _ payload: JSONValue) async throws -> JSONValue {
        switch action {
        case "RemoteStartTransaction", "RequestStartTransaction":
            if self.profile.quirks.contains(.ignoresRemoteStart) { throw NoReply() }
            self.state.withLockedValue { $0.remoteStarts += 1 }
            return ["status": "Accepted"]
        case "SetChargingProfile" where self.profile.quirks.contains(.refusesClaimedFeature), "ClearChargingProfile" where self.profile.quirks.contains(.refusesClaimedFeature),
            "GetCompositeSchedule" where self.profile.quirks.contains(.refusesClaimedFeature):
            throw CallErrorReply(code: "NotSupported", description: "\(action) is not supported by this firmware")
        case "SetChargingProfile" where self.profile.quirks.contains(.refusesCommands), "Reset" where self.profile.quirks.contains(.refusesCommands):
            return ["status": "Rejected"]
        case "SetChargingProfile":
            let schedule = payload["csChargingProfiles"]?["chargingSchedule"] ?? payload["chargingProfile"]?["chargingSchedule"]?[0]
            if let limit = schedule?["chargingSchedulePeriod"]?[0]?["limit"]?.doubleValue {
                // Amperes on three phases of 230 V, or watts.
                let watts = schedule?["chargingRateUnit"]?.stringValue == "A" ? limit * 230 * 3 : limit
                self.state.withLockedValue {
                    $0.powerLimitW = Int(watts)
                    $0.reportsPower = true
                }
            }
            return ["status": "Accepted"]
        case "ClearChargingProfile":
            if !self.profile.quirks.contains(.keepsLimitAfterClear) { self.state.withLockedValue { $0.powerLimitW = nil } }
            return ["status": "Accepted"]
        case "UpdateFirmware":
            let requestId = payload["requestId"]?.intValue
            self.later(after: .milliseconds(100)) { await self.updateFirmware(requestId: requestId) }
            return self.profile.version == .v16 ? [:] : ["status": "Accepted"]
        case "RemoteStopTransaction", "RequestStopTransaction":
            // Accepted for the running transaction (which then stops with reason Remote), Rejected for any other.
            let asked = payload["transactionId"]
            let ignores = self.profile.quirks.contains(.ignoresRemoteStop)
            let accepted = self.state.withLockedValue { state -> Bool in
                guard let running = state.transactionId, let asked,
                    running == asked || JSONWriter.string(running) == JSONWriter.string(asked)
                else { return false }
                if !ignores { state.stopRequested = true }
                return true
            }
            return ["status": accepted ? "Accepted" : "Rejected"]
        case "UnlockConnector", "ChangeAvailability", "ClearCache", "SetVariables", "ChangeConfiguration":
            if action == "UnlockConnector" {
                if self.profile.quirks.contains(.answersUnlockLate) { try await Task.sleep(for: .seconds(2)) }
                return ["status": "Unlocked"]
            }
            if action == "ClearCache" { self.state.withLockedValue { $0.refusedTags.removeAll() } }
            if action == "ChangeConfiguration", let key = payload["key"]?.stringValue, let value = payload["value"]?.stringValue {
                self.state.withLockedValue { $0.configuration[key] = value }
            }
            if action == "SetVariables" {
                let results = payload["setVariableData"]?.arrayValue?.map { item -> JSONValue in
                    if let key = Self.key(component: item["component"]?["name"]?.stringValue, variable: item["variable"]?["name"]?.stringValue),
                        let value = item["attributeValue"]?.stringValue
                    {
                        self.state.withLockedValue { $0.configuration[key] = value }
                    }
                    return ["attributeStatus": "Accepted", "component": item["component"] ?? [:], "variable": item["variable"] ?? [:]]
                } ?? []
                return ["setVariableResult": .array(results)]
            }
            return ["status": "Accepted"]
        case "Reset":
            self.state.withLockedValue { $0.resets += 1 }
            if !self.profile.quirks.contains(.ignoresReset) {
                // The answer goes out first; the reboot follows, as on real hardware.
                self.later(after: .milliseconds(100)) { await self.reboot() }
            }
            return ["status": "Accepted"]
        case "TriggerMessage":
            // The requested message follows the answer, as firmware sends it.
            let requested = payload["requestedMessage"]?.stringValue ?? ""
            let version = self.profile.version
            let message: (String, JSONValue)? =
                switch requested {
                case "StatusNotification": ("StatusNotification", OCPPMessages.statusNotification(version, status: "Available"))
                case "Heartbeat": ("Heartbeat", [:])
                case "BootNotification": ("BootNotification", OCPPMessages.bootNotification(self.profile, reason: "Triggered"))
                default: nil
                }
            guard let message else { return ["status": "NotImplemented"] }
            if self.profile.quirks.contains(.ignoresTrigger) { return ["status": "Accepted"] }
            self.later(after: .milliseconds(50)) { _ = try? await self.call(message.0, message.1) }
            return ["status": "Accepted"]
        case "GetConfiguration":
            if self.profile.quirks.contains(.withholdsConfiguration) { return ["configurationKey": []] }
            let asked = payload["key"]?.arrayValue?.compactMap(\.stringValue)
            let configuration = self.state.withLockedValue { $0.configuration }
            let keys = configuration.keys.sorted().filter { asked?.contains($0) ?? true }
            var answer: JSONObject = [
                "configurationKey": .array(keys.map { ["key": .string($0), "readonly": false, "value": .string(configuration[$0] ?? "")] })
            ]
            let unknown = (asked ?? []).filter { configuration[$0] == nil }
            if !unknown.isEmpty { answer["unknownKey"] = .array(unknown.map(JSONValue.string)) }
            return .object(answer)
        case "GetVariables":
            let configuration = self.state.withLockedValue { $0.configuration }
            let results = payload["getVariableData"]?.arrayValue?.map { item -> JSONValue in
                let key = Self.key(component: item["component"]?["name"]?.stringValue, variable: item["variable"]?["name"]?.stringValue)
                var result: JSONObject = ["component": item["component"] ?? [:], "variable": item["variable"] ?? [:]]
                if let value = key.flatMap({ configuration[$0] }), !self.profile.quirks.contains(.withholdsConfiguration) {
                    result["attributeStatus"] = "Accepted"
                    result["attributeValue"] = .string(value)
                } else {
                    result["attributeStatus"] = "UnknownVariable"
                }
                return .object(result)
            } ?? []
            return ["getVariableResult": .array(results)]
        case "GetBaseReport":
            if self.profile.quirks.contains(.withholdsConfiguration) { return ["status": "NotSupported"] }
            // The report follows the answer, as NotifyReport CALLs of the charger's own.
            let requestId = payload["requestId"]?.intValue ?? 0
            self.later(after: .milliseconds(50)) {
                let configuration = self.state.withLockedValue { $0.configuration }
                let settings = Self.variables.compactMap { variable in configuration[variable.key].map { (variable.component, variable.variable, $0) } }
                _ = try? await self.call("NotifyReport", OCPPMessages.baseReport(self.profile, requestId: requestId, settings: settings))
            }
            return ["status": "Accepted"]
        case "DataTransfer":
            return ["status": "UnknownVendorId"]
        default:
            throw CallErrorReply(code: "NotImplemented", description: "\(action) is not implemented by the simulator")
        }
    }
}
