/// Which way a message travels through the proxy.
public enum Direction: String, Sendable, Hashable, Codable, CaseIterable {
    /// From the charger to the backend.
    case toCSMS
    /// From the backend to the charger.
    case toCharger

    public var reversed: Direction { self == .toCSMS ? .toCharger : .toCSMS }
}

/// Matches CALLs to their CALLRESULT/CALLERROR on one connection, in both directions.
///
/// A CALL travelling `toCSMS` is answered by a message travelling `toCharger`, and the other way round.
/// Each side keeps its own table because each side picks its own message ids.
public struct CallCorrelator: Sendable {
    public struct PendingCall: Sendable, Hashable {
        public var action: String
        /// Monotonic time the CALL was seen, in nanoseconds.
        public var sentAtNanos: UInt64
    }

    /// What observing a message found out.
    public enum Outcome: Sendable, Hashable {
        /// A CALL was registered.
        case call
        /// A CALL reused an id that was still outstanding in the same direction.
        case duplicateCall(previousAction: String)
        /// A response matched an outstanding CALL.
        case response(action: String, latencyNanos: UInt64)
        /// A response matched no outstanding CALL.
        case unmatchedResponse
        /// Nothing to correlate (SEND).
        case none
    }

    /// Bound on outstanding CALLs per direction, so a peer that never answers cannot grow memory forever.
    public let maximumOutstanding: Int
    private var fromCharger: [String: PendingCall] = [:]
    private var fromCSMS: [String: PendingCall] = [:]

    public init(maximumOutstanding: Int = 1024) {
        self.maximumOutstanding = maximumOutstanding
    }

    /// Outstanding CALLs sent in `direction`.
    public func outstanding(_ direction: Direction) -> [String: PendingCall] {
        direction == .toCSMS ? self.fromCharger : self.fromCSMS
    }

    public mutating func observe(_ envelope: OCPPEnvelope, direction: Direction, atNanos now: UInt64) -> Outcome {
        switch envelope.messageType {
        case .call:
            let pending = PendingCall(action: envelope.action ?? "", sentAtNanos: now)
            let limit = self.maximumOutstanding
            return self.withTable(direction) { table in
                if let previous = table[envelope.messageId] {
                    table[envelope.messageId] = pending
                    return .duplicateCall(previousAction: previous.action)
                }
                if table.count >= limit, let oldest = table.min(by: { $0.value.sentAtNanos < $1.value.sentAtNanos }) {
                    table.removeValue(forKey: oldest.key)
                }
                table[envelope.messageId] = pending
                return .call
            }
        case .callResult, .callError, .callResultError:
            return self.withTable(direction.reversed) { table in
                guard let pending = table.removeValue(forKey: envelope.messageId) else { return .unmatchedResponse }
                return .response(action: pending.action, latencyNanos: now &- pending.sentAtNanos)
            }
        case .send:
            return .none
        }
    }

    private mutating func withTable<T>(_ callDirection: Direction, _ body: (inout [String: PendingCall]) -> T) -> T {
        if callDirection == .toCSMS { return body(&self.fromCharger) }
        return body(&self.fromCSMS)
    }
}
