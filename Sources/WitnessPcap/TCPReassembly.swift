/// One direction of a TCP connection, put back in order.
///
/// Segments at the expected sequence number are delivered at once; later ones wait until the gap is
/// filled; bytes already delivered (retransmissions, overlaps) are dropped. Sequence numbers compare
/// with serial arithmetic, so wrap-around is fine.
struct HalfStream {
    /// The next byte expected; nil until the SYN (or the first segment, mid-stream) is seen.
    var nextSequence: UInt32?
    /// Segments ahead of `nextSequence`, waiting for the gap before them.
    private(set) var pending: [UInt32: [UInt8]] = [:]
    /// Sequence number of the FIN, once seen.
    var finSequence: UInt32?
    private(set) var retransmittedBytes = 0
    private(set) var outOfOrderSegments = 0
    /// Bound on bytes waiting behind a gap; beyond it the gap is declared lost.
    static let maximumPendingBytes = 4 << 20
    private var pendingBytes = 0

    /// Whether every byte up to the FIN has been delivered.
    var isFinished: Bool {
        guard let fin = self.finSequence, let next = self.nextSequence else { return false }
        return Int32(bitPattern: fin &- next) <= 0
    }

    var hasGap: Bool { !self.pending.isEmpty }

    mutating func accept(sequence: UInt32, payload: ArraySlice<UInt8>, deliver: (ArraySlice<UInt8>) -> Void) {
        guard !payload.isEmpty else { return }
        guard let next = self.nextSequence else {
            self.nextSequence = sequence &+ UInt32(payload.count)
            deliver(payload)
            return
        }
        let ahead = Int32(bitPattern: sequence &- next)
        if ahead > 0 {
            self.outOfOrderSegments += 1
            if let existing = self.pending[sequence], existing.count >= payload.count { return }
            self.pendingBytes += payload.count - (self.pending[sequence]?.count ?? 0)
            self.pending[sequence] = Array(payload)
            return
        }
        self.take(sequence: sequence, payload: payload, deliver: deliver)
        self.drain(deliver: deliver)
    }

    /// Whether so much waits behind a gap that the missing bytes should be given up on.
    var gapIsHopeless: Bool { self.pendingBytes > Self.maximumPendingBytes }

    /// Gives up on a gap: skips to the earliest waiting segment. Returns how many bytes were lost.
    mutating func skipGap(deliver: (ArraySlice<UInt8>) -> Void) -> Int {
        guard let next = self.nextSequence,
            let earliest = self.pending.keys.min(by: { Int32(bitPattern: $0 &- next) < Int32(bitPattern: $1 &- next) })
        else { return 0 }
        let lost = Int(Int32(bitPattern: earliest &- next))
        self.nextSequence = earliest
        self.drain(deliver: deliver)
        return lost
    }

    private mutating func take(sequence: UInt32, payload: ArraySlice<UInt8>, deliver: (ArraySlice<UInt8>) -> Void) {
        guard let next = self.nextSequence else { return }
        let behind = Int(Int32(bitPattern: next &- sequence))
        if behind >= payload.count {
            self.retransmittedBytes += payload.count
            return
        }
        self.retransmittedBytes += behind
        let fresh = payload.dropFirst(behind)
        self.nextSequence = next &+ UInt32(fresh.count)
        deliver(fresh)
    }

    private mutating func drain(deliver: (ArraySlice<UInt8>) -> Void) {
        while let next = self.nextSequence,
            let ready = self.pending.first(where: { Int32(bitPattern: $0.key &- next) <= 0 })
        {
            self.pending.removeValue(forKey: ready.key)
            self.pendingBytes -= ready.value.count
            self.take(sequence: ready.key, payload: ready.value[...], deliver: deliver)
        }
    }
}
