import OCPPWire

/// What a charger says it is in its BootNotification: the one reading of it that the relay (fault matchers),
/// the live board, the analyzer (pairs) and the handover export share. 1.6 names the fields at the top level
/// (`chargePointVendor`, `chargePointModel`, `chargePointSerialNumber`, or the deprecated
/// `chargeBoxSerialNumber`, `firmwareVersion`); 2.0.1 and 2.1 inside `chargingStation` (`vendorName`, `model`,
/// `serialNumber`, `firmwareVersion`). A field the charger left out is nil; `unknown` is what reports show then.
public struct BootIdentity: Sendable, Hashable {
    public var vendor: String?
    public var model: String?
    public var firmware: String?
    public var serialNumber: String?

    public init(vendor: String? = nil, model: String? = nil, firmware: String? = nil, serialNumber: String? = nil) {
        self.vendor = vendor
        self.model = model
        self.firmware = firmware
        self.serialNumber = serialNumber
    }

    /// Reads a BootNotification CALL's payload of any OCPP version.
    public init(bootNotification payload: JSONValue) {
        let station = payload["chargingStation"]
        self.vendor = (payload["chargePointVendor"] ?? station?["vendorName"])?.stringValue
        self.model = (payload["chargePointModel"] ?? station?["model"])?.stringValue
        self.firmware = (payload["firmwareVersion"] ?? station?["firmwareVersion"])?.stringValue
        self.serialNumber = (payload["chargePointSerialNumber"] ?? payload["chargeBoxSerialNumber"] ?? station?["serialNumber"])?.stringValue
    }

    /// The word reports and matchers use for a field the charger did not give.
    public static let unknown = "unknown"
}
