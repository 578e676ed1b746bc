import OCPPWire

/// A connector of a charge point as OCPP messages name it.
///
/// OCPP 1.6 numbers connectors from 1 (`connectorId`; 0 is the charge point as a whole). OCPP 2.0.1 and 2.1
/// number EVSEs from 1 (`evseId`; 0 is the station) and the connectors of each EVSE from 1 (`connectorId`).
/// One transaction at a time runs on a 1.6 connector and on a 2.0.1 EVSE: that is the connector's `unit`.
public struct Connector: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// 2.0.1/2.1: the EVSE; nil for 1.6.
    public var evse: Int?
    /// 1.6: the connector; 2.0.1/2.1: the connector of the EVSE, when the message names one.
    public var id: Int?

    public init(evse: Int?, id: Int?) {
        self.evse = evse
        self.id = id
    }

    /// A 1.6 connector.
    public static func v16(_ id: Int) -> Connector { Connector(evse: nil, id: id) }

    /// Where one transaction at a time runs: the 1.6 connector, the 2.0.1 EVSE.
    public var unit: Int { self.evse ?? self.id ?? 0 }

    /// The charge point or station as a whole (1.6 connector 0, 2.0.1 EVSE 0).
    public var isStation: Bool { self.unit == 0 }

    /// Whether a message naming `other` names this connector: the same 1.6 connector; the same EVSE and, where
    /// both name a connector of it, the same connector.
    public func names(_ other: Connector) -> Bool {
        guard (self.evse == nil) == (other.evse == nil) else { return false }
        if self.evse != nil {
            guard self.evse == other.evse else { return false }
            guard let mine = self.id, let theirs = other.id else { return true }
            return mine == theirs
        }
        return self.id == other.id
    }

    public var description: String {
        guard let evse else { return "connector \(self.id ?? 0)" }
        return self.id.map { "EVSE \(evse) connector \($0)" } ?? "EVSE \(evse)"
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.evse ?? -1, lhs.id ?? -1) < (rhs.evse ?? -1, rhs.id ?? -1)
    }

    /// The connector a message names in its own payload (`payload` is the CALL's), for the actions that name
    /// one; nil for the others and where the field is absent or not a whole number.
    public static func named(action: String, payload: JSONValue, version: OCPPVersion) -> Connector? {
        if version == .v16 {
            switch action {
            case "StatusNotification", "StartTransaction", "MeterValues", "RemoteStartTransaction", "UnlockConnector", "ChangeAvailability",
                "ReserveNow", "TriggerMessage", "SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule":
                return payload["connectorId"]?.intValue.map(Connector.v16)
            default:
                return nil
            }
        }
        switch action {
        case "StatusNotification":
            return payload["evseId"]?.intValue.map { Connector(evse: $0, id: payload["connectorId"]?.intValue) }
        case "MeterValues", "RequestStartTransaction", "SetChargingProfile", "GetCompositeSchedule", "ReserveNow", "UnlockConnector":
            return payload["evseId"]?.intValue.map { Connector(evse: $0, id: payload["connectorId"]?.intValue) }
        case "TransactionEvent", "ChangeAvailability", "TriggerMessage":
            return payload["evse"]?["id"]?.intValue.map { Connector(evse: $0, id: payload["evse"]?["connectorId"]?.intValue) }
        default:
            return nil
        }
    }
}
