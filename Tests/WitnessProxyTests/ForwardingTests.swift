import Foundation
import NIOCore
import NIOWebSocket
import OCPPWire
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@Suite("Forwarding through the proxy")
struct ForwardingTests {
    @Test("a full session arrives byte-identical on the far side and is recorded", arguments: [OCPPVersion.v16, .v201])
    func fullSession(version: OCPPVersion) async throws {
        try await ProxyHarness.start().run { harness in
            let charger = harness.charger(ChargerProfile(id: "CP-\(version.rawValue)", version: version))
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 2)
            let atCSMS = await harness.csms.connection(charger.profile.id)
            let remoteStart: JSONValue = version == .v16
                ? ["idTag": "REMOTE1", "connectorId": 1]
                : ["idToken": ["idToken": "REMOTE1", "type": "Central"], "remoteStartId": 7]
            let answer = try await atCSMS.call(version == .v16 ? "RemoteStartTransaction" : "RequestStartTransaction", remoteStart)
            #expect(try answer.payload()["status"] == "Accepted")
            await charger.disconnect(reason: "done")
            await harness.waitForClosedPairs(1)

            let chargerSide = try #require(charger.endpoint).transcript
            let csmsSide = atCSMS.transcript
            #expect(chargerSide.sent == csmsSide.received)
            #expect(csmsSide.sent == chargerSide.received)
            #expect(atCSMS.version == version)

            let frames = try await harness.frames(charger.profile.id).filter { $0.opcode == .text }
            let toCSMS = frames.filter { $0.direction == .toCSMS }
            let toCharger = frames.filter { $0.direction == .toCharger }
            #expect(toCSMS.map { $0.message } == chargerSide.sent.map { try? JSONParser.parse($0) })
            #expect(toCharger.map { $0.message } == csmsSide.sent.map { try? JSONParser.parse($0) })
            // Every CALLRESULT knows the action of the CALL it answers, and its latency.
            let results = frames.filter { $0.messageType == .callResult }
            #expect(!results.isEmpty)
            #expect(results.allSatisfy { $0.action != nil && $0.fields["latencyMs"] != nil })
            let boot = try #require(toCharger.first)
            #expect(boot.action == "BootNotification")
        }
    }
}
