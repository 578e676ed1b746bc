import NIOCore
import OCPPWire
import Testing

@testable import WitnessCapture

/// The exact bytes of frame records: other tools parse these lines, so their shape is a contract.
@Suite("Frame record serialization")
struct SerializerTests {
    private func line(_ frame: FrameEvent, redact: Bool = true) -> String {
        var out: [UInt8] = []
        var serializer = CaptureSerializer(redactor: Redactor(enabled: redact))
        serializer.append(.frame(frame), into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func event(
        _ text: String, direction: Direction = .toCSMS, opcode: FrameOpcode = .text, fragments: Int = 1, chargePoint: String = "CP \"1\"",
        correlatedAction: String? = nil, latencyNanos: UInt64? = nil, unmatched: Bool = false, injected: Bool = false,
        fault: JSONObject? = nil
    ) -> FrameEvent {
        let buffer = ByteBuffer(string: text)
        var event = FrameEvent(
            ts: Timestamp(microseconds: 1_795_514_401_200_000), connection: 42, chargePoint: chargePoint, direction: direction,
            opcode: opcode, payload: buffer, fragments: fragments, correlatedAction: correlatedAction, latencyNanos: latencyNanos,
            unmatchedResponse: unmatched, injected: injected, fault: fault
        )
        if opcode == .text {
            switch OCPPEnvelope.parse(buffer) {
            case .success(let envelope): event.envelope = envelope
            case .failure(let malformed): event.malformed = malformed
            }
        }
        return event
    }

    @Test("CALL, answered CALLRESULT, CALLERROR, faults, injection, fragments, malformed text, control frames")
    func exactLines() {
        #expect(
            self.line(self.event(#"[2, "m1", "Heartbeat", {}]"#, fragments: 3))
                == #"{"ts":"2026-11-24T10:00:01.200000Z","kind":"frame","conn":42,"chargePoint":"CP \"1\"","dir":"toCSMS","opcode":"text","size":26,"fragments":3,"msgType":2,"msgId":"m1","action":"Heartbeat","enc":"json","payload":[2, "m1", "Heartbeat", {}]}"#
                    + "\n"
        )
        #expect(
            self.line(
                self.event(
                    #"[3,"m1",{"currentTime":"2026-11-24T10:00:00Z"}]"#, direction: .toCharger, correlatedAction: "Heartbeat",
                    latencyNanos: 1_234_567, fault: ["rule": "slow", "kind": "delay", "hit": 1, "ms": 250]
                )
            )
                == #"{"ts":"2026-11-24T10:00:01.200000Z","kind":"frame","conn":42,"chargePoint":"CP \"1\"","dir":"toCharger","opcode":"text","size":47,"msgType":3,"msgId":"m1","action":"Heartbeat","latencyMs":1.234,"fault":{"rule":"slow","kind":"delay","hit":1,"ms":250},"enc":"json","payload":[3,"m1",{"currentTime":"2026-11-24T10:00:00Z"}]}"#
                    + "\n"
        )
        #expect(
            self.line(self.event(#"[4,"x9","NotImplemented","no",{}]"#, direction: .toCharger, unmatched: true, injected: true))
                == #"{"ts":"2026-11-24T10:00:01.200000Z","kind":"frame","conn":42,"chargePoint":"CP \"1\"","dir":"toCharger","opcode":"text","size":33,"msgType":4,"msgId":"x9","errorCode":"NotImplemented","unmatched":true,"injected":true,"enc":"json","payload":[4,"x9","NotImplemented","no",{}]}"#
                    + "\n"
        )
        #expect(
            self.line(self.event(#"[2,"a"]"#))
                == #"{"ts":"2026-11-24T10:00:01.200000Z","kind":"frame","conn":42,"chargePoint":"CP \"1\"","dir":"toCSMS","opcode":"text","size":7,"malformed":{"reason":"wrongArity","detail":"CALL must have 4 elements, found 2","msgType":2,"msgId":"a"},"enc":"json","payload":[2,"a"]}"#
                    + "\n"
        )
        #expect(
            self.line(self.event("ok", opcode: .ping))
                == #"{"ts":"2026-11-24T10:00:01.200000Z","kind":"frame","conn":42,"chargePoint":"CP \"1\"","dir":"toCSMS","opcode":"ping","size":2,"enc":"text","payload":"ok"}"#
                    + "\n"
        )
    }

    @Test("the record live analysis gets equals the one a reader parses from the line, for every kind of frame")
    func liveRecordMatchesLine() throws {
        var serializer = CaptureSerializer(redactor: Redactor(enabled: true))
        let frames: [(FrameEvent, built: Bool)] = [
            (self.event(#"[2, "m1", "Heartbeat", {}]"#, fragments: 3), true),
            (self.event(#"[3,"m1",{"currentTime":"2026-11-24T10:00:00Z"}]"#, direction: .toCharger, correlatedAction: "Heartbeat", latencyNanos: 1_234_567, fault: ["rule": "slow", "kind": "delay", "hit": 1, "ms": 250]), true),
            (self.event(#"[3,"m7",{}]"#, direction: .toCharger, correlatedAction: "MeterValues", latencyNanos: 98_765_432_109), true),
            (self.event(#"[4,"x9","NotImplemented","no",{}]"#, direction: .toCharger, chargePoint: "CP-ü \\ \u{1}", unmatched: true, injected: true), true),
            (self.event(#"[2,"m2","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-11-24T10:00:00Z","sampledValue":[{"value":"1.5e3"}]}]}]"#), true),
            (self.event("[2,\"m3\",\n\"Heartbeat\",{}]"), false),
            (self.event(#"[2,"m4","ChangeConfiguration",{"key":"AuthorizationKey","value":"s3cret"}]"#, direction: .toCharger), false),
            (self.event(#"[2,"m5","GetConfiguration",{"key":["HeartbeatInterval"]}]"#, direction: .toCharger), false),
            (self.event("[2,\"m6\",\r\"Heartbeat\",{}]"), false),
            (self.event(#"[2,"a"]"#), false),
            (self.event("not json"), false),
            (self.event("ok", opcode: .ping), false),
        ]
        for (frame, built) in frames {
            var line: [UInt8] = []
            let verbatim = serializer.append(.frame(frame), into: &line)
            guard case .object(let parsed) = try JSONParser.parse(Array(line.dropLast())) else {
                Issue.record("not an object: \(String(decoding: line, as: UTF8.self))")
                continue
            }
            // As the writer asks (with what `append` said of the payload), and without that hint.
            for record in [
                serializer.record(of: frame, verbatim: verbatim, file: "c.jsonl", line: 7), serializer.record(of: frame, file: "c.jsonl", line: 7),
            ] {
                #expect((record != nil) == built, "\(String(decoding: line, as: UTF8.self))")
                // Equal records have equal fields and equal typed fields (kind, ts, connection, message...).
                if let record {
                    let read = CaptureRecord(file: "c.jsonl", line: 7, fields: parsed)
                    #expect(record == read, "\(String(decoding: line, as: UTF8.self))")
                    // The typed fields too, as consumers read them.
                    #expect(record.timestamp == read.timestamp && record.ts == read.ts && record.kind == read.kind, "\(String(decoding: line, as: UTF8.self))")
                    var facts = record.facts
                    facts.timestamp = read.facts.timestamp
                    #expect(facts == read.facts, "\(String(decoding: line, as: UTF8.self))")
                }
            }
        }
    }

    @Test("numbers are written as their digits", arguments: [0, 7, 10, 42, 1_000_000, UInt64.max])
    func digits(_ value: UInt64) {
        var out: [UInt8] = [UInt8(ascii: ",")]
        CaptureSerializer.appendDecimal(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "," + String(value))
    }

    @Test("a line feed or carriage return is found anywhere in a payload")
    func lineBreaks() {
        for text in ["", "[]", "[2,\n\"a\"]", "\r", String(repeating: "x", count: 300) + "\n"] {
            let found = Array(text.utf8).withUnsafeBytes { CaptureSerializer.hasLineBreak($0) }
            #expect(found == (text.contains("\n") || text.contains("\r")), "\(text)")
        }
    }

    @Test("latencies are written in milliseconds with three decimals", arguments: [0, 999, 1_000, 1_234_567, 250_000_000, 12_345_678_901] as [UInt64])
    func milliseconds(_ nanos: UInt64) {
        var out: [UInt8] = []
        CaptureSerializer.appendMilliseconds(nanos, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == CaptureSerializer.milliseconds(nanos))
        #expect(Double(String(decoding: out, as: UTF8.self)) == Double(nanos / 1000) / 1000)
    }

    @Test("timestamps written with the previous second's text equal those written whole, across seconds, days and years")
    func cachedTimestamps() {
        var writer = RFC3339Writer()
        let instants: [Int64] = [
            1_764_000_000_000_000, 1_764_000_000_000_001, 1_764_000_000_999_999, 1_764_000_001_000_000, 1_764_000_000_500_000,
            1_767_225_599_999_999, 1_767_225_600_000_000, 0, -1, -1_000_000, -62_135_596_800_000_000, 253_402_300_799_999_999,
        ]
        for micros in instants {
            let ts = Timestamp(microseconds: micros)
            var out: [UInt8] = [UInt8(ascii: "\"")]
            writer.append(ts, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == "\"" + ts.rfc3339, "\(micros)")
        }
    }
}

