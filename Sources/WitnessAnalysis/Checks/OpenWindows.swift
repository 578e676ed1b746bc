/// The open windows of one witness check, by charge point: an event is judged against the windows of its
/// own charge point only, so a fleet's many open windows cost an event nothing but its own.
struct OpenWindows {
    private var byChargePoint: [String: [CheckEvaluator.Window]] = [:]
    private var opened: UInt64 = 0

    var isEmpty: Bool { self.byChargePoint.isEmpty }

    func count(of chargePoint: String) -> Int { self.byChargePoint[chargePoint]?.count ?? 0 }

    mutating func append(_ window: CheckEvaluator.Window) {
        var window = window
        self.opened += 1
        window.sequence = self.opened
        self.byChargePoint[window.chargePoint, default: []].append(window)
    }

    /// Takes out the windows of `chargePoint`, in the order they opened, to be judged and put back.
    mutating func take(_ chargePoint: String) -> [CheckEvaluator.Window]? {
        self.byChargePoint.removeValue(forKey: chargePoint)
    }

    /// Puts back the windows of `chargePoint` that are still open.
    mutating func put(_ windows: [CheckEvaluator.Window], for chargePoint: String) {
        if !windows.isEmpty { self.byChargePoint[chargePoint] = windows }
    }

    /// Removes the windows whose deadline is before `now` and returns them in the order they opened, with
    /// the earliest deadline of those left (`Int64.max`: none).
    mutating func removeDue(before now: Int64) -> (due: [CheckEvaluator.Window], earliestLeft: Int64) {
        var due: [CheckEvaluator.Window] = []
        var earliest = Int64.max
        for chargePoint in Array(self.byChargePoint.keys) {
            var windows = self.byChargePoint[chargePoint] ?? []
            windows.removeAll { window in
                if window.deadline < now {
                    due.append(window)
                    return true
                }
                earliest = min(earliest, window.deadline)
                return false
            }
            self.byChargePoint[chargePoint] = windows.isEmpty ? nil : windows
        }
        return (due.sorted { $0.sequence < $1.sequence }, earliest)
    }

    /// Every open window, in the order they opened.
    var inOrder: [CheckEvaluator.Window] {
        self.unordered.sorted { $0.sequence < $1.sequence }
    }

    /// Every open window, for counting.
    var unordered: FlattenSequence<Dictionary<String, [CheckEvaluator.Window]>.Values> {
        self.byChargePoint.values.joined()
    }
}
