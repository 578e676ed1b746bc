import Foundation
import NIOCore
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture

/// One exchange on one connection, as the proxy would record it.
struct RuleCase: Sendable, CustomStringConvertible {
    var name: String
    var version: OCPPVersion? = .v16
    /// (seconds after the start, text or "binary", direction)
    var frames: [(Double, String, Direction)]
    var expected: [String]

    var description: String { self.name }
}

/// Writes `frames` through the real capture writer, with envelope parsing and correlation as in the proxy.
func capture(_ ruleCase: RuleCase) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString)").path
    let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader(backendName: "B"))
    let start: Int64 = Timestamp.now().microseconds - 120_000_000
    var open: JSONObject = ["chosen": .null, "version": .null]
    if let version = ruleCase.version { open = ["chosen": .string(version.subprotocol), "version": .string(version.rawValue)] }
    writer.record(.record(kind: .open, ts: Timestamp(microseconds: start), connection: 1, chargePoint: "CP", direction: nil, fields: open))
    var correlator = CallCorrelator<Void>()
    for (offset, text, direction) in ruleCase.frames {
        let ts = start + Int64(offset * 1_000_000)
        if text == "binary" {
            writer.record(.frame(FrameEvent(ts: Timestamp(microseconds: ts), connection: 1, chargePoint: "CP", direction: direction, opcode: .binary, payload: ByteBuffer(bytes: [1, 2]))))
            continue
        }
        let buffer = ByteBuffer(string: text)
        var event = FrameEvent(ts: Timestamp(microseconds: ts), connection: 1, chargePoint: "CP", direction: direction, opcode: .text, payload: buffer)
        switch OCPPEnvelope.parse(buffer) {
        case .success(let envelope):
            event.envelope = envelope
            event.note(correlator.observe(envelope, direction: direction, atNanos: UInt64(ts) * 1000))
        case .failure(let malformed):
            event.malformed = malformed
        }
        writer.record(.frame(event))
    }
    writer.record(.record(kind: .close, ts: Timestamp(microseconds: start + 100_000_000), connection: 1, chargePoint: "CP", direction: nil, fields: [:]))
    writer.close()
    return directory
}

@Suite("Deviation rules, one at a time")
struct RuleTests {
    static let t0 = "2026-11-24T10:00:00Z"

