import Logging
import OCPPWire
import ServiceLifecycle
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@Suite("The proxy and the recorder as services")
struct ServiceTests {
    /// The group shuts its services down in reverse order: the proxy closes its pairs first, and the
    /// recorder, listed before it, still writes their close records before it closes.
    @Test("a graceful shutdown of the service group closes the pairs with 1001 and records their closes before the capture closes")
    func gracefulShutdownInOrder() async throws {
        try await ProxyHarness.start().run { harness in
            let charger = harness.charger(ChargerProfile(id: "CP-SERVICE", version: .v16))
            let endpoint = try await charger.connect()
            try await charger.boot()

            var logger = Logger(label: "service-test")
            logger.logLevel = .critical
            let group = ServiceGroup(services: [harness.recorder, harness.proxy], logger: logger)
            let running = Task { try await group.run() }
            await group.triggerGracefulShutdown()
            try await running.value

            await endpoint.waitClosed()
            #expect(endpoint.closeReceived?.code == 1001)
            let statistics = harness.recorder.statistics
            #expect(statistics.recordsLost == 0)
            let records = Array(try CaptureReader(paths: [harness.captureDirectory]))
            let close = records.first { $0.recordKind == .close && $0.chargePoint == "CP-SERVICE" }
            #expect(close?.fields["by"]?.stringValue == "proxy")
            #expect(records.contains { $0.recordKind == .frame && $0.action == "BootNotification" })
            // The recorder closed: what comes later is counted as lost, not written.
            harness.recorder.record(.connection(.error, connection: nil, chargePoint: nil, fields: JSONObject()))
            #expect(harness.recorder.statistics.recordsLost == 1)
        }
    }
}
