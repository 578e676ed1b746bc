import Testing
import WitnessCapture

@Suite("Departures: when a charge point's state is released")
struct DeparturesTests {
    @Test("a charge point is due once its last connection has been closed longer than the retention")
    func due() {
        var departures = Departures(retentionSeconds: 60)
        departures.opened("A")
        departures.opened("A")
        departures.opened("B")
        departures.closed("A", at: 0)
        // One of A's two connections is still open: A has not left.
        #expect(departures.due(at: 1_000_000_000).isEmpty)
        departures.closed("A", at: 10_000_000)
        departures.closed("B", at: 20_000_000)
        #expect(departures.due(at: 70_000_000).isEmpty)
        #expect(departures.due(at: 70_000_001) == ["A"])
        #expect(departures.departedCount == 1)
        #expect(departures.due(at: 80_000_000).isEmpty)
        #expect(departures.due(at: 80_000_001) == ["B"])
        #expect(departures.departedCount == 0)
    }

    @Test("a charge point that returns is not released; leaving again starts its time anew")
    func returns() {
        var departures = Departures(retentionSeconds: 60)
        departures.opened("A")
        departures.closed("A", at: 0)
        departures.opened("A")
        #expect(departures.due(at: 100_000_000).isEmpty)
        departures.closed("A", at: 100_000_000)
        #expect(departures.due(at: 150_000_000).isEmpty)
        #expect(departures.due(at: 170_000_000) == ["A"])
    }

    /// Every departure used to queue an entry until its retention passed: a charger reconnecting every 30 s
    /// queued 2,880 a day.
    @Test("a charger that reconnects all the time keeps one entry in the queue, and is due from its last departure")
    func churn() {
        var departures = Departures(retentionSeconds: 60)
        for second in stride(from: Int64(0), to: 3000, by: 2) {
            departures.opened("A")
            departures.closed("A", at: second * 1_000_000)
        }
        #expect(departures.queuedCount == 1)
        #expect(departures.due(at: 3000_000_000).isEmpty)
        #expect(departures.queuedCount == 1)
        #expect(departures.due(at: 3058_000_001) == ["A"])
        #expect(departures.queuedCount == 0)
    }

    @Test("a retention of never releases nothing")
    func never() {
        var departures = Departures.never
        departures.closed("A", at: 0)
        #expect(departures.due(at: .max).isEmpty)
    }

    @Test("a close without an open (a capture begun mid-connection) is a departure; times at the ends of Int64 do not trap")
    func extremes() {
        var departures = Departures(retentionSeconds: 60)
        departures.closed("A", at: .min)
        departures.closed("B", at: .max)
        #expect(departures.due(at: .min).isEmpty)
        #expect(departures.due(at: .max) == ["A"])
    }
}
