import OCPPWire

/// Realistic payloads for the messages the simulators exchange, per OCPP version.
public enum CSMSAnswers {
    /// What a well-behaved CSMS answers to a charger's CALL (throws `CallErrorReply` for actions it does not handle).
    public static func answer(_ action: String, _ payload: JSONValue, version: OCPPVersion, transactionId: () -> Int) throws -> JSONValue {
        try OCPPMessages.csmsAnswer(action, payload, version: version, transactionId: transactionId)
    }
}

enum OCPPMessages {
    static func now(withoutZone: Bool = false) -> String {
        let text = String(Timestamp.now().rfc3339.prefix(23))
        return withoutZone ? text : text + "Z"
    }

    /// `time` less `interval`, as a timestamp with milliseconds and a zone.
    static func stamp(_ time: Timestamp, minus interval: Duration) -> String {
        let micros = interval.components.seconds * 1_000_000 + interval.components.attoseconds / 1_000_000_000_000
        return String(Timestamp(microseconds: time.microseconds - micros).rfc3339.prefix(23)) + "Z"
    }

    // MARK: Charger → CSMS requests

    static func bootNotification(_ profile: ChargerProfile, reason: String = "PowerUp") -> JSONValue {
        switch profile.version {
        case .v16:
            return [
                "chargePointVendor": .string(profile.vendor), "chargePointModel": .string(profile.model),
                "chargePointSerialNumber": .string(profile.serialNumber), "firmwareVersion": .string(profile.firmware),
            ]
        case .v201, .v21:
            return [
                "reason": .string(reason),
                "chargingStation": [
                    "model": .string(profile.model), "vendorName": .string(profile.vendor),
                    "serialNumber": .string(profile.serialNumber), "firmwareVersion": .string(profile.firmware),
                ],
            ]
        }
    }

    /// A status of `connector` (1.6: the connector; 2.0.1/2.1: connector 1 of EVSE `connector`; 0: the charger as a whole).
    static func statusNotification(_ version: OCPPVersion, status: String, connector: Int = 1) -> JSONValue {
        switch version {
        case .v16:
            let errorCode = status == "Faulted" ? "OtherError" : "NoError"
            return ["connectorId": .int(connector), "errorCode": .string(errorCode), "status": .string(status), "timestamp": .string(now())]
        case .v201, .v21:
            let connectorStatus = status == "Charging" || status == "Preparing" ? "Occupied" : status
            return ["timestamp": .string(now()), "connectorStatus": .string(connectorStatus), "evseId": .int(connector), "connectorId": connector == 0 ? 0 : 1]
        }
    }

    /// A small inventory report (2.0.1): identity and the heartbeat interval.
    static func baseReport(_ profile: ChargerProfile, requestId: Int, settings: [(component: String, variable: String, value: String)] = []) -> JSONValue {
        func variable(_ component: String, _ name: String, _ value: String, _ mutability: String) -> JSONValue {
            [
                "component": ["name": .string(component)], "variable": ["name": .string(name)],
                "variableAttribute": [["type": "Actual", "value": .string(value), "mutability": .string(mutability)]],
            ]
        }
        return [
            "requestId": .int(requestId), "generatedAt": .string(now()), "seqNo": 0, "tbc": false,
            "reportData": .array(
                [
                    variable("ChargingStation", "Model", profile.model, "ReadOnly"),
                    variable("ChargingStation", "VendorName", profile.vendor, "ReadOnly"),
                ] + settings.filter { $0.variable != "HeartbeatInterval" }.map { variable($0.component, $0.variable, $0.value, "ReadWrite") }
                    + [variable("OCPPCommCtrlr", "HeartbeatInterval", "300", "ReadWrite")]
            ),
        ]
    }

    static func authorize(_ version: OCPPVersion, idTag: String) -> JSONValue {
        switch version {
        case .v16: return ["idTag": .string(idTag)]
        case .v201, .v21: return ["idToken": ["idToken": .string(idTag), "type": "ISO14443"]]
        }
    }

    /// One energy reading, stamped `timestamp` (the current time when nil).
    static func energySample(
        _ version: OCPPVersion, wh: Int, withoutZone: Bool, context: String = "Sample.Periodic", timestamp: String? = nil,
        powerW: Int? = nil
    ) -> JSONValue {
        let stamp = timestamp ?? now(withoutZone: withoutZone)
        switch version {
        case .v16:
            let energy: JSONValue = [
                "value": .string(String(wh)), "context": .string(context), "measurand": "Energy.Active.Import.Register", "unit": "Wh",
            ]
            // With a charging limit in force the charger reports its active power too, first.
            let power: [JSONValue] = powerW.map { [["value": .string(String($0)), "context": .string(context), "measurand": "Power.Active.Import", "unit": "W"]] } ?? []
            return ["timestamp": .string(stamp), "sampledValue": .array(power + [energy])]
        case .v201, .v21:
            let energy: JSONValue = [
                "value": .int(wh), "context": .string(context), "measurand": "Energy.Active.Import.Register", "unitOfMeasure": ["unit": "Wh"],
            ]
            let power: [JSONValue] = powerW.map { [["value": .int($0), "context": .string(context), "measurand": "Power.Active.Import", "unitOfMeasure": ["unit": "W"]]] } ?? []
            return ["timestamp": .string(stamp), "sampledValue": .array(power + [energy])]
        }
    }

    // MARK: CSMS answers

    /// What a well-behaved CSMS answers to a charger's CALL.
    static func csmsAnswer(_ action: String, _ payload: JSONValue, version: OCPPVersion, transactionId: () -> Int) throws -> JSONValue {
        let accepted: JSONValue = ["status": "Accepted"]
        switch (version, action) {
        case (_, "BootNotification"):
            return ["currentTime": .string(now()), "interval": 300, "status": "Accepted"]
        case (_, "Heartbeat"):
            return ["currentTime": .string(now())]
        case (.v16, "Authorize"), (.v16, "StopTransaction"):
            return ["idTagInfo": accepted]
        case (.v16, "StartTransaction"):
            return ["transactionId": .int(transactionId()), "idTagInfo": accepted]
        case (_, "Authorize"):
            return ["idTokenInfo": accepted]
        case (_, "TransactionEvent"):
            return payload["idToken"] != nil ? ["idTokenInfo": accepted] : [:]
        case (_, "DataTransfer"):
            return accepted
        case (_, "StatusNotification"), (_, "MeterValues"), (_, "FirmwareStatusNotification"),
            (_, "DiagnosticsStatusNotification"), (_, "NotifyReport"), (_, "NotifyEvent"), (_, "SecurityEventNotification"),
            (_, "LogStatusNotification"):
            return [:]
        default:
            throw CallErrorReply(code: "NotImplemented", description: "the simulator does not handle \(action)")
        }
    }
}