    static let cases: [RuleCase] = [
        RuleCase(name: "an unanswered CALL times out", frames: [(0, #"[2,"1","Heartbeat",{}]"#, .toCSMS)], expected: ["rpc.timeout"]),
        RuleCase(name: "a late answer times out", frames: [(0, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (31, #"[3,"1",{"currentTime":"\#(t0)"}]"#, .toCharger)], expected: ["rpc.timeout"]),
        RuleCase(name: "an id reused while outstanding",
                 frames: [(0, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (1, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (2, #"[3,"1",{"currentTime":"\#(t0)"}]"#, .toCharger)],
                 expected: ["rpc.duplicateMessageId"]),
        // One cause, one finding: the answer has to repeat the CALL's id.
        RuleCase(name: "a message id over 36 characters",
                 frames: [(0, #"[2,"0123456789012345678901234567890123456","Heartbeat",{}]"#, .toCSMS), (1, #"[3,"0123456789012345678901234567890123456",{"currentTime":"\#(t0)"}]"#, .toCharger)],
                 expected: ["rpc.messageIdTooLong"]),
        RuleCase(name: "a 2.0.1 action on a 1.6 connection",
                 frames: [(0, #"[2,"1","TransactionEvent",{}]"#, .toCSMS), (1, #"[4,"1","NotImplemented","",{}]"#, .toCharger)],
                 expected: ["rpc.unknownAction"]),
        RuleCase(name: "SEND on 2.0.1", version: .v201,
                 frames: [(0, #"[6,"1","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"\#(t0)","data":[]}]"#, .toCSMS)],
                 expected: ["rpc.messageTypeNotInVersion"]),
        RuleCase(name: "CALLRESULTERROR on 1.6 settles its CALL",
                 frames: [(0, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (1, #"[5,"1","InternalError","",{}]"#, .toCharger)],
                 expected: ["rpc.messageTypeNotInVersion"]),
        // The Python ocpp library stamps an Ended event and its meter value with two readings of one clock.
        RuleCase(name: "an end reading microseconds after its Ended event is within the clock's tolerance", version: .v201,
                 frames: [
                    (0, #"[2,"e0","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00.000000Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"2026-11-24T10:00:00.000009Z","sampledValue":[{"value":1000}]}]}]"#, .toCSMS),
                    (1, #"[3,"e0",{}]"#, .toCharger),
                    (2, #"[2,"e1","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:05:00.000000Z","triggerReason":"EVDeparted","seqNo":1,"transactionInfo":{"transactionId":"tx1","stoppedReason":"EVDisconnected"},"meterValue":[{"timestamp":"2026-11-24T10:05:00.000011Z","sampledValue":[{"value":2500,"context":"Transaction.End"}]}]}]"#, .toCSMS),
                    (3, #"[3,"e1",{}]"#, .toCharger),
                 ],
                 expected: []),
        RuleCase(name: "an end reading seconds after its Ended event is outside the transaction", version: .v201,
                 frames: [
                    (0, #"[2,"e0","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"}}]"#, .toCSMS),
                    (1, #"[3,"e0",{}]"#, .toCharger),
                    (2, #"[2,"e1","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:05:00Z","triggerReason":"EVDeparted","seqNo":1,"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"2026-11-24T10:05:03Z","sampledValue":[{"value":2500,"context":"Transaction.End"}]}]}]"#, .toCSMS),
                    (3, #"[3,"e1",{}]"#, .toCharger),
                 ],
                 expected: ["tx.timestampOutside"]),
        RuleCase(name: "NotImplemented for a required action",
                 frames: [(0, #"[2,"r1","Reset",{"type":"Soft"}]"#, .toCharger), (1, #"[4,"r1","NotImplemented","",{}]"#, .toCSMS)],
                 expected: ["rpc.notImplementedRequired"]),
        RuleCase(name: "NotImplemented for an optional action is fine",
                 frames: [(0, #"[2,"r1","ReserveNow",{"connectorId":1,"expiryDate":"\#(t0)","idTag":"T","reservationId":1}]"#, .toCharger), (1, #"[4,"r1","NotImplemented","",{}]"#, .toCSMS)],
                 expected: []),
        RuleCase(name: "a 1.6 error code on 2.0.1", version: .v201,
                 frames: [(0, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (1, #"[4,"1","FormationViolation","",{}]"#, .toCharger)],
                 expected: ["rpc.unknownErrorCode"]),
        RuleCase(name: "a binary frame", frames: [(0, "binary", .toCSMS)], expected: ["rpc.binaryFrame"]),
        RuleCase(name: "a type outside 2...6", frames: [(0, #"[9,"1","Heartbeat",{}]"#, .toCSMS)], expected: ["rpc.unknownMessageType"]),
        RuleCase(name: "no subprotocol", version: nil,
                 frames: [(0, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (1, #"[3,"1",{"currentTime":"\#(t0)"}]"#, .toCharger)],
                 expected: ["rpc.noSubprotocol"]),
        RuleCase(name: "meter values outside the transaction, in the future, and an end reading that disagrees with meter stop",
                 frames: [
                    (0, #"[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (1, #"[3,"s",{"transactionId":5,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (2, #"[2,"m1","MeterValues",{"connectorId":1,"transactionId":5,"meterValue":[{"timestamp":"2026-11-24T09:59:00Z","sampledValue":[{"value":"1100"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m1",{}]"#, .toCharger),
                    (4, #"[2,"m2","MeterValues",{"connectorId":1,"transactionId":5,"meterValue":[{"timestamp":"2099-01-01T00:00:00Z","sampledValue":[{"value":"1200","unit":"Wh"},{"value":"0.5","unit":"kWh","measurand":"Energy.Active.Import.Register","phase":"L1"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m2",{}]"#, .toCharger),
                    (6, #"[2,"p","StopTransaction",{"transactionId":5,"meterStop":1500,"timestamp":"2026-11-24T10:05:00Z","transactionData":[{"timestamp":"2026-11-24T10:05:00Z","sampledValue":[{"value":"1.9","unit":"kWh","context":"Transaction.End"}]}]}]"#, .toCSMS),
                    (7, #"[3,"p",{"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                 ],
                 expected: ["tx.timestampOutside", "tx.timestampInFuture", "tx.timestampOutside", "tx.sampleOutOfRange", "tx.energyMismatch"]),
        // A hostile charger's absurd numbers are judged like any other; writing 1e300 Wh used to trap the process
        // (live analysis runs inside the proxy), and a multiplier of -2^63 trapped or of 2^62 looped for ever.
        RuleCase(name: "absurd readings and multipliers are judged, not a crash", version: .v201,
                 frames: [
                    (0, #"[2,"e0","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":1e300}]}]}]"#, .toCSMS),
                    (1, #"[3,"e0",{}]"#, .toCharger),
                    (2, #"[2,"e1","TransactionEvent",{"eventType":"Updated","timestamp":"2026-11-24T10:01:00Z","triggerReason":"MeterValuePeriodic","seqNo":1,"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":5,"unitOfMeasure":{"multiplier":-9223372036854775808}}]}]}]"#, .toCSMS),
                    (3, #"[3,"e1",{}]"#, .toCharger),
                    (4, #"[2,"e2","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:02:00Z","triggerReason":"EVDeparted","seqNo":2,"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"2026-11-24T10:02:00Z","sampledValue":[{"value":7,"context":"Transaction.End","unitOfMeasure":{"multiplier":4611686018427387904}}]}]}]"#, .toCSMS),
                    (5, #"[3,"e2",{}]"#, .toCharger),
                 ],
                 // 5 × 10^-400 Wh reads as 0, below the start of 1e300 Wh.
                 expected: ["tx.sampleOutOfRange"]),
        // A 1.6 StopTransaction whose transactionData repeats the Transaction.Begin reading after the periodic
        // ones (StopTxnSampledData with Transaction.Begin): readings go by their timestamps, not their arrival.
        RuleCase(name: "StopTransaction data repeating the Begin reading after periodic MeterValues is no backwards register",
                 frames: [
                    (0, #"[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (1, #"[3,"s",{"transactionId":7,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (2, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500","context":"Sample.Periodic"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z","transactionData":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":"1000","context":"Transaction.Begin"}]},{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500","context":"Sample.Periodic"}]},{"timestamp":"2026-11-24T10:02:00Z","sampledValue":[{"value":"2000","context":"Transaction.End"}]}]}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: []),
        RuleCase(name: "a reading dated before the latest one but above it is a backwards register",
                 frames: [
                    (0, #"[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (1, #"[3,"s",{"transactionId":7,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (2, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:02:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m",{}]"#, .toCharger),
                    (4, #"[2,"n","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1800"}]}]}]"#, .toCSMS),
                    (5, #"[3,"n",{}]"#, .toCharger),
                    (6, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:03:00Z"}]"#, .toCSMS),
                    (7, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["tx.registerBackwards"]),
        // One cause, one finding: what follows from a finding is not a second one.
        RuleCase(name: "a CALL whose id is a number, answered with it as a string: only the CALL is malformed",
                 frames: [(0, #"[2,123,"Heartbeat",{}]"#, .toCSMS), (1, #"[3,"123",{"currentTime":"\#(t0)"}]"#, .toCharger)],
                 expected: ["rpc.malformed"]),
        RuleCase(name: "a CALL whose id is a number, answered with the same number: only the CALL is malformed",
                 frames: [(0, #"[2,123,"Heartbeat",{}]"#, .toCSMS), (1, #"[3,123,{"currentTime":"\#(t0)"}]"#, .toCharger)],
                 expected: ["rpc.malformed"]),
        RuleCase(name: "an id reused while outstanding, and both CALLs answered: the reuse alone",
                 frames: [
                    (0, #"[2,"1","Heartbeat",{}]"#, .toCSMS), (1, #"[2,"1","Heartbeat",{}]"#, .toCSMS),
                    (2, #"[3,"1",{"currentTime":"\#(t0)"}]"#, .toCharger), (3, #"[3,"1",{"currentTime":"\#(t0)"}]"#, .toCharger),
                 ],
                 expected: ["rpc.duplicateMessageId"]),
        RuleCase(name: "a 2.0.1 TransactionEvent on a 1.6 connection is an unknown action, not a transaction left running",
                 frames: [
                    (0, #"[2,"e0","TransactionEvent",{"eventType":"Started","timestamp":"\#(t0)","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"}}]"#, .toCSMS),
                    (1, #"[3,"e0",{}]"#, .toCharger),
                 ],
                 expected: ["rpc.unknownAction"]),
        // Resends, late messages and stopped transactions (OCPP 1.6 3.7, 3.7.1; 2.0.1 E 1.3.2, E13).
        RuleCase(name: "a StopTransaction sent again after its answer was lost is a resend, not an unknown transaction",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (3, #"[3,"e",{}]"#, .toCharger),
                    (4, #"[2,"e2","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e2",{}]"#, .toCharger),
                 ],
                 expected: ["tx.resent"]),
        RuleCase(name: "a StartTransaction sent again is a resend; the charger goes on with the id of the answer it got",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + start16("s2", connector: 1, id: 8, at: "10:00:00", offset: 2) + [
                    (4, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":8,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m",{}]"#, .toCharger),
                    (6, #"[2,"e","StopTransaction",{"transactionId":8,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (7, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["tx.resent"]),
        RuleCase(name: "meter values dated before the stop but delivered after it are late (1.6: chronological order)",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (3, #"[3,"e",{}]"#, .toCharger),
                    (4, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m",{}]"#, .toCharger),
                 ],
                 expected: ["tx.deliveredAfterStop"]),
        RuleCase(name: "meter values dated after the stop name a transaction that is over",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (3, #"[3,"e",{}]"#, .toCharger),
                    (4, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:03:00Z","sampledValue":[{"value":"2100"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m",{}]"#, .toCharger),
                 ],
                 expected: ["tx.unknownTransactionId"]),
        RuleCase(name: "transaction id -1, sent by a charger that never got its id, is allowed (1.6 errata 3.18)",
                 frames: [
                    (0, #"[2,"e","StopTransaction",{"transactionId":-1,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (1, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: []),
        RuleCase(name: "a 2.0.1 event numbered before Ended and delivered after it is allowed reordering; one numbered after it is not", version: .v201,
                 frames: [
                    (0, #"[2,"a","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1}}]"#, .toCSMS),
                    (1, #"[3,"a",{}]"#, .toCharger),
                    (2, #"[2,"c","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:02:00Z","triggerReason":"EVDeparted","seqNo":2,"transactionInfo":{"transactionId":"tx1"}}]"#, .toCSMS),
                    (3, #"[3,"c",{}]"#, .toCharger),
                    (4, #"[2,"b","TransactionEvent",{"eventType":"Updated","timestamp":"2026-11-24T10:01:00Z","triggerReason":"MeterValuePeriodic","seqNo":1,"transactionInfo":{"transactionId":"tx1"}}]"#, .toCSMS),
                    (5, #"[3,"b",{}]"#, .toCharger),
                    (6, #"[2,"d","TransactionEvent",{"eventType":"Updated","timestamp":"2026-11-24T10:03:00Z","triggerReason":"MeterValuePeriodic","seqNo":3,"transactionInfo":{"transactionId":"tx1"}}]"#, .toCSMS),
                    (7, #"[3,"d",{}]"#, .toCharger),
                 ],
                 expected: ["tx.deliveredAfterStop", "tx.unknownTransactionId"]),
        // Connectors and EVSEs.
        RuleCase(name: "two connectors charging at once are judged apart",
                 frames: start16("s1", connector: 1, id: 7, at: "10:00:00") + start16("s2", connector: 2, id: 8, at: "10:00:30", offset: 2) + [
                    (4, #"[2,"m1","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m1",{}]"#, .toCharger),
                    (6, #"[2,"m2","MeterValues",{"connectorId":2,"transactionId":8,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1200"}]}]}]"#, .toCSMS),
                    (7, #"[3,"m2",{}]"#, .toCharger),
                    (8, #"[2,"e1","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (9, #"[3,"e1",{}]"#, .toCharger),
                    (10, #"[2,"a1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:02:01Z"}]"#, .toCSMS),
                    (11, #"[3,"a1",{}]"#, .toCharger),
                    (12, #"[2,"e2","StopTransaction",{"transactionId":8,"meterStop":1300,"timestamp":"2026-11-24T10:03:00Z"}]"#, .toCSMS),
                    (13, #"[3,"e2",{}]"#, .toCharger),
                 ],
                 expected: []),
        RuleCase(name: "a second transaction on a connector that has one running",
                 frames: start16("s1", connector: 1, id: 7, at: "10:00:00") + start16("s2", connector: 1, id: 8, at: "10:01:00", offset: 2) + [
                    (4, #"[2,"e","StopTransaction",{"transactionId":8,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 // The first transaction, never stopped, is that finding's, not also tx.notStopped.
                 expected: ["connector.transactionBusy"]),
        RuleCase(name: "a second transaction on a 2.0.1 EVSE that has one running", version: .v201,
                 frames: [
                    (0, #"[2,"a","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1}}]"#, .toCSMS),
                    (1, #"[3,"a",{}]"#, .toCharger),
                    (2, #"[2,"b","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:01:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx2"},"evse":{"id":1,"connectorId":1}}]"#, .toCSMS),
                    (3, #"[3,"b",{}]"#, .toCharger),
                    (4, #"[2,"c","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:02:00Z","triggerReason":"EVDeparted","seqNo":1,"transactionInfo":{"transactionId":"tx2"}}]"#, .toCSMS),
                    (5, #"[3,"c",{}]"#, .toCharger),
                 ],
                 expected: ["connector.transactionBusy"]),
        RuleCase(name: "meter values naming another connector than their transaction's",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"m","MeterValues",{"connectorId":2,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["connector.mismatch"]),
        RuleCase(name: "a 2.0.1 event naming another EVSE than its transaction's", version: .v201,
                 frames: [
                    (0, #"[2,"a","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1}}]"#, .toCSMS),
                    (1, #"[3,"a",{}]"#, .toCharger),
                    (2, #"[2,"c","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:02:00Z","triggerReason":"EVDeparted","seqNo":1,"transactionInfo":{"transactionId":"tx1"},"evse":{"id":2,"connectorId":1}}]"#, .toCSMS),
                    (3, #"[3,"c",{}]"#, .toCharger),
                 ],
                 expected: ["connector.mismatch"]),
        RuleCase(name: "connector 0 reporting a connector-only status (1.6)",
                 frames: [
                    (0, #"[2,"z","StatusNotification",{"connectorId":0,"errorCode":"NoError","status":"Charging"}]"#, .toCSMS),
                    (1, #"[3,"z",{}]"#, .toCharger),
                 ],
                 expected: ["connector.zeroStatus"]),
        RuleCase(name: "a connector Available while its transaction runs, by the messages' timestamps (1.6)",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"a","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:01:00Z"}]"#, .toCSMS),
                    (3, #"[3,"a",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["connector.statusDuringTransaction"]),
        RuleCase(name: "a live Available before a queued stop dated earlier is no contradiction (1.6)",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"a","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:05:00Z"}]"#, .toCSMS),
                    (3, #"[3,"a",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: []),
        RuleCase(name: "a StartTransaction sent again before the first is answered: the answer to the resend gives the connector its transaction",
                 frames: [
                    (0, #"[2,"a","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    // Sent again once the first has timed out, as OCPP 1.6 3.7.1 asks.
                    (35, #"[2,"b","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (36, #"[3,"b",{"transactionId":8,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (37, #"[2,"v","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"2026-11-24T10:01:00Z"}]"#, .toCSMS),
                    (38, #"[3,"v",{}]"#, .toCharger),
                    (39, #"[2,"e","StopTransaction",{"transactionId":8,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (40, #"[3,"e",{}]"#, .toCharger),
                 ],
                 // The first start's answer never came; the status is judged against transaction 8, which the model followed.
                 expected: ["rpc.timeout", "tx.resent", "connector.statusDuringTransaction"]),
        RuleCase(name: "a stop written out again with its members in another order and its numbers in another form is a resend",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (3, #"[3,"e",{}]"#, .toCharger),
                    (4, #"[2,"e2","StopTransaction",{"timestamp":"2026-11-24T10:02:00Z","meterStop":2000.0,"transactionId":7}]"#, .toCSMS),
                    (5, #"[3,"e2",{}]"#, .toCharger),
                 ],
                 expected: ["tx.resent"]),
        RuleCase(name: "a status without its own timestamp is not compared with the stop's time (1.6)",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"a","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]"#, .toCSMS),
                    (3, #"[3,"a",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2099-01-01T00:00:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["tx.timestampInFuture"]),
        RuleCase(name: "late meter values without an energy reading are dated by their meter values too",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (3, #"[3,"e",{}]"#, .toCharger),
                    (4, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"7200","measurand":"Power.Active.Import","unit":"W"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m",{}]"#, .toCharger),
                 ],
                 expected: ["tx.deliveredAfterStop"]),
        // What began before the capture, or before the proxy saw it.
        RuleCase(name: "a transaction that began before the capture is noted once and followed from its first message",
                 frames: [
                    (0, #"[2,"m1","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"5000"}]}]}]"#, .toCSMS),
                    (1, #"[3,"m1",{}]"#, .toCharger),
                    (2, #"[2,"m2","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2026-11-24T10:02:00Z","sampledValue":[{"value":"4900"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m2",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":42,"meterStop":5100,"timestamp":"2026-11-24T10:03:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["tx.unknownTransactionId", "tx.registerBackwards"]),
        RuleCase(name: "a StartTransaction answered after its timeout still opens the transaction the charger goes on with",
                 frames: [
                    (0, #"[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (31, #"[3,"s",{"transactionId":7,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (32, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (33, #"[3,"m",{}]"#, .toCharger),
                    (34, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (35, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["rpc.timeout"]),
        RuleCase(name: "a transaction begun before the capture on connector 1 is adopted although connector 2 started one in view",
                 frames: start16("s", connector: 2, id: 101, at: "10:00:00") + [
                    (2, #"[2,"m1","MeterValues",{"connectorId":1,"transactionId":100,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"5000"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m1",{}]"#, .toCharger),
                    (4, #"[2,"m2","MeterValues",{"connectorId":1,"transactionId":100,"meterValue":[{"timestamp":"2026-11-24T10:02:00Z","sampledValue":[{"value":"5100"}]}]}]"#, .toCSMS),
                    (5, #"[3,"m2",{}]"#, .toCharger),
                    (6, #"[2,"e1","StopTransaction",{"transactionId":100,"meterStop":5200,"timestamp":"2026-11-24T10:03:00Z"}]"#, .toCSMS),
                    (7, #"[3,"e1",{}]"#, .toCharger),
                    (8, #"[2,"e2","StopTransaction",{"transactionId":101,"meterStop":2000,"timestamp":"2026-11-24T10:04:00Z"}]"#, .toCSMS),
                    (9, #"[3,"e2",{}]"#, .toCharger),
                 ],
                 expected: ["tx.unknownTransactionId"]),
        RuleCase(name: "an unknown id on a connector whose transaction began in view is an error on each message",
                 frames: start16("s", connector: 1, id: 7, at: "10:00:00") + [
                    (2, #"[2,"m1","MeterValues",{"connectorId":1,"transactionId":8,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (3, #"[3,"m1",{}]"#, .toCharger),
                    (4, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (5, #"[3,"e",{}]"#, .toCharger),
                    (6, #"[2,"m2","MeterValues",{"connectorId":1,"transactionId":9,"meterValue":[{"timestamp":"2026-11-24T10:03:00Z","sampledValue":[{"value":"2100"}]}]}]"#, .toCSMS),
                    (7, #"[3,"m2",{}]"#, .toCharger),
                 ],
                 expected: ["tx.unknownTransactionId", "tx.unknownTransactionId"]),
        RuleCase(name: "a start answered late after its resend was answered keeps the id the charger goes on with",
                 frames: [
                    (0, #"[2,"a","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (35, #"[2,"b","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T10:00:00Z"}]"#, .toCSMS),
                    (36, #"[3,"b",{"transactionId":7,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (37, #"[3,"a",{"transactionId":6,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
                    (38, #"[2,"m","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":"1500"}]}]}]"#, .toCSMS),
                    (39, #"[3,"m",{}]"#, .toCharger),
                    (40, #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (41, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["rpc.timeout", "tx.resent"]),
        RuleCase(name: "a 2.0.1 Updated event delivered before its Started event: the start is filled in when it comes", version: .v201,
                 frames: [
                    (0, #"[2,"b","TransactionEvent",{"eventType":"Updated","timestamp":"2026-11-24T10:01:00Z","triggerReason":"MeterValuePeriodic","seqNo":1,"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1},"meterValue":[{"timestamp":"2026-11-24T10:01:00Z","sampledValue":[{"value":1500}]}]}]"#, .toCSMS),
                    (1, #"[3,"b",{}]"#, .toCharger),
                    (2, #"[2,"a","TransactionEvent",{"eventType":"Started","timestamp":"2026-11-24T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx1"},"evse":{"id":1,"connectorId":1},"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":1000,"context":"Transaction.Begin"}]}]}]"#, .toCSMS),
                    (3, #"[3,"a",{}]"#, .toCharger),
                    // Dated before the start now known: outside the transaction.
                    (4, #"[2,"c","TransactionEvent",{"eventType":"Updated","timestamp":"2026-11-24T10:02:00Z","triggerReason":"MeterValuePeriodic","seqNo":2,"transactionInfo":{"transactionId":"tx1"},"meterValue":[{"timestamp":"2026-11-24T09:50:00Z","sampledValue":[{"value":1200}]}]}]"#, .toCSMS),
                    (5, #"[3,"c",{}]"#, .toCharger),
                    (6, #"[2,"d","TransactionEvent",{"eventType":"Ended","timestamp":"2026-11-24T10:03:00Z","triggerReason":"EVDeparted","seqNo":3,"transactionInfo":{"transactionId":"tx1"}}]"#, .toCSMS),
                    (7, #"[3,"d",{}]"#, .toCharger),
                 ],
                 expected: ["tx.unknownTransactionId", "tx.timestampOutside"]),
        RuleCase(name: "a StopTransaction without its transaction id is a schema error, and names no transaction",
                 frames: [
                    (0, #"[2,"e","StopTransaction",{"meterStop":2000,"timestamp":"2026-11-24T10:02:00Z"}]"#, .toCSMS),
                    (1, #"[3,"e",{}]"#, .toCharger),
                 ],
                 expected: ["schema.required"]),
    ]

    /// A 1.6 StartTransaction on `connector` at 2026-11-24T`at`Z and its answer assigning `id`, `offset` seconds in.
    static func start16(_ messageId: String, connector: Int, id: Int, at: String, offset: Double = 0) -> [(Double, String, Direction)] {
        [
            (offset, #"[2,"\#(messageId)","StartTransaction",{"connectorId":\#(connector),"idTag":"T","meterStart":1000,"timestamp":"2026-11-24T\#(at)Z"}]"#, .toCSMS),
            (offset + 1, #"[3,"\#(messageId)",{"transactionId":\#(id),"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
        ]
    }

    @Test("each case reports exactly its rules", arguments: cases)
    func rule(_ ruleCase: RuleCase) throws {
        let directory = try capture(ruleCase)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let analyzer = Analyzer(schemas: try SchemaRegistry(root: Paths.root.appendingPathComponent("schemas").path))
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let report = analyzer.finish()
        #expect(report.deviations.map(\.rule) == ruleCase.expected, "\(report.deviations.map { "\($0.rule): \($0.detail)" })")
    }

    @Test("a text message that is not UTF-8 is websocket.invalidUTF8, once, and not judged further as OCPP-J")
    func invalidUTF8() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("utf8-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader(backendName: "B"))
        let start = Timestamp.now().microseconds
        writer.record(.record(kind: .open, ts: Timestamp(microseconds: start), connection: 1, chargePoint: "CP", direction: nil, fields: ["chosen": "ocpp1.6", "version": "1.6"]))
        let bytes: [UInt8] = Array(#"[2,"x1","DataTransfer",{"vendorId":"A"#.utf8) + [0xC0, 0xAF] + Array(#""}]"#.utf8)
        let buffer = ByteBuffer(bytes: bytes)
        var event = FrameEvent(ts: Timestamp(microseconds: start + 1000), connection: 1, chargePoint: "CP", direction: .toCSMS, opcode: .text, payload: buffer)
        if case .success(let envelope) = OCPPEnvelope.parse(buffer) { event.envelope = envelope }
        writer.record(.frame(event))
        // Its answer pairs with it: no rpc.unknownMessageId on top (one cause, one finding).
        let answer = ByteBuffer(string: #"[3,"x1",{"status":"Accepted"}]"#)
        var answerEvent = FrameEvent(ts: Timestamp(microseconds: start + 1500), connection: 1, chargePoint: "CP", direction: .toCharger, opcode: .text, payload: answer)
        if case .success(let envelope) = OCPPEnvelope.parse(answer) { answerEvent.envelope = envelope }
        writer.record(.frame(answerEvent))
        writer.record(.record(kind: .close, ts: Timestamp(microseconds: start + 2000), connection: 1, chargePoint: "CP", direction: nil, fields: [:]))
        writer.close()
        let analyzer = Analyzer(schemas: try SchemaRegistry(root: Paths.root.appendingPathComponent("schemas").path))
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        #expect(analyzer.finish().deviations.map(\.rule) == ["websocket.invalidUTF8"])
    }

    @Test("CALLs left unanswered time out oldest first, across both directions, each pointing at its own line")
    func timeoutsInOrder() throws {
        // Each side's CALLs overlap (that is rpc.concurrentCall, besides); one is answered in time.
        let ruleCase = RuleCase(
            name: "timeouts",
            frames: [
                (0, #"[2,"h3","Heartbeat",{}]"#, .toCSMS),
                (1, #"[2,"r1","Reset",{"type":"Soft"}]"#, .toCharger),
                (2, #"[2,"h1","Heartbeat",{}]"#, .toCSMS),
                (3, #"[2,"h2","Heartbeat",{}]"#, .toCSMS),
                (4, #"[3,"h2",{"currentTime":"\#(Self.t0)"}]"#, .toCharger),
                (5, #"[2,"r2","Reset",{"type":"Hard"}]"#, .toCharger),
                // Only the first three are due here; the rest wait for the close.
                (32.5, #"[2,"h4","Heartbeat",{}]"#, .toCSMS),
            ],
            expected: []
        )
        let directory = try capture(ruleCase)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let analyzer = Analyzer(schemas: try SchemaRegistry(root: Paths.root.appendingPathComponent("schemas").path))
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let timeouts = analyzer.finish().deviations.filter { $0.rule == "rpc.timeout" }
        #expect(timeouts.map { $0.messageId ?? "?" } == ["h3", "r1", "h1", "r2", "h4"])
        #expect(timeouts.map { $0.direction } == [.toCSMS, .toCharger, .toCSMS, .toCharger, .toCSMS])
        // Line 1 is the header and line 2 the open record: the first frame is on line 3.
        #expect(timeouts.map { $0.ref?.split(separator: ":").last.map(String.init) } == ["3", "4", "5", "8", "9"])
    }
}
