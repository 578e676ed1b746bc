import HeapModule

/// Which way a message travels through the proxy.
public enum Direction: String, Sendable, Hashable, Codable, CaseIterable {
    /// From the charger to the backend.
    case toCSMS
    /// From the backend to the charger.
    case toCharger

    @inlinable
    public var reversed: Direction { self == .toCSMS ? .toCharger : .toCSMS }
}

/// Matches CALLs to their CALLRESULT/CALLERROR on one connection, in both directions.
///
/// A CALL travelling `toCSMS` is answered by a message travelling `toCharger`, and the other way round.
/// Each side keeps its own table because each side picks its own message ids. `Context` is what its user
/// keeps with each outstanding CALL until it is answered (`Void` for the proxy and the recorder, which need
/// only the action and the time; the analyzer keeps where the CALL is in the capture and whether it was valid).
public struct CallCorrelator<Context: Sendable>: Sendable {
    public struct PendingCall: Sendable {
        public var messageId: String
        public var action: String
        /// When the CALL was seen, in nanoseconds of the clock its user observes with.
        public var sentAtNanos: UInt64
        public var context: Context
        /// Order of registration, so calls seen at the same instant keep the order they came in.
        @usableFromInline var sequence: UInt64

        @usableFromInline
        init(messageId: String, action: String, sentAtNanos: UInt64, context: Context, sequence: UInt64) {
            self.messageId = messageId
            self.action = action
            self.sentAtNanos = sentAtNanos
            self.context = context
            self.sequence = sequence
        }
    }

    /// What observing a message found out.
    public enum Outcome: Sendable {
        /// A CALL was registered.
        case call
        /// A CALL reused an id that was still outstanding in the same direction; it replaced `previous`.
        case duplicateCall(previous: PendingCall)
        /// A response matched an outstanding CALL, which is now settled.
        case response(PendingCall, latencyNanos: UInt64)
        /// A response matched no outstanding CALL.
        case unmatchedResponse
        /// Nothing to correlate (SEND).
        case none

        /// For a response, the CALL it answers.
        @inlinable
        public var answeredCall: PendingCall? {
            if case .response(let call, _) = self { return call }
            return nil
        }

        /// For a response, how long after its CALL it came (zero when the clock went backwards between them).
        @inlinable
        public var latencyNanos: UInt64? {
            if case .response(_, let latency) = self { return latency }
            return nil
        }
    }

    /// Bound on outstanding CALLs per direction, so a peer that never answers cannot grow memory forever;
    /// past it the oldest gives way.
    public let maximumOutstanding: Int
    @usableFromInline var fromCharger = Table()
    @usableFromInline var fromCSMS = Table()
    @usableFromInline var sequence: UInt64 = 0
    /// No outstanding CALL was sent before this (`UInt64.max`: none is outstanding). Answers do not raise it;
    /// the next `expire` does, so that an expiry check costs one comparison until the oldest call may be due.
    @usableFromInline var earliestSentAt = UInt64.max

    /// The outstanding CALLs of one direction: by id, and in the order they were sent, so that the oldest is
    /// found in O(log n). A charger that floods CALLs without waiting for answers keeps the table at its bound;
    /// a scan of the whole table per CALL (for the oldest to evict, or to expire) made that quadratic.
    @usableFromInline
    struct Table: Sendable {
        @usableFromInline var calls: [String: PendingCall] = [:]
        /// Every CALL registered, oldest first. Entries of CALLs answered since are left in place and skipped
        /// when they come to the top; the heap is rebuilt when they are more than half of it.
        @usableFromInline var order = Heap<Entry>()

        @usableFromInline
        init() {}

        @inlinable
        var count: Int { self.calls.count }

        /// Entries in the order, answered ones not yet dropped included (the tests hold it bounded).
        var entriesInOrder: Int { self.order.count }

        /// The oldest CALL still outstanding, after dropping answered ones from the top of the order.
        @inlinable
        mutating func oldest() -> PendingCall? {
            while let top = self.order.min {
                if let call = self.calls[top.messageId], call.sequence == top.sequence { return call }
                _ = self.order.removeMin()
            }
            return nil
        }

        @inlinable
        mutating func insert(_ call: PendingCall) -> PendingCall? {
            self.order.insert(Entry(sentAtNanos: call.sentAtNanos, sequence: call.sequence, messageId: call.messageId))
            let previous = self.calls.updateValue(call, forKey: call.messageId)
            // A peer repeating one id leaves a stale entry per repeat, which no answer removes.
            if previous != nil { self.compactIfStale() }
            return previous
        }

        @inlinable
        mutating func compactIfStale() {
            guard self.order.count > 2 * self.calls.count + 32 else { return }
            self.order = Heap(self.calls.values.map { Entry(sentAtNanos: $0.sentAtNanos, sequence: $0.sequence, messageId: $0.messageId) })
        }

        @inlinable
        mutating func remove(_ messageId: String) -> PendingCall? {
            guard let call = self.calls.removeValue(forKey: messageId) else { return nil }
            if self.calls.isEmpty {
                self.order = Heap()
            } else {
                self.compactIfStale()
            }
            return call
        }
    }

