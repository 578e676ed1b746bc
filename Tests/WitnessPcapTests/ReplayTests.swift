import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPWire
import Testing
import WitnessCapture
import WitnessTestSupport
@testable import WitnessDiff
@testable import WitnessReplay
import WitnessSim

@Suite("replay and diff")
struct ReplayTests {
    /// Records a 1.6 and a 2.0.1 charger session through the proxy; returns the capture folder.
    private func recordSessions() async throws -> String {
        let bench = try await ProxyHarness.start()
        try await bench.runCharger(ChargerProfile(id: "CP-REPLAY-16", version: .v16))
        try await bench.runCharger(ChargerProfile(id: "CP-REPLAY-201", version: .v201))
        await bench.stop(keepingCapture: true)
        return bench.captureDirectory
    }

    private func replay(_ capture: String, against csms: CSMSSimulator.Configuration) async throws -> Replayer.Outcome {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let simulator = CSMSSimulator(configuration: csms, group: group)
        let address = try await simulator.start()
        var logger = Logger(label: "replay-test")
        logger.logLevel = .critical
        let replayer = Replayer(
            recorded: try RecordedCapture.load([capture]),
            configuration: .init(
                role: .charger(target: try WebSocketURL(parsing: "ws://127.0.0.1:\(address.port ?? 0)/ocpp")),
                captureDirectory: temporaryPath("replayed")
            ),
            group: group, logger: logger
        )
        let outcome = try await replayer.run()
        await simulator.stop()
        try await group.shutdownGracefully()
        return outcome
    }

    @Test("replaying a recorded session against the same CSMS reproduces it with no differences")
    func replayReproduces() async throws {
        let capture = try await self.recordSessions()
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let recorded = try RecordedCapture.load([capture])
        #expect(recorded.map(\.chargePoint) == ["CP-REPLAY-16", "CP-REPLAY-201"])
        let outcome = try await self.replay(capture, against: .init())
        defer { try? FileManager.default.removeItem(atPath: outcome.captureDirectory) }
        #expect(outcome.problems.isEmpty)
        #expect(outcome.diff.isEmpty, "\(outcome.diff.text)")
        #expect(outcome.diff.chargePointsCompared == 2)
        #expect(outcome.callsSent == recorded.reduce(0) { $0 + $1.exchanges(.toCSMS).count })
        #expect(outcome.callsAnswered == outcome.callsSent)
        // The new run is an ordinary capture of the same conversation.
        let replayed = try RecordedCapture.load([outcome.captureDirectory])
        // Sessions are replayed side by side, so compare them per charger rather than in opening order.
        func actions(_ sessions: [RecordedSession]) -> [String: [String]] {
            Dictionary(uniqueKeysWithValues: sessions.map { ($0.chargePoint, $0.exchanges.map(\.action)) })
        }
        #expect(actions(replayed) == actions(recorded))
    }

