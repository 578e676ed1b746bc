/// Whether one side's socket is read: it is not while its partner cannot take more data, while the recorder is
/// behind, or while faults hold more of its bytes than the budgets allow. A read NIO asks for in a pause waits
/// and goes when the last reason clears. A value with no I/O (RelayStateTests).
struct ReadGate: Equatable {
    private(set) var partnerWritable = true
    private(set) var recorderBehind = false
    private(set) var heldOverBudget = false
    /// NIO asked for a read during a pause.
    private(set) var readWaiting = false

    var paused: Bool { !self.partnerWritable || self.recorderBehind || self.heldOverBudget }

    /// NIO asks for a read: true when it goes to the socket now, false when it waits for the pause to end.
    mutating func readRequested() -> Bool {
        guard self.paused else { return true }
        self.readWaiting = true
        return false
    }

    mutating func partnerWritability(_ writable: Bool) {
        self.partnerWritable = writable
    }

    mutating func recorder(behind: Bool) {
        self.recorderBehind = behind
    }

    mutating func held(overBudget: Bool) {
        self.heldOverBudget = overBudget
    }

    /// After a reason cleared: true when the read that waited goes to the socket now.
    mutating func takeWaitingRead() -> Bool {
        guard !self.paused, self.readWaiting else { return false }
        self.readWaiting = false
        return true
    }
}
