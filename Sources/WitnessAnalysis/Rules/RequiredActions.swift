import OCPPWire

/// Actions every implementation of a version must support, by who receives them.
enum RequiredActions {
    /// 1.6 Core profile; 2.0.1 and 2.1 core functional blocks (provisioning, authorization, availability,
    /// transactions, remote control, data transfer).
    static func required(_ version: OCPPVersion, direction: Direction) -> Set<String> {
        switch (version, direction) {
        case (.v16, .toCSMS):
            return ["Authorize", "BootNotification", "DataTransfer", "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification", "StopTransaction"]
        case (.v16, .toCharger):
            return ["ChangeAvailability", "ChangeConfiguration", "ClearCache", "DataTransfer", "GetConfiguration", "RemoteStartTransaction", "RemoteStopTransaction", "Reset", "UnlockConnector"]
        case (_, .toCSMS):
            return ["Authorize", "BootNotification", "Heartbeat", "NotifyReport", "StatusNotification", "TransactionEvent", "DataTransfer", "SecurityEventNotification"]
        case (_, .toCharger):
            return ["ChangeAvailability", "GetBaseReport", "GetVariables", "RequestStartTransaction", "RequestStopTransaction", "Reset", "SetVariables", "TriggerMessage", "UnlockConnector", "DataTransfer"]
        }
    }
}