    @Test("replaying against a CSMS that answers differently reports exactly those differences; new transaction ids are carried along")
    func replayReportsDifferences() async throws {
        let capture = try await self.recordSessions()
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let counter = NIOLockedCounter()
        var different = CSMSSimulator.Configuration()
        different.handler = { chargePoint, version, action, payload in
                switch (version, action) {
                case (.v16, "Authorize"):
                    return ["idTagInfo": ["status": "Blocked"]]
                case (.v16, "BootNotification"):
                    return ["currentTime": "2026-01-01T00:00:00Z", "interval": 60, "status": "Accepted"]
                default:
                    // Transaction ids far from the recorded ones: replay must carry the new id into StopTransaction.
                    return try CSMSAnswers.answer(action, payload, version: version, transactionId: { 9000 + counter.next() })
                }
        }
        let outcome = try await self.replay(capture, against: different)
        defer { try? FileManager.default.removeItem(atPath: outcome.captureDirectory) }
        #expect(outcome.problems.isEmpty)
        let found = outcome.diff.differences.map { "\($0.chargePoint) \($0.action) \($0.part) \($0.path) \($0.first ?? "-") → \($0.second ?? "-")" }
        #expect(
            found == [
                "CP-REPLAY-16 BootNotification answer /interval 300 → 60",
                "CP-REPLAY-16 Authorize answer /idTagInfo/status \"Accepted\" → \"Blocked\"",
            ]
        )
        // The replayed StopTransaction named the transaction the live CSMS assigned.
        let replayed = try RecordedCapture.load([outcome.captureDirectory])
        let stop = replayed.first { $0.chargePoint == "CP-REPLAY-16" }?.exchanges.first { $0.action == "StopTransaction" }
        #expect(stop?.request["transactionId"]?.intValue.map { $0 > 9000 } == true)
    }

    @Test("replaying the backend side towards a live charger answers as recorded and reproduces the run")
    func replayAsCSMS() async throws {
        let capture = try await self.recordSessions()
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var logger = Logger(label: "replay-test")
        logger.logLevel = .critical
        let replayer = Replayer(
            recorded: try RecordedCapture.load([capture]),
            configuration: .init(
                role: .csms(listenHost: "127.0.0.1", listenPort: 0), captureDirectory: temporaryPath("replayed-csms"),
                connectWait: .seconds(30)
            ),
            group: group, logger: logger
        )
        let (addresses, continuation) = AsyncStream<String>.makeStream()
        async let outcome = replayer.run(listening: { continuation.yield($0) })
        var iterator = addresses.makeAsyncIterator()
        let address = try #require(await iterator.next())
        for profile in [ChargerProfile(id: "CP-REPLAY-16", version: .v16), ChargerProfile(id: "CP-REPLAY-201", version: .v201)] {
            let charger = ChargerSimulator(profile: profile, baseURL: try WebSocketURL(parsing: address), group: group)
            let endpoint = try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 2)
            await endpoint.close()
        }
        let result = try await outcome
        defer { try? FileManager.default.removeItem(atPath: result.captureDirectory) }
        try await group.shutdownGracefully()
        #expect(result.problems.isEmpty)
        #expect(result.diff.isEmpty, "\(result.diff.text)")
        #expect(result.diff.chargePointsCompared == 2)
    }

    @Test("diff of two captures finds a missing CALL, an error answer and a changed field, and nothing for identical runs")
    func diffOfCaptures() throws {
        func session(_ exchanges: [RecordedExchange]) -> RecordedSession {
            RecordedSession(
                connection: 1, chargePoint: "CP-D", version: .v16, subprotocol: "ocpp1.6", path: "/CP-D", query: nil, opened: 0,
                closed: nil, closeCode: nil, exchanges: exchanges, otherMessages: 0
            )
        }
        func call(_ action: String, _ time: Int64, _ answer: RecordedExchange.Answer, request: JSONValue = .object(JSONObject())) -> RecordedExchange {
            RecordedExchange(direction: .toCSMS, action: action, request: request, answer: answer, time: time, reference: "a:\(time)", answerReference: nil)
        }
        let before = [
            session([
                call("BootNotification", 1, .result(["status": "Accepted", "currentTime": "2026-01-01T00:00:00Z"])),
                call("StartTransaction", 2, .result(["transactionId": 1])),
                call("MeterValues", 3, .result([:]), request: ["transactionId": 1, "meterValue": [["sampledValue": [["value": "10"]]]]]),
                call("Heartbeat", 4, .result(["currentTime": "2026-01-01T00:00:01Z"])),
                call("StopTransaction", 5, .result([:]), request: ["transactionId": 1]),
            ])
        ]
        let after = [
            session([
                call("BootNotification", 1, .result(["status": "Accepted", "currentTime": "2026-06-01T00:00:00Z"])),
                call("StartTransaction", 2, .result(["transactionId": 77])),
                call("MeterValues", 3, .error(code: "FormationViolation", description: ""), request: ["transactionId": 77, "meterValue": [["sampledValue": [["value": "11"]]]]]),
                call("StopTransaction", 5, .result([:]), request: ["transactionId": 78]),
            ])
        ]
        #expect(CaptureDiff.compare(before, before).isEmpty)
        let report = CaptureDiff.compare(before, after)
        #expect(
            report.differences.map(\.description) == [
                "CP-D charger CALL #3 MeterValues request at /meterValue/0/sampledValue/0/value: value: \"10\" → \"11\"",
                "CP-D charger CALL #3 MeterValues answer: answerKind: CALLRESULT → CALLERROR FormationViolation",
                "CP-D charger CALL #4 Heartbeat request: only in the first run",
                "CP-D charger CALL #5 StopTransaction request at /transactionId: value: 1 → 78",
            ]
        )
    }
}

/// A counter safe to bump from the simulator's handler.
final class NIOLockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        self.lock.lock()
        defer { self.lock.unlock() }
        self.value += 1
        return self.value
    }
}
