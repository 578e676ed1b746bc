import DequeModule
import HeapModule
import NIOCore

/// Frame bytes that delay and bandwidth faults hold back on one side, with when each may go, what they cost
/// against the held-bytes budgets, and when the release timer must fire. In-order frames go in arrival order
/// (everything forwarded behind a delayed frame waits with it); overtakable ones each go at their own deadline.
/// A value with no I/O: the relay writes what `release` hands out and sets the timer `timerNeeded` asks for
/// (RelayStateTests).
struct HoldQueue {
    private var inOrder = Deque<HeldFrame>()
    private var overtaking = Heap<HeldFrame>()
    private var sequence: UInt64 = 0
    /// What everything held costs against the budgets (`HeldFrame.cost`).
    private(set) var cost = 0
    /// When the bandwidth fault's link is free again: each limited message starts after the one before it.
    private var pacedUntil = NIODeadline.uptimeNanoseconds(0)
    /// The deadline the release timer is set for.
    private(set) var timer: NIODeadline?

    /// Whether frames wait in order, so that anything forwarded now must wait behind them.
    var holdsInOrder: Bool { !self.inOrder.isEmpty }

    var isEmpty: Bool { self.inOrder.isEmpty && self.overtaking.isEmpty }

    /// Holds `bytes` until `deadline`; returns what they cost.
    mutating func hold(_ bytes: ByteBuffer, until deadline: NIODeadline, overtakable: Bool) -> Int {
        self.sequence &+= 1
        let frame = HeldFrame(deadline: deadline, sequence: self.sequence, bytes: bytes)
        if overtakable { self.overtaking.insert(frame) } else { self.inOrder.append(frame) }
        self.cost += frame.cost
        return frame.cost
    }

    /// Holds `bytes` for a link that carries one message after another: they start when the message before them
    /// is through (or `now`) and take `duration`. Returns what they cost.
    mutating func pace(_ bytes: ByteBuffer, now: NIODeadline, taking duration: TimeAmount) -> Int {
        self.pacedUntil = max(now, self.pacedUntil) + duration
        return self.hold(bytes, until: self.pacedUntil, overtakable: false)
    }

    /// When the release timer must be set (or set earlier than it is); nil when the timer set already does.
    mutating func timerNeeded() -> NIODeadline? {
        let next: NIODeadline
        switch (self.inOrder.first?.deadline, self.overtaking.min?.deadline) {
        case (nil, nil): return nil
        case (let inOrder?, nil): next = inOrder
        case (nil, let overtaking?): next = overtaking
        case (let inOrder?, let overtaking?): next = min(inOrder, overtaking)
        }
        if let timer = self.timer, timer <= next { return nil }
        self.timer = next
        return next
    }

    /// The release timer fired.
    mutating func timerFired() {
        self.timer = nil
    }

    /// Hands out the frames due at `now` (in-order ones first, then overtakable ones by deadline); returns what
    /// they cost.
    mutating func release(now: NIODeadline, _ send: (ByteBuffer) -> Void) -> Int {
        var released = 0
        while let first = self.inOrder.first, first.deadline <= now {
            self.inOrder.removeFirst()
            released += first.cost
            send(first.bytes)
        }
        while let first = self.overtaking.min, first.deadline <= now {
            _ = self.overtaking.removeMin()
            released += first.cost
            send(first.bytes)
        }
        self.cost -= released
        return released
    }

    /// Lets go of everything held (the side is gone); returns what it cost.
    mutating func removeAll() -> Int {
        defer { self = HoldQueue() }
        return self.cost
    }
}

/// Frame bytes a fault holds back, and when they may go; ordered by deadline, then by arrival.
struct HeldFrame: Comparable {
    var deadline: NIODeadline
    var sequence: UInt64
    var bytes: ByteBuffer

    /// What a held frame counts against the held-bytes budgets: its bytes and 256 more. Each held message
    /// costs the proxy more than its bytes (its entry here, its record, the analyzer's outstanding CALL), and a
    /// budget of bytes alone let a charger flooding 40-byte CALLs into a delay hold 26,000 of them per
    /// connection, released in bursts faster than the recorder writes.
    static let overhead = 256
    var cost: Int { self.bytes.readableBytes + Self.overhead }

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.deadline, lhs.sequence) < (rhs.deadline, rhs.sequence)
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.deadline == rhs.deadline && lhs.sequence == rhs.sequence
    }
}
