import Foundation

/// Response times in logarithmic buckets (2% wide): percentiles within 2% in constant memory, however
/// long the capture.
public struct LatencyHistogram: Sendable, Hashable {
    private static let growth = 1.02
    private static let smallest = 0.001  // milliseconds
    private var buckets: [Int: Int] = [:]
    public private(set) var count = 0
    public private(set) var maximum = 0.0

    public init() {}

    /// Adds a response time; one that is not a finite number of milliseconds (from a damaged capture) is left out.
    public mutating func add(milliseconds: Double) {
        guard milliseconds.isFinite else { return }
        let value = max(milliseconds, Self.smallest)
        let index = Int((log(value / Self.smallest) / log(Self.growth)).rounded(.down))
        self.buckets[index, default: 0] += 1
        self.count += 1
        self.maximum = max(self.maximum, milliseconds)
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for (index, count) in other.buckets { self.buckets[index, default: 0] += count }
        self.count += other.count
        self.maximum = max(self.maximum, other.maximum)
    }

    /// The `fraction` percentile (0.5 for the median), in milliseconds.
    public func percentile(_ fraction: Double) -> Double {
        guard self.count > 0 else { return 0 }
        let rank = max(1, Int((fraction * Double(self.count)).rounded(.up)))
        var seen = 0
        for index in self.buckets.keys.sorted() {
            seen += self.buckets[index] ?? 0
            if seen >= rank {
                // The bucket's upper edge, but never beyond the largest value seen.
                return min(Self.smallest * pow(Self.growth, Double(index + 1)), self.maximum)
            }
        }
        return self.maximum
    }
}
