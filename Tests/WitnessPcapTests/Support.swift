import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPWire
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

extension ProxyHarness {
    /// Runs a charger through boot, a charging session and a clean close; waits for the proxy to record the close.
    func runCharger(_ profile: ChargerProfile) async throws {
        let closed = self.proxy.statistics.closed + 1
        let charger = self.charger(profile)
        let endpoint = try await charger.connect()
        try await charger.boot()
        try await charger.chargingSession(meterSamples: 2)
        await endpoint.close()
        await self.waitForClosedPairs(closed)
    }
}

/// What a user compares between two captures of the same traffic: per message, who sent what.
struct MessageFacts: Hashable, CustomStringConvertible {
    var chargePoint: String
    var direction: String
    var opcode: String
    var payload: [UInt8]
    var action: String?
    var messageType: Int?

    init(_ record: CaptureRecord) {
        self.chargePoint = record.chargePoint ?? ""
        self.direction = record.direction?.rawValue ?? ""
        self.opcode = record.fields["opcode"]?.stringValue ?? ""
        self.payload = record.payloadBytes ?? []
        self.action = record.action
        self.messageType = record.fields["msgType"]?.intValue
    }

    var description: String { "\(self.chargePoint) \(self.direction) \(self.opcode) \(String(decoding: self.payload, as: UTF8.self))" }
}

func readCapture(_ path: String) throws -> [CaptureRecord] {
    let reader = try CaptureReader(paths: [path])
    reader.keepsMessageText = true
    return Array(reader)
}

/// Data messages and close frames of a capture, per charge point and direction, in capture order
/// (the order of the two directions relative to each other depends on where the traffic was seen).
func messageFacts(_ records: [CaptureRecord]) -> [String: [MessageFacts]] {
    var result: [String: [MessageFacts]] = [:]
    for record in records where record.kind == "frame" && ["text", "binary", "close"].contains(record.fields["opcode"]?.stringValue ?? "") {
        result[(record.chargePoint ?? "") + " " + (record.direction?.rawValue ?? ""), default: []].append(MessageFacts(record))
    }
    return result
}
