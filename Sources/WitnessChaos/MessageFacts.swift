import OCPPWire
import WitnessPolicy

/// What the relay knows about a message when it asks for a decision.
public struct MessageFacts {
    public var direction: Direction
    public var messageType: MessageType?
    /// The action; for answers, the action of the CALL they answer.
    public var action: String?
    public var messageId: String?
    public var chargePoint: String
    /// Vendor, model and firmware from the charger's BootNotification, when known.
    public var identity: (vendor: String, model: String, firmware: String)?
    /// Seconds since the proxy started and since this connection opened.
    public var secondsSinceStart: Double
    public var secondsSinceConnection: Double
    /// The connection the message travels on (message ids are unique per connection only).
    public var connection: UInt64

    public init(
        direction: Direction, messageType: MessageType?, action: String?, messageId: String?, chargePoint: String,
        identity: (vendor: String, model: String, firmware: String)?, secondsSinceStart: Double, secondsSinceConnection: Double,
        connection: UInt64 = 0
    ) {
        self.connection = connection
        self.direction = direction
        self.messageType = messageType
        self.action = action
        self.messageId = messageId
        self.chargePoint = chargePoint
        self.identity = identity
        self.secondsSinceStart = secondsSinceStart
        self.secondsSinceConnection = secondsSinceConnection
    }
}

/// A rule that hit a message, and what to do.
public struct FaultDecision: Sendable {
    public var rule: String
    public var fault: Fault
    /// For delays: the milliseconds drawn (delay plus jitter).
    public var delayMilliseconds: Int
    /// The n-th time this rule hit this charge point.
    public var hit: Int

    package init(rule: String, fault: Fault, delayMilliseconds: Int, hit: Int) {
        self.rule = rule
        self.fault = fault
        self.delayMilliseconds = delayMilliseconds
        self.hit = hit
    }
}
