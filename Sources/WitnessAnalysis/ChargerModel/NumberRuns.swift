/// A set of whole numbers kept as sorted, disjoint runs (`3...7`), for the seqNos of a 2.0.1 transaction's
/// events and the ones missing from them. The lowest run is held inline, so that numbers arriving in order
/// (the common case) never allocate; past `runsKept` separate runs the set stops growing (`overflowed`).
struct NumberRuns: Sendable, Equatable {
    private(set) var head: ClosedRange<Int>?
    private(set) var tail: [ClosedRange<Int>] = []
    private(set) var overflowed = false
    static let runsKept = 64

    init() {}

    init(_ runs: [ClosedRange<Int>]) {
        self.set(runs)
    }

    var runs: [ClosedRange<Int>] { (self.head.map { [$0] } ?? []) + self.tail }
    var isEmpty: Bool { self.head == nil }
    var lowest: Int? { self.head?.lowerBound }
    var count: Int { self.runs.reduce(0) { $0 + $1.count } }

    func contains(_ number: Int) -> Bool {
        self.head?.contains(number) == true || self.tail.contains { $0.contains(number) }
    }

    mutating func insert(_ number: Int) {
        guard !self.overflowed else { return }
        guard let head = self.head else {
            self.head = number...number
            return
        }
        if head.contains(number) { return }
        if self.tail.isEmpty {
            if number == head.upperBound + 1 {
                self.head = head.lowerBound...number
                return
            }
            if number == head.lowerBound - 1 {
                self.head = number...head.upperBound
                return
            }
        }
        if self.tail.contains(where: { $0.contains(number) }) { return }
        self.set(self.runs + [number...number])
    }

    mutating func remove(_ number: Int) {
        guard self.contains(number) else { return }
        var runs: [ClosedRange<Int>] = []
        for run in self.runs {
            guard run.contains(number) else {
                runs.append(run)
                continue
            }
            if run.lowerBound < number { runs.append(run.lowerBound...(number - 1)) }
            if number < run.upperBound { runs.append((number + 1)...run.upperBound) }
        }
        self.set(runs)
    }

    /// The numbers from `low` to `high` that are not in the set.
    func gaps(from low: Int, to high: Int) -> NumberRuns {
        guard low <= high else { return NumberRuns() }
        var gaps: [ClosedRange<Int>] = []
        var next = low
        for run in self.runs where run.upperBound >= low {
            if run.lowerBound > high { break }
            if run.lowerBound > next { gaps.append(next...(run.lowerBound - 1)) }
            next = max(next, run.upperBound + 1)
        }
        if next <= high { gaps.append(next...high) }
        return NumberRuns(gaps)
    }

    /// The numbers of the set that are not in `other`.
    func subtracting(_ other: NumberRuns) -> NumberRuns {
        var result = NumberRuns()
        for run in self.runs {
            result.set(result.runs + other.gaps(from: run.lowerBound, to: run.upperBound).runs)
        }
        return result
    }

    /// The lowest `limit` numbers, for a finding's detail.
    func first(_ limit: Int) -> [Int] {
        var numbers: [Int] = []
        for run in self.runs {
            for number in run {
                if numbers.count == limit { return numbers }
                numbers.append(number)
            }
        }
        return numbers
    }

    /// Sorts and merges `runs` (overlapping or adjacent ones become one) and keeps them.
    private mutating func set(_ runs: [ClosedRange<Int>]) {
        var merged: [ClosedRange<Int>] = []
        for run in runs.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, run.lowerBound <= last.upperBound + 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, run.upperBound)
            } else {
                merged.append(run)
            }
        }
        if merged.count > Self.runsKept {
            self.overflowed = true
            merged = Array(merged.prefix(Self.runsKept))
        }
        self.head = merged.first
        self.tail = Array(merged.dropFirst())
    }
}
