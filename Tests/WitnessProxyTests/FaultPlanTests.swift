import NIOCore
import OCPPWire
import Testing
import WitnessChaos
import WitnessPolicy

@testable import WitnessProxy

/// The relay's fault plans, read without a channel: for each kind of fault, what goes on the wire, what is
/// held back, answered, injected or closed, and what the capture records, in order.
@Suite("Fault plans")
struct FaultPlanTests {
    /// A masked text frame from a charger, as the relay reads it.
    private func chargerFrame(_ text: String) -> WireFrame {
        var wire = ByteBuffer()
        WebSocketFrameHeader.write(opcode: .text, maskKey: WebSocketMask(1, 2, 3, 4), payload: ByteBuffer(string: text), into: &wire)
        guard case .header(let header) = WebSocketFrameHeader.parse(wire, maximumPayload: 1 << 20) else { fatalError("frame did not parse") }
        return WireFrame(header: header, wire: wire)
    }

    private func plan(_ fault: Fault, _ text: String, delay: Int = 0) -> (FaultPlan, WireFrame) {
        let frame = self.chargerFrame(text)
        return (FaultPlan(FaultDecision(rule: "r", fault: fault, delayMilliseconds: delay, hit: 2), frame: frame, payload: frame.payload), frame)
    }

    /// The text a frame's bytes carry, unmasked.
    private func text(of bytes: ByteBuffer) -> String {
        guard case .header(let header) = WebSocketFrameHeader.parse(bytes, maximumPayload: 1 << 20) else { return "?" }
        return String(buffer: WireFrame(header: header, wire: bytes).payload)
    }

    private let heartbeat = #"[2,"h1","Heartbeat",{}]"#

    @Test("a drop records the message with its fault and sends nothing")
    func drop() {
        let (plan, _) = self.plan(.drop, self.heartbeat)
        guard case .record(let fault?) = plan.steps.first, plan.steps.count == 1 else {
            Issue.record("\(plan.steps)")
            return
        }
        #expect(fault == ["rule": "r", "kind": "drop", "hit": 2])
    }

    @Test("a delay records first and holds the frame's own bytes; a reordering delay lets later messages overtake")
    func delay() {
        for reorder in [false, true] {
            let (plan, frame) = self.plan(.delay(milliseconds: 200, jitterMilliseconds: 50, reorder: reorder), self.heartbeat, delay: 230)
            guard plan.steps.count == 2, case .record(let fault?) = plan.steps[0], case .hold(let bytes, 230, let overtakable) = plan.steps[1] else {
                Issue.record("\(plan.steps)")
                continue
            }
            #expect(fault["ms"] == 230)
            #expect(bytes == frame.wire)
            #expect(overtakable == reorder)
        }
    }

    @Test("a duplicate goes out twice, byte for byte, and its copy is recorded as the proxy's")
    func duplicate() {
        let (plan, frame) = self.plan(.duplicate, self.heartbeat)
        guard plan.steps.count == 4, case .forward(let first) = plan.steps[0], case .forward(let second) = plan.steps[1],
            case .record(_?) = plan.steps[2], case .recordCopy(.text, let copy, _) = plan.steps[3]
        else {
            Issue.record("\(plan.steps)")
            return
        }
        #expect(first == frame.wire && second == frame.wire)
        #expect(String(buffer: copy) == self.heartbeat)
    }

    @Test("a malformed fault sends the changed text, masked with the sender's key, and records what it delivered")
    func malformed() {
        let (plan, frame) = self.plan(.malformed(.invalidJSON), self.heartbeat)
        guard plan.steps.count == 2, case .forward(let bytes) = plan.steps[0], case .record(let fault?) = plan.steps[1] else {
            Issue.record("\(plan.steps)")
            return
        }
        guard case .header(let header) = WebSocketFrameHeader.parse(bytes, maximumPayload: 1 << 20) else {
            Issue.record("not a frame")
            return
        }
        #expect(header.maskKey == frame.header.maskKey)
        #expect(self.text(of: bytes) == fault["delivered"]?.stringValue)
        #expect(self.text(of: bytes) != self.heartbeat)
    }