    /// A CALL's place in its direction's order: sent first, then registered first.
    @usableFromInline
    struct Entry: Comparable, Sendable {
        @usableFromInline var sentAtNanos: UInt64
        @usableFromInline var sequence: UInt64
        @usableFromInline var messageId: String

        @inlinable
        init(sentAtNanos: UInt64, sequence: UInt64, messageId: String) {
            self.sentAtNanos = sentAtNanos
            self.sequence = sequence
            self.messageId = messageId
        }

        @inlinable
        static func < (lhs: Entry, rhs: Entry) -> Bool { (lhs.sentAtNanos, lhs.sequence) < (rhs.sentAtNanos, rhs.sequence) }

        @inlinable
        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.sequence == rhs.sequence }
    }

    @inlinable
    public init(maximumOutstanding: Int = 1024) {
        self.maximumOutstanding = maximumOutstanding
    }

    /// Outstanding CALLs sent in `direction`, by message id.
    @inlinable
    public func outstanding(_ direction: Direction) -> [String: PendingCall] {
        direction == .toCSMS ? self.fromCharger.calls : self.fromCSMS.calls
    }

    /// The CALL a response travelling in `direction` with `messageId` would answer, without settling it.
    @inlinable
    public func call(answeredBy messageId: String, travelling direction: Direction) -> PendingCall? {
        (direction.reversed == .toCSMS ? self.fromCharger : self.fromCSMS).calls[messageId]
    }

    /// The outstanding CALL sent first in `direction`.
    @inlinable
    public mutating func oldestOutstanding(_ direction: Direction) -> PendingCall? {
        self.withTable(direction) { $0.oldest() }
    }

    /// Observes a message of `type` travelling in `direction`: a CALL is registered with `context` (past
    /// `maximumOutstanding` the oldest gives way), a response settles the CALL it answers.
    @inlinable
    public mutating func observe(
        _ type: MessageType, messageId: String, action: String?, direction: Direction, atNanos now: UInt64, context: Context
    ) -> Outcome {
        switch type {
        case .call:
            self.sequence &+= 1
            let pending = PendingCall(messageId: messageId, action: action ?? "", sentAtNanos: now, context: context, sequence: self.sequence)
            let limit = self.maximumOutstanding
            self.earliestSentAt = min(self.earliestSentAt, now)
            return self.withTable(direction) { table in
                if table.calls[messageId] == nil, table.count >= limit, let oldest = table.oldest() {
                    _ = table.remove(oldest.messageId)
                }
                if let previous = table.insert(pending) {
                    return .duplicateCall(previous: previous)
                }
                return .call
            }
        case .callResult, .callError, .callResultError:
            return self.answer(messageId, travelling: direction, atNanos: now)
        case .send:
            return .none
        }
    }

    @inlinable
    public mutating func observe(_ envelope: OCPPEnvelope, direction: Direction, atNanos now: UInt64, context: Context) -> Outcome {
        self.observe(envelope.messageType, messageId: envelope.messageId, action: envelope.action, direction: direction, atNanos: now, context: context)
    }

    /// A response with `messageId` travelling in `direction`: `.response` with the CALL it settles, or
    /// `.unmatchedResponse`.
    @inlinable
    public mutating func answer(_ messageId: String, travelling direction: Direction, atNanos now: UInt64) -> Outcome {
        guard let pending = self.settle(messageId, answerTravelling: direction) else { return .unmatchedResponse }
        return .response(pending, latencyNanos: now >= pending.sentAtNanos ? now - pending.sentAtNanos : 0)
    }

    /// Removes and returns the CALL an answer travelling in `direction` settles, without judging the answer.
    @inlinable
    public mutating func settle(_ messageId: String, answerTravelling direction: Direction) -> PendingCall? {
        self.withTable(direction.reversed) { $0.remove(messageId) }
    }

    /// Removes the CALLs sent at or before `cutoff` that are still unanswered, and returns them with the
    /// direction they travelled, oldest first.
    @inlinable
    public mutating func expire(sentAtOrBefore cutoff: UInt64) -> [(direction: Direction, call: PendingCall)] {
        guard self.earliestSentAt <= cutoff else { return [] }
        var due: [(direction: Direction, call: PendingCall)] = []
        var earliest = UInt64.max
        for direction in Direction.allCases {
            self.withTable(direction) { table in
                while let oldest = table.oldest(), oldest.sentAtNanos <= cutoff {
                    _ = table.remove(oldest.messageId)
                    due.append((direction, oldest))
                }
                earliest = min(earliest, table.oldest()?.sentAtNanos ?? .max)
            }
        }
        self.earliestSentAt = earliest
        if due.count > 1 { due.sort { ($0.call.sentAtNanos, $0.call.sequence) < ($1.call.sentAtNanos, $1.call.sequence) } }
        return due
    }

    @inlinable
    mutating func withTable<T>(_ callDirection: Direction, _ body: (inout Table) -> T) -> T {
        if callDirection == .toCSMS { return body(&self.fromCharger) }
        return body(&self.fromCSMS)
    }
}

extension CallCorrelator where Context == Void {
    @inlinable
    public mutating func observe(_ envelope: OCPPEnvelope, direction: Direction, atNanos now: UInt64) -> Outcome {
        self.observe(envelope, direction: direction, atNanos: now, context: ())
    }
}
