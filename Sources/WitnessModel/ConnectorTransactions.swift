/// The transaction running on each connector of one charge point, followed from its messages: the one model
/// that the fault engine's `transactionFor` (on the forwarding path) and the analyzer's rules and checks use.
///
/// A transaction runs on a connector's `unit` (the 1.6 connector, the 2.0.1 EVSE) from its start (a 1.6
/// StartTransaction, whose id its answer assigns; a 2.0.1 TransactionEvent Started, which carries its id) until
/// it ends. A second start on a unit that has one running replaces it and is returned, for whoever judges that.
/// A start that names no connector (the field is optional in 2.0.1 after an EVSE's first event, and a broken
/// charger may leave it out) is followed by its transaction id alone.
public struct ConnectorTransactions: Sendable {
    public struct Running: Sendable {
        /// The transaction id: assigned by the backend (1.6, nil until the start is answered) or chosen by the
        /// charger (2.0.1).
        public var id: String?
        /// Where it runs; nil when its start named no connector.
        public var connector: Connector?
        /// When it started, on the caller's clock (microseconds).
        public var since: Int64
        /// What identifies the 1.6 StartTransaction CALL whose answer assigns `id` (its message id, with what
        /// makes that unique: the connection it travelled on).
        public var startMessageId: String?
        /// The start message's content (a hash), so that a start sent again is known as a resend.
        public var startDigest: Int?

        public init(id: String?, connector: Connector?, since: Int64, startMessageId: String? = nil, startDigest: Int? = nil) {
            self.id = id
            self.connector = connector
            self.since = since
            self.startMessageId = startMessageId
            self.startDigest = startDigest
        }
    }

    /// Where a transaction is kept: its connector's unit, else its id, else (a 1.6 start not yet answered) its
    /// start's message id.
    enum Slot: Hashable {
        case unit(Int)
        case transaction(String)
        case start(String)
    }

    private var byUnit: [Slot: Running] = [:]
    private var unitOf: [String: Slot] = [:]
    /// The transactions that ended most recently (the last `endedKept`): a message of one of them delivered
    /// late (2.0.1 events may arrive reordered) does not start it again.
    private var ended: [String] = []
    public static let endedKept = 16
    /// Units followed at once. Connector ids come from the charger: one naming a new connector in every
    /// message must not grow the model without bound. Past it the transaction that started first is dropped.
    public static let unitsLimit = 64

    public init() {}

    /// Whether nothing runs (transactions that ended are remembered all the same).
    public var isEmpty: Bool { self.byUnit.isEmpty }

    /// Whether `id` ended recently.
    public func hasEnded(_ id: String) -> Bool { self.ended.contains(id) }
    public var count: Int { self.byUnit.count }

    /// The transactions running, in the order of their connectors.
    public var running: [Running] { self.byUnit.values.sorted { ($0.since, $0.id ?? "") < ($1.since, $1.id ?? "") } }

    public func running(on connector: Connector) -> Running? { self.byUnit[.unit(connector.unit)] }

    public func running(id: String) -> Running? { self.unitOf[id].flatMap { self.byUnit[$0] } }

    /// The one that has run longest: what a message that names no connector (a Heartbeat) is judged by.
    public var longestRunning: Running? { self.byUnit.values.min { ($0.since, $0.id ?? "") < ($1.since, $1.id ?? "") } }

    private static func slot(of transaction: Running) -> Slot? {
        if let connector = transaction.connector { return .unit(connector.unit) }
        if let id = transaction.id { return .transaction(id) }
        return transaction.startMessageId.map(Slot.start)
    }

    /// A transaction starts; returns the one that was running on its unit, which it replaces.
    @discardableResult
    public mutating func start(_ transaction: Running) -> Running? {
        guard let unit = Self.slot(of: transaction) else { return nil }
        let previous = self.byUnit[unit]
        if let id = previous?.id { self.unitOf.removeValue(forKey: id) }
        if let id = transaction.id {
            // The same id started again elsewhere moves there.
            if let other = self.unitOf[id], other != unit { self.byUnit.removeValue(forKey: other) }
            self.unitOf[id] = unit
        }
        self.byUnit[unit] = transaction
        if self.byUnit.count > Self.unitsLimit, let oldest = self.byUnit.min(by: { $0.value.since < $1.value.since }) {
            self.byUnit.removeValue(forKey: oldest.key)
            if let id = oldest.value.id { self.unitOf.removeValue(forKey: id) }
        }
        return previous
    }

    /// A 1.6 StartTransaction's answer assigned `id` to the start whose CALL had `messageId`; returns its connector.
    @discardableResult
    public mutating func assign(_ id: String, toStart messageId: String) -> Connector? {
        guard var slot = self.byUnit.first(where: { $0.value.id == nil && $0.value.startMessageId == messageId })?.key else { return nil }
        if let other = self.unitOf[id], other != slot { self.byUnit.removeValue(forKey: other) }
        if case .start = slot, var transaction = self.byUnit.removeValue(forKey: slot) {
            transaction.id = id
            slot = .transaction(id)
            self.byUnit[slot] = transaction
        }
        self.byUnit[slot]?.id = id
        self.unitOf[id] = slot
        return self.byUnit[slot]?.connector
    }

    /// The transaction `id` ended; returns it when it was running.
    @discardableResult
    public mutating func end(_ id: String) -> Running? {
        if !self.ended.contains(id) {
            self.ended.append(id)
            if self.ended.count > Self.endedKept { self.ended.removeFirst() }
        }
        guard let unit = self.unitOf.removeValue(forKey: id) else { return nil }
        return self.byUnit.removeValue(forKey: unit)
    }

    /// Gives `id` to the transaction running on `connector` that has none yet (a start whose CALL was sent
    /// again: the answer to either assigns it).
    @discardableResult
    public mutating func assign(_ id: String, on connector: Connector) -> Bool {
        let slot = Slot.unit(connector.unit)
        guard self.byUnit[slot]?.id == nil, self.byUnit[slot] != nil else { return false }
        if let other = self.unitOf[id], other != slot { self.byUnit.removeValue(forKey: other) }
        self.byUnit[slot]?.id = id
        self.unitOf[id] = slot
        return true
    }

    /// A start that was not answered (its CALL failed or timed out) runs nothing.
    public mutating func abandon(start messageId: String) {
        if let unit = self.byUnit.first(where: { $0.value.id == nil && $0.value.startMessageId == messageId })?.key {
            self.byUnit.removeValue(forKey: unit)
        }
    }
}
