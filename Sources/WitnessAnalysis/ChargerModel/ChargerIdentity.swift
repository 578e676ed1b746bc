import WitnessModel

/// What a charger says it is, from its BootNotification.
public struct ChargerIdentity: Sendable, Hashable, Comparable {
    public var vendor: String
    public var model: String
    public var firmware: String

    public init(vendor: String, model: String, firmware: String) {
        self.vendor = vendor
        self.model = model
        self.firmware = firmware
    }

    public static let unknown = ChargerIdentity(vendor: BootIdentity.unknown, model: BootIdentity.unknown, firmware: BootIdentity.unknown)

    /// The identity a pair is known by; a field the BootNotification left out is `unknown`.
    public init(_ boot: BootIdentity) {
        self.init(vendor: boot.vendor ?? BootIdentity.unknown, model: boot.model ?? BootIdentity.unknown, firmware: boot.firmware ?? BootIdentity.unknown)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.vendor, lhs.model, lhs.firmware) < (rhs.vendor, rhs.model, rhs.firmware)
    }

    public var label: String { "\(self.vendor) \(self.model) \(self.firmware)" }
}
