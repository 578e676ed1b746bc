import NIOCore
@testable import OCPPWire
import Testing

@Suite("OCPP-J envelope parsing")
struct EnvelopeTests {
    @Test("well-formed messages of every type")
    func wellFormed() throws {
        let call = try OCPPEnvelope.parse(ByteBuffer(string: #" [2, "id-1" ,"BootNotification",{"a":[1,{"b":"]"}]}] "#)).get()
        #expect(call.messageType == .call)
        #expect(call.messageId == "id-1")
        #expect(call.action == "BootNotification")
        let text = #"[2,"id-1","BootNotification",{"a":[1,{"b":"]"}]}]"#
        let exact = try OCPPEnvelope.parse(ByteBuffer(string: text)).get()
        #expect(exact.payloadRange.map { Array(Array(text.utf8)[$0]) } == Array(#"{"a":[1,{"b":"]"}]}"#.utf8))

        let result = try OCPPEnvelope.parse(ByteBuffer(string: #"[3,"x\"y",{}]"#)).get()
        #expect(result.messageType == .callResult)
        #expect(result.messageId == #"x"y"#)
        #expect(result.action == nil)

        let error = try OCPPEnvelope.parse(ByteBuffer(string: #"[4,"7","FormationViolation","bad",{"k":1}]"#)).get()
        #expect(error.errorCode == "FormationViolation")
        #expect(error.errorDescription == "bad")

        let send = try OCPPEnvelope.parse(ByteBuffer(string: #"[6,"s1","NotifyPeriodicEventStream",{}]"#)).get()
        #expect(send.messageType == .send)
        #expect(send.action == "NotifyPeriodicEventStream")
        let resultError = try OCPPEnvelope.parse(ByteBuffer(string: #"[5,"r1","GenericError","",{}]"#)).get()
        #expect(resultError.messageType == .callResultError)
    }

    @Test(
        "malformed frames say precisely what is wrong",
        arguments: [
            ("", MalformedMessage.Reason.notJSON, "empty frame"),
            (#"[2,"a","Heartbeat",{"#, .notJSON, "invalid JSON"),
            (#"{"messageType":2}"#, .notArray, "message is a JSON object, not an array"),
            ("[]", .wrongArity, "message is an empty array"),
            (#"["2","a","Heartbeat",{}]"#, .messageTypeNotInteger, "message type must be an integer"),
            (#"[2.5,"a","Heartbeat",{}]"#, .messageTypeNotInteger, "message type must be an integer, found 2.5"),
            (#"[7,"a","Heartbeat",{}]"#, .unknownMessageType, "unknown message type 7"),
            (#"[2,"a","Heartbeat"]"#, .wrongArity, "CALL must have 4 elements, found 3"),
            (#"[3,"a",{},{}]"#, .wrongArity, "CALLRESULT must have 3 elements, found 4"),
            (#"[2,17,"Heartbeat",{}]"#, .messageIdNotString, "message id must be a string"),
            (#"[2,"a",5,{}]"#, .fieldNotString, "action must be a string"),
            (#"[4,"a",5,"",{}]"#, .fieldNotString, "error code must be a string"),
            (#"[2,"a","Heartbeat",[]]"#, .payloadNotObject, "payload must be a JSON object"),
            (#"[2,"a","Heartbeat",{}] x"#, .notJSON, "unexpected data after the message array"),
        ]
    )
    func malformed(text: String, reason: MalformedMessage.Reason, detail: String) {
        guard case .failure(let failure) = OCPPEnvelope.parse(ByteBuffer(string: text)) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(failure.reason == reason)
        #expect(failure.detail.contains(detail))
    }

    @Test(
        "an envelope read from a parsed message equals the scanned one, or is absent when the scan finds a fault",
        arguments: [
            #" [2, "id-1" ,"BootNotification",{"a":[1,{"b":"]"}]}] "#, #"[3,"x\"y",{}]"#,
            #"[4,"7","FormationViolation","bad",{"k":1}]"#, #"[6,"s1","NotifyPeriodicEventStream",{}]"#,
            #"[5,"r1","GenericError","",{}]"#, #"[2,"\u00e9t\u00e9","Heartbeat",{}]"#,
            #"{"messageType":2}"#, "[]", #"["2","a","Heartbeat",{}]"#, #"[2.5,"a","Heartbeat",{}]"#, #"[2e0,"a","Heartbeat",{}]"#,
            #"[-0,"a","Heartbeat",{}]"#, #"[7,"a","Heartbeat",{}]"#, #"[2,"a","Heartbeat"]"#, #"[3,"a",{},{}]"#,
            #"[2,17,"Heartbeat",{}]"#, #"[2,"a",5,{}]"#, #"[4,"a",5,"",{}]"#, #"[4,"a","E",5,{}]"#, #"[4,"a","E","",[]]"#,
            #"[2,"a","Heartbeat",[]]"#, #"[3,"a",null]"#, "17", "null",
        ]
    )
    func fromParsedMessage(text: String) throws {
        let message = try JSONParser.parse(text)
        switch OCPPEnvelope.parse(ByteBuffer(string: text)) {
        case .success(var scanned):
            scanned.payloadRange = nil
            #expect(OCPPEnvelope(parsed: message) == scanned)
        case .failure:
            #expect(OCPPEnvelope(parsed: message) == nil)
        }
    }

    @Test("a malformed CALL still reports its type and id when they were readable")
    func malformedKeepsId() {
        guard case .failure(let failure) = OCPPEnvelope.parse(ByteBuffer(string: #"[2,"abc","Heartbeat"]"#)) else {
            Issue.record("parsed")
            return
        }
        #expect(failure.messageType == 2)
        #expect(failure.messageId == "abc")
    }

    @Test("versions come from subprotocols and allow their message types")
    func versions() {
        #expect(OCPPVersion(subprotocol: "ocpp1.6") == .v16)
        #expect(OCPPVersion(subprotocol: "OCPP2.0.1") == .v201)
        #expect(OCPPVersion(subprotocol: "ocpp2.1") == .v21)
        #expect(OCPPVersion(subprotocol: "ocpp1.5") == nil)
        #expect(!OCPPVersion.v16.allows(.send))
        #expect(!OCPPVersion.v201.allows(.callResultError))
        #expect(OCPPVersion.v21.allows(.send))
    }

    @Test("error-code tables keep each version's spelling")
    func errorCodes() {
        #expect(RPCErrorCode.codes(for: .v16).contains("FormationViolation"))
        #expect(!RPCErrorCode.codes(for: .v16).contains("FormatViolation"))
        #expect(RPCErrorCode.codes(for: .v16).contains("OccurenceConstraintViolation"))
        #expect(RPCErrorCode.codes(for: .v201).contains("FormatViolation"))
        #expect(RPCErrorCode.codes(for: .v201).contains("OccurrenceConstraintViolation"))
        #expect(!RPCErrorCode.codes(for: .v201).contains("FormationViolation"))
        #expect(RPCErrorCode.formatViolation(for: .v16) == "FormationViolation")
    }
}

@Suite("Call correlation")
struct CorrelationTests {
    func envelope(_ text: String) throws -> OCPPEnvelope { try OCPPEnvelope.parse(ByteBuffer(string: text)).get() }

    @Test("results find their CALL in the opposite direction, with latency")
    func results() throws {
        var correlator = CallCorrelator<Void>()
        guard case .call = correlator.observe(try self.envelope(#"[2,"1","Heartbeat",{}]"#), direction: .toCSMS, atNanos: 100) else {
            Issue.record("a CALL is registered")
            return
        }
        _ = correlator.observe(try self.envelope(#"[2,"1","Reset",{}]"#), direction: .toCharger, atNanos: 150)
        let heartbeat = correlator.observe(try self.envelope(#"[3,"1",{}]"#), direction: .toCharger, atNanos: 400)
        #expect(heartbeat.answeredCall?.action == "Heartbeat")
        #expect(heartbeat.latencyNanos == 300)
        let reset = correlator.observe(try self.envelope(#"[4,"1","NotSupported","",{}]"#), direction: .toCSMS, atNanos: 500)
        #expect(reset.answeredCall?.action == "Reset")
        #expect(reset.latencyNanos == 350)
        guard case .unmatchedResponse = correlator.observe(try self.envelope(#"[3,"1",{}]"#), direction: .toCharger, atNanos: 600) else {
            Issue.record("an answered id is answered only once")
            return
        }
    }

    @Test("a reused id while the first CALL is outstanding is reported, and the new CALL replaces it")
    func duplicate() throws {
        var correlator = CallCorrelator<Int>()
        _ = correlator.observe(try self.envelope(#"[2,"9","Authorize",{}]"#), direction: .toCSMS, atNanos: 1, context: 7)
        let outcome = correlator.observe(try self.envelope(#"[2,"9","Heartbeat",{}]"#), direction: .toCSMS, atNanos: 2, context: 8)
        guard case .duplicateCall(let previous) = outcome else {
            Issue.record("expected a duplicate, got \(outcome)")
            return
        }
        #expect(previous.action == "Authorize")
        #expect(previous.context == 7)
        #expect(correlator.answer("9", travelling: .toCharger, atNanos: 5).answeredCall?.context == 8)
    }

    @Test("outstanding CALLs are bounded; the oldest gives way")
    func bounded() throws {
        var correlator = CallCorrelator<Void>(maximumOutstanding: 2)
        for id in 1...3 {
            _ = correlator.observe(try self.envelope(#"[2,"\#(id)","Heartbeat",{}]"#), direction: .toCSMS, atNanos: UInt64(id))
        }
        #expect(correlator.outstanding(.toCSMS).keys.sorted() == ["2", "3"])
    }

    @Test("expiry removes the calls sent at or before the cutoff, oldest first, from both directions")
    func expiry() throws {
        var correlator = CallCorrelator<Void>()
        _ = correlator.observe(try self.envelope(#"[2,"b","Reset",{}]"#), direction: .toCharger, atNanos: 20)
        _ = correlator.observe(try self.envelope(#"[2,"a","Heartbeat",{}]"#), direction: .toCSMS, atNanos: 10)
        _ = correlator.observe(try self.envelope(#"[2,"c","Authorize",{}]"#), direction: .toCSMS, atNanos: 20)
        _ = correlator.observe(try self.envelope(#"[2,"d","Heartbeat",{}]"#), direction: .toCSMS, atNanos: 30)
        #expect(correlator.expire(sentAtOrBefore: 9).isEmpty)
        let due = correlator.expire(sentAtOrBefore: 20)
        // Same instant: the order they were seen in.
        #expect(due.map(\.call.messageId) == ["a", "b", "c"])
        #expect(due.map(\.direction) == [.toCSMS, .toCharger, .toCSMS])
        #expect(correlator.outstanding(.toCSMS).keys.sorted() == ["d"])
        #expect(correlator.outstanding(.toCharger).isEmpty)
        #expect(correlator.oldestOutstanding(.toCSMS)?.messageId == "d")
        guard case .unmatchedResponse = correlator.observe(try self.envelope(#"[3,"a",{}]"#), direction: .toCharger, atNanos: 40) else {
            Issue.record("an expired call is no longer outstanding")
            return
        }
    }

    /// A charger flooding CALLs without waiting for answers keeps the table at its bound; each CALL then evicts the
    /// oldest. Finding it by scanning the table made that quadratic, on the event loop and on the recorder's thread.
    @Test("a flood of CALLs, half answered, stays at the bound: the oldest unanswered gives way and expires first, answered ones leave nothing behind")
    func flood() {
        var correlator = CallCorrelator<Void>(maximumOutstanding: 1000)
        for n in 0..<100_000 {
            _ = correlator.observe(.call, messageId: "m\(n)", action: "Heartbeat", direction: .toCSMS, atNanos: UInt64(n), context: ())
            if n % 2 == 0 { _ = correlator.answer("m\(n)", travelling: .toCharger, atNanos: UInt64(n)) }
        }
        #expect(correlator.outstanding(.toCSMS).count == 1000)
        #expect(correlator.oldestOutstanding(.toCSMS)?.messageId == "m98001")
        #expect(correlator.fromCharger.entriesInOrder <= 2 * 1000 + 32)
        let due = correlator.expire(sentAtOrBefore: 98_100)
        #expect(due.map(\.call.messageId) == stride(from: 98_001, through: 98_099, by: 2).map { "m\($0)" })
        #expect(correlator.outstanding(.toCSMS).count == 950)
    }

    @Test("an answer stamped before its CALL (a clock that stepped back) has no latency, not a wrapped one")
    func clockBack() throws {
        var correlator = CallCorrelator<Void>()
        _ = correlator.observe(try self.envelope(#"[2,"1","Heartbeat",{}]"#), direction: .toCSMS, atNanos: 5_000)
        #expect(correlator.observe(try self.envelope(#"[3,"1",{}]"#), direction: .toCharger, atNanos: 4_000).latencyNanos == 0)
    }
}