    @Test("a respond fault answers a CALL with its id instead of forwarding it; anything else passes unrecorded")
    func respond() {
        let (plan, _) = self.plan(.respond(.callError(code: "InternalError", description: "down")), self.heartbeat)
        guard plan.steps.count == 2, case .record(_?) = plan.steps[0], case .answer(let answer, _) = plan.steps[1] else {
            Issue.record("\(plan.steps)")
            return
        }
        #expect(String(buffer: answer).hasPrefix(#"[4,"h1","InternalError","down""#))
        let (passing, frame) = self.plan(.respond(.callResult(payload: [:])), #"[3,"h1",{}]"#)
        guard passing.steps.count == 2, case .forward(let bytes) = passing.steps[0], case .record(nil) = passing.steps[1] else {
            Issue.record("\(passing.steps)")
            return
        }
        #expect(bytes == frame.wire)
    }

    @Test("a slice sends fragments of at most the size, the first with the message's opcode, the last with FIN")
    func slice() {
        let text = #"[2,"s1","DataTransfer",{"vendorId":"v","data":"0123456789"}]"#
        let (plan, _) = self.plan(.slice(bytes: 16), text)
        var fragments: [(WebSocketFrameHeader, String)] = []
        for step in plan.steps {
            guard case .forward(let bytes) = step else { continue }
            guard case .header(let header) = WebSocketFrameHeader.parse(bytes, maximumPayload: 1 << 20) else { continue }
            fragments.append((header, self.text(of: bytes)))
        }
        #expect(fragments.count == (text.utf8.count + 15) / 16)
        #expect(fragments.map(\.1).joined() == text)
        #expect(fragments.first?.0.opcode == .text && fragments.dropFirst().allSatisfy { $0.0.opcode == .continuation })
        #expect(fragments.last?.0.fin == true && fragments.dropLast().allSatisfy { !$0.0.fin })
        guard case .record(let fault?) = plan.steps.last else {
            Issue.record("\(plan.steps)")
            return
        }
        #expect(fault["fragments"] == .int(fragments.count))
    }

    @Test("an inject forwards the trigger, copies its fields into the CALL, or records why it could not")
    func inject() {
        let copies = [InjectCopy(pointer: "/transactionId", source: "/transactionId")]
        let stop = #"[2,"m1","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[]}]"#
        let (plan, frame) = self.plan(.inject(action: "RemoteStopTransaction", payload: [:], copies: copies, target: .charger), stop)
        guard plan.steps.count == 3, case .forward(let bytes) = plan.steps[0], case .record(nil) = plan.steps[1],
            case .injectCall("RemoteStopTransaction", let payload, .charger, let fault) = plan.steps[2]
        else {
            Issue.record("\(plan.steps)")
            return
        }
        #expect(bytes == frame.wire)
        #expect(payload["transactionId"] == 42)
        #expect(fault["action"] == "RemoteStopTransaction")
        let (skipped, _) = self.plan(.inject(action: "RemoteStopTransaction", payload: [:], copies: copies, target: .charger), self.heartbeat)
        guard skipped.steps.count == 2, case .forward = skipped.steps[0], case .record(let why?) = skipped.steps[1] else {
            Issue.record("\(skipped.steps)")
            return
        }
        #expect(why["skipped"]?.stringValue?.contains("/transactionId") == true)
    }

    @Test("a disconnect records first, then closes the sides named; an empty reason is recorded as the rule's")
    func disconnect() {
        let (plan, _) = self.plan(.disconnect(side: .both, code: 1011, reason: "", reset: false), self.heartbeat)
        guard plan.steps.count == 2, case .record(let fault?) = plan.steps[0],
            case .close(.both, 1011, "", "fault r", false) = plan.steps[1]
        else {
            Issue.record("\(plan.steps)")
            return
        }
        #expect(fault["side"] == "both" && fault["code"] == 1011 && fault["mode"] == nil)
        let (reset, _) = self.plan(.disconnect(side: .csms, code: 1000, reason: "bye", reset: true), self.heartbeat)
        guard case .close(.csms, 1000, "bye", "bye", true) = reset.steps.last, case .record(let resetFault?) = reset.steps.first else {
            Issue.record("\(reset.steps)")
            return
        }
        #expect(resetFault["mode"] == "reset")
    }

    @Test("an outage and a bandwidth limit record first, then start the outage or pace the message behind the limited ones before it")
    func outageAndBandwidth() {
        let (outage, _) = self.plan(.outage(seconds: 5, mode: .refuse, allChargers: true), self.heartbeat)
        guard outage.steps.count == 2, case .record(_?) = outage.steps[0], case .outage(true, let duration, .refuse) = outage.steps[1], duration.seconds == 5 else {
            Issue.record("\(outage.steps)")
            return
        }
        let (slow, frame) = self.plan(.bandwidth(bytesPerSecond: 100), self.heartbeat)
        let expected = self.heartbeat.utf8.count * 1000 / 100
        guard slow.steps.count == 2, case .record(let fault?) = slow.steps[0], case .pace(let bytes, expected) = slow.steps[1] else {
            Issue.record("\(slow.steps)")
            return
        }
        #expect(fault["ms"] == .int(expected))
        #expect(bytes == frame.wire)
    }
}
