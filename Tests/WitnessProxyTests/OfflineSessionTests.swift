import ChildProcesses
import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// Sessions that begin while the charger has no connection, delivered from its offline queue when it comes back,
/// judged from real traffic through the proxy (docs/policies.md, "Outages").
@Suite("Sessions queued during an outage, through the proxy")
struct OfflineSessionTests {
    /// Runs a good charger and one with `quirk` through the same offline session; returns the report and the harness.
    func run(_ version: OCPPVersion, quirk: ChargerQuirk) async throws -> (report: AnalysisReport, good: [Deviation], bad: [Deviation], harness: ProxyHarness) {
        let harness = try await ProxyHarness.start()
        let good = harness.charger(ChargerProfile(id: "OFFLINE-GOOD", vendor: "Good Co", version: version))
        let bad = harness.charger(ChargerProfile(id: "OFFLINE-BAD", vendor: "Bad Co", version: version, quirks: [quirk]))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for charger in [good, bad] {
                group.addTask {
                    try await charger.connect()
                    try await charger.boot()
                    // Long enough that the queued events are dated clear of the outage's ends by more than the clock tolerance.
                    try await charger.offlineSession(outage: .seconds(6), samples: 2)
                    await charger.disconnect()
                }
            }
            try await group.waitForAll()
        }
        await harness.waitForClosedPairs(4)
        let report = try await harness.report()
        return (
            report, report.deviations.filter { $0.chargePoint == "OFFLINE-GOOD" }, report.deviations.filter { $0.chargePoint == "OFFLINE-BAD" }, harness
        )
    }

    @Test("1.6: a queued start stamped at the reconnection is found once, on the first reading taken during the outage; one stamped when it began is not")
    func startStampedAtDelivery() async throws {
        let (_, good, bad, harness) = try await self.run(.v16, quirk: .stampsQueuedStartAtDelivery)
        #expect(good.map { "\($0.rule): \($0.detail)" } == [])
        #expect(bad.map(\.rule) == ["tx.stampedAtDelivery"], "\(bad.map(\.detail))")
        let reading = try #require(try await harness.record(at: bad.first?.ref ?? ""))
        #expect(reading.action == "MeterValues" && reading.chargePoint == "OFFLINE-BAD")
        let start = try #require(try await harness.record(at: bad.first?.related.first ?? ""))
        #expect(start.action == "StartTransaction" && start.messageType == .call)
        let reconnected = try #require(try await harness.record(at: bad.first?.related.last ?? ""))
        #expect(reconnected.kind == "open")
        await harness.stop()
    }

    @Test("a queue stamped as it is sent after the reconnection is found once, on the first reading; one stamped when things happened is not", arguments: [OCPPVersion.v16, .v201])
    func queueStampedAtReconnection(version: OCPPVersion) async throws {
        let (_, good, bad, harness) = try await self.run(version, quirk: .stampsQueueAtReconnection)
        #expect(good.map { "\($0.rule): \($0.detail)" } == [])
        #expect(bad.map(\.rule) == ["tx.stampedAtDelivery"], "\(bad.map(\.detail))")
        let finding = try #require(bad.first)
        #expect(finding.detail.contains("both at or after the charger reconnected"), "\(finding.detail)")
        let reading = try #require(try await harness.record(at: finding.ref ?? ""))
        #expect(reading.action == (version == .v16 ? "MeterValues" : "TransactionEvent") && reading.chargePoint == "OFFLINE-BAD")
        // The transaction's start and the reconnection.
        let start = try #require(try await harness.record(at: finding.related.first ?? ""))
        #expect(start.action == (version == .v16 ? "StartTransaction" : "TransactionEvent") && start.messageType == .call)
        let reconnected = try #require(try await harness.record(at: finding.related.last ?? ""))
        #expect(reconnected.kind == "open")
        await harness.stop()
    }

    @Test("readings delivered after the stop: 1.6 out of order (a warning per message), 2.0.1 reordering its seqNo allows (info)", arguments: [OCPPVersion.v16, .v201])
    func readingsAfterStop(version: OCPPVersion) async throws {
        let (_, good, bad, harness) = try await self.run(version, quirk: .deliversReadingsAfterStop)
        #expect(good.map { "\($0.rule): \($0.detail)" } == [])
        #expect(bad.map(\.rule) == ["tx.deliveredAfterStop", "tx.deliveredAfterStop"], "\(bad.map(\.detail))")
        #expect(bad.allSatisfy { $0.severity == (version == .v16 ? .warning : .info) })
        let stop = try #require(try await harness.record(at: bad.first?.related.first ?? ""))
        #expect(stop.action == (version == .v16 ? "StopTransaction" : "TransactionEvent") && stop.messageType == .call)
        await harness.stop()
    }

    @Test("2.0.1: events queued during the outage say offline: true; a charger that leaves the flag out is found once for the outage")
    func offlineFlag() async throws {
        let (_, good, bad, harness) = try await self.run(.v201, quirk: .forgetsOfflineFlag)
        #expect(good.map { "\($0.rule): \($0.detail)" } == [])
        // The Started event and the two Updated events happened offline, the Ended event online: one finding
        // for the transaction and outage, on the first of them.
        #expect(bad.map(\.rule) == ["tx.offlineNotFlagged"], "\(bad.map(\.detail))")
        #expect(bad.first?.detail.contains("Started event") == true)
        for finding in bad {
            let event = try #require(try await harness.record(at: finding.ref ?? ""))
            #expect(event.action == "TransactionEvent" && event.message?[3]?["offline"] == nil)
        }
        await harness.stop()
    }

    @Test("2.0.1: a transaction whose events skip a seqNo is a gap, decided at the end of the capture")
    func seqNoGap() async throws {
        let (_, good, bad, harness) = try await self.run(.v201, quirk: .skipsSeqNo)
        #expect(good.map { "\($0.rule): \($0.detail)" } == [])
        #expect(bad.map(\.rule) == ["tx.seqNoGap"], "\(bad.map(\.detail))")
        #expect(bad.first?.detail.contains("seqNo 2 ") == true, "\(bad.first?.detail ?? "")")
        let ended = try #require(try await harness.record(at: bad.first?.ref ?? ""))
        #expect(ended.message?[3]?["eventType"]?.stringValue == "Ended")
        await harness.stop()
    }

    /// The Python `ocpp` library (Tests/Interop/outage_session.py): a session whose connection drops, two readings
    /// queued offline (2.0.1: offline: true) and delivered on reconnecting, and the stop sent twice.
    @Test("the Python ocpp library losing its connection mid-session and resending its stop gives no warning or error", arguments: [OCPPVersion.v16, .v201])
    func pythonOutage(version: OCPPVersion) async throws {
        let (centralSystem, port) = try await PythonPeers.startCentralSystem()
        defer { centralSystem.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let summary = try await PythonPeers.run("outage_session.py", ["ws://127.0.0.1:\(harness.proxyURL.port)", "PY-OUTAGE", version.rawValue, "5"])
            #expect(summary.contains(#""reconnected": true"#) && summary.contains(#""queued": 2"#))
            await harness.waitForClosedPairs(2)
            let report = try await harness.report()
            #expect(report.deviations.filter { $0.severity != .info }.map { "\($0.rule) \($0.detail)" } == [])
            // The stop sent twice is known for what it is.
            #expect(report.deviations.map(\.rule) == ["tx.resent"])
        }
    }
}
