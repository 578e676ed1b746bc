import Foundation
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// A quirk of real firmware, written from its description in public issue trackers, as the frame a charger sends.
struct FieldQuirk: Sendable, CustomStringConvertible {
    var name: String
    var frame: String
    /// The one finding it must produce: `rule path`.
    var expected: [String]
    /// What the charger offers in Sec-WebSocket-Protocol.
    var subprotocols = ["ocpp1.6"]

    var description: String { self.name }

    static let boot = #"[2,"boot","BootNotification",{"chargePointVendor":"Quirky","chargePointModel":"Q1","firmwareVersion":"0.1"}]"#

    static let all: [FieldQuirk] = [
        FieldQuirk(
            name: "offset without minutes",
            frame: #"[2,"q1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:00:00+02"}]"#,
            expected: ["schema.format /timestamp"]
        ),
        FieldQuirk(
            name: "zero date",
            frame: #"[2,"q2","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"0000-00-00T00:00:00Z"}]"#,
            expected: ["schema.format /timestamp"]
        ),
        FieldQuirk(name: "truncated JSON", frame: #"[2,"q3","Heartbeat",{"#, expected: ["rpc.malformed -"]),
        FieldQuirk(name: "leading comma in the array", frame: #"[,2,"q4","Heartbeat",{}]"#, expected: ["rpc.malformed -"]),
        FieldQuirk(
            name: "meterValue as an object",
            frame: #"[2,"q5","MeterValues",{"connectorId":1,"meterValue":{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":"1"}]}}]"#,
            expected: ["schema.type /meterValue"]
        ),
        FieldQuirk(
            name: "a number where a string is required",
            frame: #"[2,"q6","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":1500}]}]}]"#,
            expected: ["schema.type /meterValue/0/sampledValue/0/value"]
        ),
        FieldQuirk(
            name: "serial number over the length limit",
            frame: #"[2,"q7","BootNotification",{"chargePointVendor":"Quirky","chargePointModel":"Q1","chargePointSerialNumber":"SERIAL-0123456789-0123456789"}]"#,
            expected: ["schema.maxLength /chargePointSerialNumber"]
        ),
        FieldQuirk(name: "a 20-digit message id (allowed: ids may have 36 characters)", frame: #"[2,"12345678901234567890","Heartbeat",{}]"#, expected: []),
        FieldQuirk(name: "a CALLERROR without its details", frame: #"[4,"q8","GenericError","no details"]"#, expected: ["rpc.malformed -"]),
        FieldQuirk(
            name: "no Sec-WebSocket-Protocol at all (checked as 1.6)", frame: #"[2,"q9","Heartbeat",{}]"#, expected: ["rpc.noSubprotocol -"], subprotocols: []
        ),
        FieldQuirk(name: "a message id over 36 characters", frame: #"[2,"0123456789-0123456789-0123456789-0123456789","Heartbeat",{}]"#, expected: ["rpc.messageIdTooLong -"]),
    ]
}

@Suite("Field quirks: forwarded as they came, recorded, one finding each")
struct QuirkCorpusTests {
    @Test("each quirk is forwarded unchanged, recorded, and reported once with its rule and path; the connection stays up", arguments: FieldQuirk.all)
    func quirk(_ quirk: FieldQuirk) async throws {
        try await ProxyHarness.start().run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-QUIRK"
            let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: quirk.subprotocols), group: harness.group)
            let csms = await harness.csms.connection("CP-QUIRK")
            // A well-behaved charger on the same proxy at the same time.
            let neighbour = harness.charger(ChargerProfile(id: "CP-NEIGHBOUR"))
            try await neighbour.connect()

            _ = try await charger.call("BootNotification", ["chargePointVendor": "Quirky", "chargePointModel": "Q1", "firmwareVersion": "0.1"])
            charger.sendText(quirk.frame)
            try await neighbour.boot()
            try await neighbour.chargingSession(meterSamples: 1)
            // The proxy did not close the connection on its own account: a later CALL still gets through.
            _ = try await charger.call("Heartbeat", [:])
            #expect(await eventually { csms.transcript.received.contains(quirk.frame) }, "forwarded as it came")
            await neighbour.disconnect()
            await charger.close()
            await harness.waitForClosedPairs(2)

            let frames = try await harness.frames("CP-QUIRK").filter { $0.direction == .toCSMS && $0.opcode == .text }
            // Recorded as it came: the record gives back the exact text, malformed or not.
            #expect(frames.contains { $0.payloadBytes == Array(quirk.frame.utf8) }, "recorded verbatim")
            let report = try await harness.report()
            let found = report.deviations.filter { $0.chargePoint == "CP-QUIRK" }.map { "\($0.rule) \($0.path ?? "-")" }
            #expect(found == quirk.expected)
            #expect(report.deviations.filter { $0.chargePoint == "CP-NEIGHBOUR" }.isEmpty)
            #expect(neighbour.counts.errors == 0)
        }
    }
}
