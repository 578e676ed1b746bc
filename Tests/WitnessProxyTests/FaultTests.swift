import Foundation
import NIOCore
import OCPPWire
import Testing
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@Suite("Faults injected by the proxy")
struct FaultTests {
    func harness(_ yaml: String) async throws -> ProxyHarness {
        let policy = try PolicyLoader.parse(yaml)
        return try await ProxyHarness.start(configure: { $0.faults = FaultInjection(ChaosEngine(policy: policy)) })
    }

    func pair(_ harness: ProxyHarness, _ id: String) async throws -> (charger: OCPPEndpoint, csms: OCPPEndpoint) {
        var url = harness.proxyURL
        url.pathPrefix = "/" + id
        let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
        return (charger, await harness.csms.connection(id))
    }

    func faultRecords(_ harness: ProxyHarness) async throws -> [CaptureRecord] {
        try await harness.records().filter { $0.fields["fault"] != nil }
    }

    @Test("a delayed message arrives no earlier than the delay, and later messages stay behind it")
    func delay() async throws {
        let harness = try await self.harness("seed: 1\nrules:\n  - name: slow-heartbeat\n    match: {action: Heartbeat, type: CALL}\n    fault: {delay: {ms: 300}}\n")
        let (charger, csms) = try await self.pair(harness, "CP-D")
        let clock = ContinuousClock()
        let start = clock.now
        charger.sendText(#"[2,"h1","Heartbeat",{}]"#)
        charger.sendText(#"[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]"#)
        #expect(await eventually { csms.transcript.received.count == 2 })
        #expect(clock.now - start >= .milliseconds(300))
        #expect(csms.transcript.received.map { $0.contains("Heartbeat") } == [true, false])
        let fault = try #require(try await self.faultRecords(harness).first)
        #expect(fault.fields["fault"]?["kind"] == "delay")
        #expect(fault.fields["fault"]?["ms"] == 300)
        #expect(fault.fields["fault"]?["rule"] == "slow-heartbeat")
        #expect(fault.messageId == "h1")
        await charger.close()
        await harness.stop()
    }

    @Test("a dropped message never arrives; the capture shows what was dropped")
    func drop() async throws {
        let harness = try await self.harness("rules:\n  - name: lose-status\n    match: {action: StatusNotification}\n    fault: drop\n")
        let (charger, csms) = try await self.pair(harness, "CP-X")
        charger.sendText(#"[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]"#)
        _ = try await charger.call("Heartbeat", [:])
        #expect(csms.transcript.received.count == 1)
        #expect(csms.transcript.received.first?.contains("Heartbeat") == true)
        let fault = try #require(try await self.faultRecords(harness).first)
        #expect(fault.fields["fault"]?["kind"] == "drop")
        #expect(fault.action == "StatusNotification")
        #expect(fault.direction == .toCSMS)
        await charger.close()
        await harness.stop()
    }

    @Test("a duplicated message arrives twice and the copy is marked injected")
    func duplicate() async throws {
        let harness = try await self.harness("rules:\n  - name: twice\n    match: {action: Authorize}\n    fault: duplicate\n")
        let (charger, csms) = try await self.pair(harness, "CP-2X")
        charger.sendText(#"[2,"a1","Authorize",{"idTag":"T"}]"#)
        #expect(await eventually { csms.transcript.received.count == 2 })
        #expect(Set(csms.transcript.received).count == 1)
        let frames = try await harness.frames("CP-2X").filter { $0.messageId == "a1" && $0.messageType == .call }
        #expect(frames.count == 2)
        #expect(frames.filter { $0.fields["injected"] == true }.count == 1)
        await charger.close()
        await harness.stop()
    }

    @Test("a disconnect fault closes the charger with the given code and the capture says so")
    func disconnect() async throws {
        let harness = try await self.harness(
            "rules:\n  - name: cut\n    match: {action: Authorize}\n    fault: {disconnect: {side: charger, code: 4001, reason: chaos test}}\n"
        )
        let (charger, _) = try await self.pair(harness, "CP-CUT")
        charger.sendText(#"[2,"a1","Authorize",{"idTag":"T"}]"#)
        await charger.waitClosed()
        #expect(charger.closeReceived?.code == 4001)
        #expect(charger.closeReceived?.reason == "chaos test")
        await harness.waitForClosedPairs(1)
        let records = try await harness.records()
        #expect(records.first { $0.fields["fault"] != nil }?.fields["fault"]?["kind"] == "disconnect")
        let close = try #require(records.first { $0.kind == "close" })
        #expect(close.fields["by"] == "proxy")
        #expect(close.fields["code"] == 4001)
        await harness.stop()
    }

    @Test("a reset on the backend side drops the backend without a close frame, and the charger with it")
    func resetBackendSide() async throws {
        let harness = try await self.harness(
            "rules:\n  - name: backend-dies\n    match: {action: Authorize}\n    fault: {disconnect: {side: csms, mode: reset}}\n"
        )
        let (charger, csms) = try await self.pair(harness, "CP-RST")
        charger.sendText(#"[2,"a1","Authorize",{"idTag":"T"}]"#)
        await csms.waitClosed()
        #expect(csms.closeReceived == nil)
        #expect(csms.transcript.received.isEmpty)
        await charger.waitClosed()
        await harness.waitForClosedPairs(1)
        let fault = try #require(try await self.faultRecords(harness).first)
        #expect(fault.fields["fault"]?["side"] == "csms")
        #expect(fault.fields["fault"]?["mode"] == "reset")
        await harness.stop()
    }

    @Test("a malformed fault delivers the changed message and records both versions")
    func malformed() async throws {
        let harness = try await self.harness(
            "rules:\n  - name: no-meter-start\n    match: {action: StartTransaction}\n    fault: {malformed: {kind: removeField, path: /meterStart}}\n"
        )
        let (charger, csms) = try await self.pair(harness, "CP-M")
        let sent = #"[2,"t1","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":5,"timestamp":"2026-11-24T10:00:00Z"}]"#
        charger.sendText(sent)
        #expect(await eventually { !csms.transcript.received.isEmpty })
        let delivered = #"[2,"t1","StartTransaction",{"connectorId":1,"idTag":"T","timestamp":"2026-11-24T10:00:00Z"}]"#
        #expect(csms.transcript.received == [delivered])
        let fault = try #require(try await self.faultRecords(harness).first)
        #expect(fault.message == (try JSONParser.parse(sent)))
        #expect(fault.fields["fault"]?["delivered"] == .string(delivered))
        #expect(fault.fields["fault"]?["malformation"] == "removeField")
        await charger.close()
        await harness.stop()
    }

    @Test("a respond fault answers on the other side's behalf and does not forward the CALL")
    func respond() async throws {
        let harness = try await self.harness(
            "rules:\n  - name: no-reset\n    match: {direction: toCharger, action: Reset}\n    fault: {respond: {callError: {code: NotSupported, description: refused by policy}}}\n"
        )
        let (charger, csms) = try await self.pair(harness, "CP-R")
        let answer = try await csms.call("Reset", ["type": "Soft"])
        #expect(answer == .error(code: "NotSupported", description: "refused by policy", details: [:]))
        #expect(charger.transcript.received.isEmpty)
        let injected = try #require(try await harness.frames("CP-R").first { $0.fields["injected"] == true })
        #expect(injected.direction == .toCSMS)
        #expect(injected.messageType == .callError)
        #expect(injected.action == "Reset")
        await charger.close()
        await harness.stop()
    }

    @Test("an injected CALL reaches the charger with an id of the proxy's own, and its answer stays with the proxy")
    func inject() async throws {
        let harness = try await self.harness(
            "rules:\n  - name: reset-after-first-heartbeat\n    match: {action: Heartbeat, type: CALL, first: 1}\n    fault: {inject: {action: Reset, payload: {type: Soft}, to: charger}}\n"
        )
        let charger = harness.charger(ChargerProfile(id: "CP-INJ"))
        try await charger.connect()
        try await charger.call("Heartbeat", [:])
        #expect(await eventually { charger.resetsAccepted == 1 })
        let atCSMS = await harness.csms.connection("CP-INJ")
        let frames = try await harness.frames("CP-INJ").filter { $0.opcode == .text }
        let injected = try #require(frames.first { $0.fields["injected"] == true })
        #expect(injected.action == "Reset")
        #expect(injected.direction == .toCharger)
        #expect(injected.messageId?.hasPrefix("witness-") == true)
        #expect(await eventually { (try? await harness.frames("CP-INJ").contains { $0.fields["fault"]?["answer"] == true && $0.action == "Reset" }) == true })
        // The backend saw the Heartbeat but neither the Reset nor its answer.
        #expect(atCSMS.transcript.received.count == 1)
        #expect(!atCSMS.transcript.sent.contains { $0.contains("Reset") })
        await charger.disconnect()
        await harness.stop()
    }

    @Test("an injected CALL takes fields from the message that triggered it; without them it is not sent and the capture says why")
    func injectFromTrigger() async throws {
        let harness = try await self.harness(
            """
            rules:
              - name: stop-it
                match: {action: MeterValues, type: CALL}
                fault: {inject: {action: RemoteStopTransaction, payload: {transactionId: {fromTrigger: /transactionId}}}}
            """
        )
        let charger = harness.charger(ChargerProfile(id: "CP-COPY"))
        try await charger.connect()
        // Meter values outside a transaction carry no transactionId: nothing to copy, nothing sent.
        try await charger.call("MeterValues", ["connectorId": 1, "meterValue": [["timestamp": "2026-12-03T10:00:00Z", "sampledValue": [["value": "1"]]]]])
        try await charger.call("MeterValues", ["connectorId": 1, "transactionId": 77, "meterValue": [["timestamp": "2026-12-03T10:00:01Z", "sampledValue": [["value": "2"]]]]])
        #expect(await eventually { (try? await harness.frames("CP-COPY").contains { $0.fields["fault"]?["answer"] == true }) == true })
        let frames = try await harness.frames("CP-COPY").filter { $0.opcode == .text }
        let skipped = try #require(frames.first { $0.action == "MeterValues" && $0.messageType == .call })
        #expect(skipped.fields["fault"]?["skipped"]?.stringValue == "the triggering message has no /transactionId")
        let injected = frames.filter { $0.fields["injected"] == true }
        #expect(injected.count == 1)
        #expect(injected.first?.message?[3] == ["transactionId": 77])
        await charger.disconnect()
        await harness.stop()
    }

    @Test("chargers recover from an outage: they are dropped, refused with 503, reconnect and resume; the capture tells it in order")
    func outageRecovery() async throws {
        // Scheduled by the policy: the first message after 0.5 s starts an outage for everyone. It would last
        // a minute; the test ends it once the charger has been refused, so no timing window is involved.
        let harness = try await self.harness(
            "rules:\n  - name: planned-outage\n    match: {after: 500ms, first: 1}\n    fault: {outage: {duration: 60s, mode: refuse}}\n"
        )
        let charger = harness.charger(ChargerProfile(id: "CP-OUT"))
        let clock = ContinuousClock()
        let proxy = harness.proxy
        // Runs until the charger is back and heartbeating, however slow the machine; the cap only stops a hang.
        let outcome = await charger.keepAlive(until: clock.now + .seconds(60), interval: .milliseconds(100)) {
            if $0.refused >= 1 { proxy.endOutage(chargePoint: nil) }
            return $0.connections >= 2 && $0.refused >= 1 && $0.heartbeats >= 3
        }
        #expect(outcome.connections >= 2)
        #expect(outcome.refused >= 1)
        #expect(outcome.heartbeats >= 3)
        await harness.waitForClosedPairs(2)
        let story = try await harness.records().filter { $0.chargePoint == "CP-OUT" }.compactMap { record -> String? in
            switch record.kind {
            case "open": return "open"
            case "close": return "close"
            case "reject": return "reject \(record.fields["cause"]?.stringValue ?? "")"
            case "frame" where record.action == "BootNotification" && record.messageType == .call: return "boot"
            default: return nil
            }
        }
        // Collapse repeated refusals: one connection, the outage, refusals, then a new connection that boots.
        var collapsed: [String] = []
        for step in story where step != collapsed.last { collapsed.append(step) }
        #expect(Array(collapsed.prefix(6)) == ["open", "boot", "close", "reject outage", "open", "boot"])
        let close = try #require(try await harness.records().first { $0.kind == "close" && $0.chargePoint == "CP-OUT" })
        #expect(close.fields["by"] == "proxy")
        #expect(close.fields["reason"] == "outage: backend unreachable")
        await harness.stop()
    }

    @Test("a blackhole outage lets nothing through, and new upgrades wait for 504")
    func blackhole() async throws {
        try await ProxyHarness.start(configure: { $0.faults = FaultInjection(); $0.handshakeTimeout = .seconds(1) }).run { harness in
            let (charger, csms) = try await self.pair(harness, "CP-BH")
            harness.proxy.startOutage(chargePoint: "CP-BH", duration: try BoundedDuration(seconds: 30, field: "test"), mode: .blackhole)
            charger.sendText(#"[2,"h1","Heartbeat",{}]"#)
            try await Task.sleep(for: .milliseconds(300))
            #expect(csms.transcript.received.isEmpty)
            #expect(charger.isActive)
            var url = harness.proxyURL
            url.pathPrefix = "/CP-BH"
            let error = await #expect(throws: OCPPConnectError.self) {
                _ = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
            }
            #expect(error?.status == 504)
            let swallowed = try #require(try await harness.frames("CP-BH").first { $0.messageId == "h1" })
            #expect(swallowed.fields["fault"]?["mode"] == "blackhole")
            await charger.close()
        }
    }

    @Test("a sliced message arrives whole, in the fragments the policy asked for")
    func slice() async throws {
        let harness = try await self.harness("rules:\n  - name: in-pieces\n    match: {action: Authorize}\n    fault: {slice: {bytes: 8}}\n")
        let (charger, csms) = try await self.pair(harness, "CP-SL")
        let text = #"[2,"a1","Authorize",{"idTag":"SLICED"}]"#
        charger.sendText(text)
        #expect(await eventually { csms.transcript.received == [text] })
        #expect(csms.receivedFragments == [(text.utf8.count + 7) / 8])
        await charger.close()
        await harness.stop()
    }

    @Test("a bandwidth limit makes a large message take its time, and keeps order")
    func bandwidth() async throws {
        let harness = try await self.harness("rules:\n  - name: slow-link\n    match: {action: DataTransfer}\n    fault: {bandwidth: {bytesPerSecond: 10000}}\n")
        let (charger, csms) = try await self.pair(harness, "CP-BW")
        let big = #"[2,"d1","DataTransfer",{"vendorId":"x","data":""# + String(repeating: "z", count: 4000) + #""}]"#
        let clock = ContinuousClock()
        let start = clock.now
        charger.sendText(big)
        charger.sendText(#"[2,"h1","Heartbeat",{}]"#)
        #expect(await eventually { csms.transcript.received.count == 2 })
        #expect(clock.now - start >= .milliseconds(400))
        #expect(csms.transcript.received.first == big)
        await charger.close()
        await harness.stop()
    }

    /// Runs 30 heartbeats through a policy with random jitter and returns the fault records' essentials.
    func jitterRun(seed: Int) async throws -> [String] {
        let harness = try await self.harness(
            "seed: \(seed)\nrules:\n  - name: jitter\n    match: {action: Heartbeat, type: CALL, probability: 0.5}\n    fault: {delay: {ms: 1, jitterMs: 20}}\n"
        )
        let (charger, _) = try await self.pair(harness, "CP-SEED")
        for _ in 0..<30 { _ = try await charger.call("Heartbeat", [:]) }
        let records = try await self.faultRecords(harness).map {
            "\($0.messageId ?? "") \($0.fields["fault"]?["ms"]?.intValue ?? -1) \($0.fields["fault"]?["hit"]?.intValue ?? -1)"
        }
        await charger.close()
        await harness.stop()
        return records
    }

    @Test("two runs with the same seed and traffic produce identical fault records; another seed differs")
    func reproducible() async throws {
        let first = try await self.jitterRun(seed: 11)
        #expect(first.count > 5)
        #expect(try await self.jitterRun(seed: 11) == first)
        #expect(try await self.jitterRun(seed: 12) != first)
    }
}
