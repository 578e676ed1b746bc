import Foundation
import OCPPWire
import Testing
import WitnessSim
import WitnessTestSupport

@Suite("Simulator endpoints")
struct EndpointTests {
    @Test("a CALL's timeout keeps its fractions of a second: half a second waits half a second")
    func subSecondTimeout() async throws {
        try await ProxyHarness.start().run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-slow"
            let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
            let csms = await harness.csms.connection("CP-slow")
            // This backend answers only after the caller has given up.
            csms.onCall { _, _ in
                try await Task.sleep(for: .seconds(5))
                return .object(JSONObject())
            }
            let started = ContinuousClock.now
            await #expect(throws: OCPPEndpointError.self) {
                _ = try await charger.call("Heartbeat", .object(JSONObject()), timeout: .milliseconds(500))
            }
            #expect(ContinuousClock.now - started >= .milliseconds(450))
            await charger.close()
        }
    }

    @Test("a charger told to disconnect while it is about to reboot after a Reset stays away")
    func noRebootAfterDisconnect() async throws {
        try await ProxyHarness.start().run { harness in
            let charger = harness.charger(ChargerProfile(id: "CP-OFF", vendor: "Off Co", version: .v16))
            try await charger.connect()
            try await charger.boot()
            let csms = await harness.csms.connection("CP-OFF")
            _ = try await csms.call("Reset", ["type": "Soft"]).payload()
            // The reboot follows the answer after a moment; switched off before it, the charger does not come back.
            await charger.disconnect()
            try await Task.sleep(for: .seconds(1))
            #expect(charger.resetsAccepted == 1)
            #expect(charger.reboots == 0)
            #expect(harness.csms.arrivals.filter { $0.chargePoint == "CP-OFF" }.count == 1)
        }
    }

    @Test("a harness stopped while its charger is about to reboot after a Reset switches the charger off first")
    func stopWhileRebooting() async throws {
        let harness = try await ProxyHarness.start()
        let charger = harness.charger(ChargerProfile(id: "CP-STOP", vendor: "Stop Co", version: .v16))
        try await charger.connect()
        try await charger.boot()
        let csms = await harness.csms.connection("CP-STOP")
        _ = try await csms.call("Reset", ["type": "Soft"]).payload()
        // Without the charger switched off first, its reboot would dial the harness's event loops after
        // they shut down.
        await harness.stop()
        try await Task.sleep(for: .milliseconds(300))
        #expect(charger.resetsAccepted == 1)
        #expect(charger.reboots == 0)
        // No reboot was attempted (and failed) either.
        #expect(charger.counts.errors == 0)
    }

    @Test("a CSMS simulator without history keeps only open connections and no transcripts, however many come and go")
    func simulatorWithoutHistory() async throws {
        var configuration = CSMSSimulator.Configuration(versions: [.v16])
        configuration.keepsHistory = false
        try await ProxyHarness.start(csms: configuration).run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-stays"
            let stays = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
            for index in 0..<300 {
                url.pathPrefix = "/CP-passing-\(index)"
                let passing = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
                #expect(try await passing.call("Heartbeat", [:]).isResult)
                await passing.close()
            }
            #expect(try await stays.call("Heartbeat", [:]).isResult)
            // Kept: the open connection and at most the closed ones since the last pass, never all 300.
            #expect(harness.csms.arrivals.count < 200)
            let open = await harness.csms.connection("CP-stays")
            #expect(open.transcript.received.isEmpty)
            await stays.close()
        }
    }
}
