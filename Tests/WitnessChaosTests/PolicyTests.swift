import Foundation
import OCPPWire
import Testing
import WitnessChaos
import WitnessPolicy
import WitnessTestSupport
import Yams

@Suite("Fault policies")
struct PolicyTests {
    @Test("a policy with every matcher and fault parses")
    func parses() throws {
        let policy = try PolicyLoader.parse(
            """
            seed: 42
            rules:
              - name: slow-meters
                match: {direction: toCSMS, type: CALL, action: MeterValues, probability: 0.1, after: 5m, before: 6m}
                fault: {delay: {ms: 2000, jitterMs: 3000}}
              - name: lose-second-stop
                match: {chargePoint: "CP-7", action: StopTransaction, nth: 2}
                fault: drop
              - name: beta-firmware
                match: {vendor: "Beta*", firmware: "2.*", every: 3, from: connection, after: 10s}
                fault: {disconnect: {side: csms, code: 4000, reason: chaos, mode: reset}}
              - name: bad-meter-start
                match: {payload: [{path: /connectorId, equals: 1}, {path: /idTag, matches: "^TAG"}], first: 2}
                fault: {malformed: {kind: removeField, path: /meterStart}}
              - name: refuse-reset
                match: {direction: toCharger, action: Reset}
                fault: {respond: {callError: {code: NotSupported, description: "not today"}}}
              - name: remote-start
                match: {action: BootNotification, type: CALLRESULT}
                fault: {inject: {action: RemoteStartTransaction, payload: {idTag: OPS, connectorId: 1}, to: charger}}
            """
        )
        #expect(policy.seed == 42)
        #expect(policy.rules.map(\.name) == ["slow-meters", "lose-second-stop", "beta-firmware", "bad-meter-start", "refuse-reset", "remote-start"])
        guard case .inject(let action, let payload, let copies, let target) = policy.rules[5].fault else {
            Issue.record("not an inject")
            return
        }
        #expect(action == "RemoteStartTransaction" && payload["connectorId"] == 1 && target == .charger && copies.isEmpty)
        #expect(policy.rules[0].match.after == 300)
        #expect(policy.rules[0].match.before == 360)
        #expect(policy.rules[3].match.payload.first?.equals == 1)
        #expect(policy.needsIdentity)
        guard case .disconnect(let side, let code, _, let reset) = policy.rules[2].fault else {
            Issue.record("not a disconnect")
            return
        }
        #expect(side == .csms && code == 4000 && reset)
    }

    @Test("every problem is reported with its line")
    func errorsWithLines() {
        let yaml = """
            seed: -1
            rules:
              - name: a
                match: {direction: sideways, probability: 2}
                fault: explode
              - name: a
                match: {colour: red}
                fault: drop
              - name: b
                fault: {delay: {ms: -5}}
            """
        #expect {
            _ = try PolicyLoader.parse(yaml, file: "p.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("p.yaml:1:7: seed must be a non-negative integer")
                && text.contains("p.yaml:4:24: direction must be toCSMS or toCharger")
                && text.contains("p.yaml:4:47: probability must be a number from 0 to 1")
                && text.contains("p.yaml:5:12: unknown fault 'explode'")
                && text.contains("p.yaml:7:21: unknown field 'colour' in 'match' of rule 'a'")
                && text.contains("p.yaml:10:25: ms of delay in rule 'b': -5 is negative; a duration here is from 0 to 30 days")
                && text.contains("rule name 'a' is used twice")
        }
    }

    @Test("every duration of a policy is bounded: infinite, huge or negative ones are refused with the field and the range")
    func durationsAreBounded() {
        let yaml = """
            seed: 1
            rules:
              - name: slow
                fault: {delay: {ms: 1e300}}
              - name: late
                match: {after: 1e300}
                fault: drop
              - name: long
                fault: {outage: {duration: 31d}}
              - name: jittery
                fault: {delay: {ms: 10, jitterMs: 9223372036854775807}}
            checks:
              - name: forever
                area: commissioning
                when: {action: BootNotification}
                expect: {action: StatusNotification}
                within: .inf
            """
        #expect {
            _ = try PolicyLoader.parse(yaml, file: "p.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("p.yaml:4:25: ms of delay in rule 'slow': 1e+300 is longer than 30 days")
                && text.contains("p.yaml:6:20: after of rule 'late': 1e+300 is longer than 30 days")
                && text.contains("duration of outage in rule 'long': 2678400 is longer than 30 days")
                && text.contains("jitterMs of delay in rule 'jittery'")
                && text.contains("within of check 'forever' must be a duration")
        }
        // The longest the samples use, and the limit itself, are fine.
        #expect(throws: Never.self) {
            _ = try PolicyLoader.parse("seed: 1\nrules:\n  - name: a\n    match: {after: 24h}\n    fault: {outage: {duration: 30d}}\n", file: "q.yaml")
        }
    }

    @Test("a policy of checks alone parses; every problem of a check is reported with its line")
    func checks() throws {
        let good = try PolicyLoader.parse(
            """
            checks:
              - name: reboots
                area: remoteOperations
                version: ["1.6", "2.0.1"]
                when: {direction: toCSMS, type: CALLRESULT, action: Reset, payload: [{path: /status, equals: Accepted}]}
                expect: {action: BootNotification, connection: later, connector: same, payload: [{path: /x, sameAs: "call:/type"}, {path: /n, atMost: 4.5}]}
                within: 2m
            """
        )
        #expect(good.rules.isEmpty)
        let check = try #require(good.checks.first)
        #expect(check.area == .remoteOperations && check.outcome == .expect && check.within == 120)
        #expect(check.versions == [.v16, .v201])
        #expect(check.then.connection == .later && check.then.connector == .same && check.then.payload.count == 2)
        #expect(check.then.description == #"a message of BootNotification on a later connection for the same connector with /x same as the stimulus's call:/type and /n ≤ 4.5"#)

        let yaml = """
            checks:
              - name: c
                area: billing
                when: {event: open, action: Reset}
                expect: {connection: sometimes}
                forbid: {action: Reset}
                within: soon
              - name: c
                area: authorization
                version: "1.7"
                when: {payload: [{path: status, equals: 1}, {path: /a, atMost: many}]}
              - name: d
                area: faultHandling
                when: {action: StatusNotification, connector: same}
                expect: {event: close, connector: same}
                within: 1m
              - name: e
                area: faultHandling
                when: {action: StatusNotification}
                expect: {action: StatusNotification, connector: every}
                within: 1m
            """
        #expect {
            _ = try PolicyLoader.parse(yaml, file: "c.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("c.yaml:3:11: check 'c' needs 'area', one of: commissioning, authorization,")
                && text.contains("c.yaml:4:11: 'when' of check 'c': a 'open' event has no message fields")
                && text.contains("c.yaml:5:26: connection must be any, same or later")
                && text.contains("check 'c' has both 'expect' and 'forbid'")
                && text.contains("c.yaml:7:13: within of check 'c' must be a duration: seconds, or with a unit")
                && text.contains("check name 'c' is used twice")
                && text.contains("c.yaml:10:14: version must be 1.6, 2.0.1 or 2.1")
                && text.contains("a payload condition needs 'path', a JSON pointer")
                && text.contains("atMost must be a number")
                && text.contains("c.yaml:14:11: 'when' of check 'd': connection and connector relate an event to the stimulus; give them in 'expect' or 'forbid'")
                && text.contains("'expect' of check 'd': connector applies to messages")
                && text.contains("c.yaml:20:53: connector must be any or same")
                && text.contains("check 'c' needs 'expect' (what must follow) or 'forbid' (what must not)")
                && text.contains("check 'c' needs 'within'")
        }
    }

    @Test("a site command requirement for an action no OCPP version has is refused with its line and the nearest names")
    func misspeltCommand() throws {
        let yaml = "site:\n  commands:\n    Reset: {answerWithin: 10s}\n    RemoteStratTransaction: {answerWithin: 10s}\n"
        #expect {
            try PolicyLoader.parse(yaml, file: "site.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("site.yaml:4") && text.contains("'RemoteStratTransaction' is no OCPP 1.6, 2.0.1 or 2.1 action")
                && text.contains("did you mean one of: RemoteStartTransaction, RemoteStopTransaction")
        }
        #expect(try PolicyLoader.parse("site:\n  commands:\n    RequestStartTransaction: {answerWithin: 10s}\n").site.commands.keys.sorted() == ["RequestStartTransaction"])
    }

    @Test("YAML syntax errors point at the place")
    func yamlSyntax() {
        #expect {
            _ = try PolicyLoader.parse("seed: 1\nrules: [\n", file: "bad.yaml")
        } throws: { error in
            "\(error)".hasPrefix("bad.yaml:") && "\(error)".contains("YAML:")
        }
    }

    @Test("globs", arguments: [("CP-*", "CP-7", true), ("CP-?", "CP-17", false), ("*-01", "CP-GAMMA-01", true), ("Beta*", "Alpha", false), ("*", "", true)])
    func globs(pattern: String, text: String, matches: Bool) {
        #expect(Glob(pattern).matches(text) == matches)
    }

    @Test("malformations change exactly what they say")
    func mutations() {
        let call = #"[2,"1","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":10,"timestamp":"2026-11-24T10:00:00Z"}]"#
        #expect(MessageMutator.apply(.removeField(pointer: "/meterStart"), to: call).text == #"[2,"1","StartTransaction",{"connectorId":1,"idTag":"T","timestamp":"2026-11-24T10:00:00Z"}]"#)
        #expect(MessageMutator.apply(.wrongType(pointer: "/connectorId"), to: call).text.contains(#""connectorId":"1""#))
        #expect(MessageMutator.apply(.setField(pointer: "/idTag", value: "X"), to: call).text.contains(#""idTag":"X""#))
        #expect(MessageMutator.apply(.unknownAction, to: call).text.hasPrefix(#"[2,"1","WitnessUnknownAction""#))
        #expect((try? JSONParser.parse(MessageMutator.apply(.invalidJSON, to: call).text)) == nil)
        #expect(MessageMutator.apply(.binaryFrame, to: call) == (call, true))
        #expect(MessageMutator.apply(.oversize(bytes: 5000), to: call).text.utf8.count >= 4980)
        let result = #"[3,"1",{"status":"Accepted"}]"#
        #expect(MessageMutator.apply(.wrongCaseEnum(pointer: "/status"), to: result).text == #"[3,"1",{"status":"accepted"}]"#)
        #expect(MessageMutator.response(.callError(code: "NotSupported", description: "no"), messageId: "9") == #"[4,"9","NotSupported","no",{}]"#)
    }

    func facts(_ chargePoint: String, action: String = "Heartbeat") -> MessageFacts {
        MessageFacts(
            direction: .toCSMS, messageType: .call, action: action, messageId: "1", chargePoint: chargePoint, identity: nil,
            secondsSinceStart: 1, secondsSinceConnection: 1
        )
    }

    func hits(seed: UInt64, chargePoints: [String]) throws -> [String] {
        let engine = ChaosEngine(policy: try PolicyLoader.parse("seed: \(seed)\nrules:\n  - name: p\n    match: {probability: 0.3}\n    fault: drop\n"))
        var hits: [String] = []
        for index in 0..<200 {
            let chargePoint = chargePoints[index % chargePoints.count]
            if engine.decide(self.facts(chargePoint), payload: { nil }) != nil { hits.append("\(chargePoint)#\(index)") }
        }
        return hits
    }

    @Test("the same seed and traffic hit the same messages; another seed hits others")
    func reproducible() throws {
        let first = try self.hits(seed: 7, chargePoints: ["A", "B"])
        #expect(try self.hits(seed: 7, chargePoints: ["A", "B"]) == first)
        #expect(try self.hits(seed: 8, chargePoints: ["A", "B"]) != first)
        #expect(first.count > 30 && first.count < 90)
        // A charge point's faults do not depend on other chargers' traffic.
        let alone = try self.hits(seed: 7, chargePoints: ["A"]).count
        #expect(alone > 0)
        let aInMixed = first.filter { $0.hasPrefix("A#") }.count
        let aAlone = try self.hits(seed: 7, chargePoints: ["A", "A"]).filter { $0.hasPrefix("A#") }.prefix(aInMixed).count
        #expect(aAlone == aInMixed)
    }

    @Test("nth, first and every count per charge point")
    func counting() throws {
        let engine = ChaosEngine(
            policy: try PolicyLoader.parse(
                "rules:\n  - name: second\n    match: {action: StopTransaction, nth: 2}\n    fault: drop\n  - name: every3\n    match: {action: Heartbeat, every: 3}\n    fault: drop\n"
            )
        )
        let stops = (1...4).map { _ in engine.decide(self.facts("CP-7", action: "StopTransaction"), payload: { nil }) != nil }
        #expect(stops == [false, true, false, false])
        let otherCharger = (1...2).map { _ in engine.decide(self.facts("CP-8", action: "StopTransaction"), payload: { nil }) != nil }
        #expect(otherCharger == [false, true])
        let beats = (1...6).map { _ in engine.decide(self.facts("CP-7"), payload: { nil }) != nil }
        #expect(beats == [false, false, true, false, false, true])
    }

    /// Sends the messages of a charger's transactions to `engine` as the relay does, with real payloads;
    /// returns whether a rule hit. `connector` 1 or 2; `id` the transaction id.
    final class TransactionTraffic {
        let engine: ChaosEngine
        let version: OCPPVersion
        let chargePoint: String
        var messageNumber = 0

        init(engine: ChaosEngine, version: OCPPVersion, chargePoint: String = "CP-1") {
            self.engine = engine
            self.version = version
            self.chargePoint = chargePoint
        }

        func send(
            _ direction: Direction, _ type: MessageType, _ action: String, at seconds: Double, _ payload: JSONValue, messageId: String? = nil,
            connection: UInt64 = 1
        ) -> Bool {
            self.messageNumber += 1
            let facts = MessageFacts(
                direction: direction, messageType: type, action: action, messageId: messageId ?? "m\(self.messageNumber)", chargePoint: self.chargePoint,
                identity: nil, secondsSinceStart: seconds, secondsSinceConnection: seconds, connection: connection
            )
            return self.engine.decide(facts, payload: { payload }) != nil
        }

        func start(connector: Int, id: Int, at seconds: Double) -> Bool {
            if self.version == .v16 {
                let hit = self.send(.toCSMS, .call, "StartTransaction", at: seconds, ["connectorId": .int(connector), "idTag": "T", "meterStart": 0, "timestamp": "x"], messageId: "start-\(id)")
                _ = self.send(.toCharger, .callResult, "StartTransaction", at: seconds, ["transactionId": .int(id), "idTagInfo": ["status": "Accepted"]], messageId: "start-\(id)")
                return hit
            }
            return self.send(.toCSMS, .call, "TransactionEvent", at: seconds, ["eventType": "Started", "transactionInfo": ["transactionId": .string("\(id)")], "evse": ["id": .int(connector), "connectorId": 1]])
        }

        func meter(connector: Int, id: Int, at seconds: Double) -> Bool {
            if self.version == .v16 {
                return self.send(.toCSMS, .call, "MeterValues", at: seconds, ["connectorId": .int(connector), "transactionId": .int(id), "meterValue": []])
            }
            // Later events may leave out the EVSE: the transaction id says where it runs.
            return self.send(.toCSMS, .call, "TransactionEvent", at: seconds, ["eventType": "Updated", "transactionInfo": ["transactionId": .string("\(id)")]])
        }

        func stop(id: Int, at seconds: Double) -> Bool {
            if self.version == .v16 {
                return self.send(.toCSMS, .call, "StopTransaction", at: seconds, ["transactionId": .int(id), "meterStop": 1, "timestamp": "x"])
            }
            return self.send(.toCSMS, .call, "TransactionEvent", at: seconds, ["eventType": "Ended", "transactionInfo": ["transactionId": .string("\(id)")]])
        }
    }

    @Test("transactionFor waits until the charge point's transaction has run that long, and ends with it", arguments: [OCPPVersion.v16, .v201])
    func transactionFor(version: OCPPVersion) throws {
        let engine = ChaosEngine(
            policy: try PolicyLoader.parse("rules:\n  - name: stop-it\n    match: {action: [MeterValues, TransactionEvent, Heartbeat], transactionFor: 60s}\n    fault: drop\n")
        )
        let charger = TransactionTraffic(engine: engine, version: version)
        let other = TransactionTraffic(engine: engine, version: version, chargePoint: "CP-2")
        // Messages before any transaction, then a transaction from t = 100 s.
        #expect(!charger.send(.toCSMS, .call, "Heartbeat", at: 90, [:]))
        #expect(!charger.start(connector: 1, id: 7, at: 100))
        #expect(!charger.meter(connector: 1, id: 7, at: 159))
        #expect(charger.meter(connector: 1, id: 7, at: 160))
        // Another charger's transaction is its own.
        #expect(!other.start(connector: 1, id: 7, at: 165))
        #expect(!other.meter(connector: 1, id: 7, at: 170))
        // The message that ends the transaction does not match, nor anything after it until a new
        // transaction has run 60 s again.
        #expect(!charger.stop(id: 7, at: 180))
        #expect(!charger.send(.toCSMS, .call, "Heartbeat", at: 200, [:]))
        #expect(!charger.start(connector: 1, id: 8, at: 300))
        #expect(!charger.meter(connector: 1, id: 8, at: 330))
        #expect(charger.meter(connector: 1, id: 8, at: 361))
    }

    @Test("transactionFor follows each connector's transaction; a message naming none follows the longest-running one", arguments: [OCPPVersion.v16, .v201])
    func transactionForPerConnector(version: OCPPVersion) throws {
        let engine = ChaosEngine(
            policy: try PolicyLoader.parse("rules:\n  - name: stop-it\n    match: {action: [MeterValues, TransactionEvent, Heartbeat], transactionFor: 60s}\n    fault: drop\n")
        )
        let charger = TransactionTraffic(engine: engine, version: version)
        #expect(!charger.start(connector: 1, id: 1, at: 0))
        #expect(!charger.start(connector: 2, id: 2, at: 50))
        // Connector 1's transaction has run 70 s, connector 2's only 20 s: each message is judged by its own.
        #expect(charger.meter(connector: 1, id: 1, at: 70))
        #expect(!charger.meter(connector: 2, id: 2, at: 70))
        #expect(charger.send(.toCSMS, .call, "Heartbeat", at: 71, [:]))
        // Connector 1 stops: the first stop no longer ends the charger's only transaction, connector 2's runs on.
        #expect(!charger.stop(id: 1, at: 80))
        #expect(!charger.meter(connector: 2, id: 2, at: 100))
        #expect(!charger.send(.toCSMS, .call, "Heartbeat", at: 100, [:]))
        #expect(charger.meter(connector: 2, id: 2, at: 111))
        #expect(charger.send(.toCSMS, .call, "Heartbeat", at: 112, [:]))
    }

    @Test("transactionFor: an event of an ended transaction delivered late starts nothing; a start refused with a CALLERROR runs nothing", arguments: [OCPPVersion.v16, .v201])
    func transactionForLateAndRefused(version: OCPPVersion) throws {
        let engine = ChaosEngine(
            policy: try PolicyLoader.parse("rules:\n  - name: stop-it\n    match: {action: [MeterValues, TransactionEvent, Heartbeat], transactionFor: 60s}\n    fault: drop\n")
        )
        let charger = TransactionTraffic(engine: engine, version: version)
        #expect(!charger.start(connector: 1, id: 1, at: 0))
        #expect(!charger.stop(id: 1, at: 30))
        // Delivered after the end (2.0.1 allows it): it must not bring transaction 1 back.
        #expect(!charger.meter(connector: 1, id: 1, at: 40))
        #expect(!charger.send(.toCSMS, .call, "Heartbeat", at: 200, [:]))
        if version == .v16 {
            // The backend refuses to process a start: no transaction runs on connector 1.
            #expect(!charger.send(.toCSMS, .call, "StartTransaction", at: 300, ["connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "x"], messageId: "refused"))
            #expect(!charger.send(.toCharger, .callError, "StartTransaction", at: 300, [:], messageId: "refused"))
            #expect(!charger.send(.toCSMS, .call, "Heartbeat", at: 400, [:]))
        }
    }

    @Test("transactionFor: a start's answer goes to the start of its own connection, whatever ids an earlier connection used")
    func transactionForStartsPerConnection() throws {
        let engine = ChaosEngine(
            policy: try PolicyLoader.parse("rules:\n  - name: stop-it\n    match: {action: [RemoteStopTransaction], transactionFor: 60s}\n    fault: drop\n")
        )
        let charger = TransactionTraffic(engine: engine, version: .v16)
        // Connection 1 sends a start (message id 5) and drops before its answer.
        _ = charger.send(.toCSMS, .call, "StartTransaction", at: 0, ["connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "x"], messageId: "5", connection: 1)
        // Connection 2 numbers its messages afresh: its start on connector 2 is message 5 too, answered with transaction 9.
        _ = charger.send(.toCSMS, .call, "StartTransaction", at: 100, ["connectorId": 2, "idTag": "T", "meterStart": 0, "timestamp": "x"], messageId: "5", connection: 2)
        _ = charger.send(.toCharger, .callResult, "StartTransaction", at: 100, ["transactionId": 9, "idTagInfo": ["status": "Accepted"]], messageId: "5", connection: 2)
        // Transaction 9 has run 50 s, not the 150 s of connection 1's start.
        #expect(!charger.send(.toCharger, .call, "RemoteStopTransaction", at: 150, ["transactionId": 9], connection: 2))
        #expect(charger.send(.toCharger, .call, "RemoteStopTransaction", at: 161, ["transactionId": 9], connection: 2))
    }

    @Test("an injected CALL can copy fields of the message that triggered it; a missing one is named")
    func fromTrigger() throws {
        let policy = try PolicyLoader.parse(
            """
            rules:
              - name: remote-stop
                match: {action: MeterValues, transactionFor: 1m, first: 1}
                fault: {inject: {action: RemoteStopTransaction, payload: {transactionId: {fromTrigger: /transactionId}, note: [{fromTrigger: /meterValue/0/timestamp}]}}}
            """
        )
        #expect(policy.rules[0].match.transactionFor == 60)
        guard case .inject(_, let template, let copies, _) = policy.rules[0].fault else {
            Issue.record("not an inject")
            return
        }
        #expect(copies == [InjectCopy(pointer: "/transactionId", source: "/transactionId"), InjectCopy(pointer: "/note/0", source: "/meterValue/0/timestamp")])
        let trigger: JSONValue = ["connectorId": 1, "transactionId": 42, "meterValue": [["timestamp": "2026-12-03T10:00:00Z"]]]
        let filled = try InjectCopy.fill(template, copies: copies, from: trigger).get()
        #expect(JSONWriter.string(filled) == #"{"transactionId":42,"note":["2026-12-03T10:00:00Z"]}"#)
        #expect(throws: InjectCopy.MissingField(pointer: "/transactionId")) { try InjectCopy.fill(template, copies: copies, from: ["connectorId": 1]).get() }

        #expect(throws: PolicyErrors.self) {
            try PolicyLoader.parse("rules:\n  - name: x\n    fault: {inject: {action: Reset, payload: {type: {fromTrigger: nope}}}}\n")
        }
        #expect(throws: PolicyErrors.self) { try PolicyLoader.parse("rules:\n  - name: x\n    match: {transactionFor: soon}\n    fault: drop\n") }
    }
}

@Suite("Sample policies")
struct SamplePolicyTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("policies")

    @Test("every sample in policies/ is valid, one per test area")
    func samplesLoad() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == [
            "authorization.yaml", "comm-loss.yaml", "commissioning.yaml", "data-handover.yaml", "fault-handling.yaml", "firmware-update.yaml",
            "metering-billing.yaml", "remote-operations.yaml", "smart-charging.yaml",
        ])
        var areas: Set<WitnessArea> = []
        var names: Set<String> = []
        for file in files {
            let policy = try PolicyLoader.load(path: Self.folder.appendingPathComponent(file).path)
            #expect(!policy.rules.isEmpty, "\(file)")
            #expect(!policy.checks.isEmpty, "\(file) has no checks")
            areas.formUnion(policy.checks.map(\.area))
            for check in policy.checks { #expect(names.insert(check.name).inserted, "check name \(check.name) is used twice") }
        }
        // Every area of the buyer's test plan has at least one pass condition.
        #expect(areas == Set(WitnessArea.allCases))
    }

    /// Validates YAML documents against docs/policy.schema.json with the `jsonschema` package of .tools/venv
    /// (`make setup`); returns the validator's verdict per document.
    static func schemaVerdicts(_ documents: [String], schema: String = "docs/policy.schema.json") async throws -> [String] {
        let root = Self.folder.deletingLastPathComponent()
        let python = root.appendingPathComponent(".tools/venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python), "run `make setup`: \(python) is missing")
        let objects = try documents.map { try #require(try Yams.load(yaml: $0)) }
        let data = try JSONSerialization.data(withJSONObject: objects)
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("policies-\(UUID().uuidString).json").path
        try data.write(to: URL(fileURLWithPath: input))
        defer { try? FileManager.default.removeItem(atPath: input) }
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            validator = jsonschema.Draft7Validator(schema)
            for document in json.load(open(sys.argv[2])):
                errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
                print("valid" if not errors else "invalid: " + "; ".join("/".join(map(str, e.absolute_path)) + " " + e.message for e in errors))
            """
        let result = try await Program.run(python, ["-c", script, root.appendingPathComponent(schema).path, input])
        #expect(result.status == 0, "\(result.errors)")
        return result.output.split(separator: "\n").map(String.init)
    }

    @Test("the example vendor declaration loads and is valid against docs/declaration.schema.json; a misspelt feature is neither")
    func declarationMatchesTheSchema() async throws {
        let root = Self.folder.deletingLastPathComponent()
        let example = try String(contentsOfFile: root.appendingPathComponent("docs/examples/vendor-declaration.yaml").path, encoding: .utf8)
        let declarations = try DeclarationLoader.parse(example, file: "vendor-declaration.yaml")
        #expect(declarations.count == 2 && declarations[0].features["SmartCharging"] == .supported && declarations[1].ocppVersion == .v201)
        let broken = "declarations:\n  - {vendor: Acme, model: AC-22, features: {SmartCharing: supported}}\n"
        #expect(throws: PolicyErrors.self) { try DeclarationLoader.parse(broken) }
        let verdicts = try await Self.schemaVerdicts([example, broken], schema: "docs/declaration.schema.json")
        #expect(verdicts.first == "valid", "\(verdicts)")
        #expect(verdicts.last?.hasPrefix("invalid") == true && verdicts.last?.contains("SmartCharing") == true, "\(verdicts)")
    }

    @Test("every sample policy is valid against docs/policy.schema.json, and a broken check is not")
    func samplesMatchTheSchema() async throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        let documents = try files.map { try String(contentsOfFile: Self.folder.appendingPathComponent($0).path, encoding: .utf8) }
        let broken = "checks:\n  - {name: x, area: billing, when: {action: Reset}, expect: {colour: red}, within: 1m}\n"
        let verdicts = try await Self.schemaVerdicts(documents + [broken])
        #expect(verdicts.count == files.count + 1)
        for (file, verdict) in zip(files, verdicts) { #expect(verdict == "valid", "\(file): \(verdict)") }
        #expect(verdicts.last?.hasPrefix("invalid") == true)
        #expect(verdicts.last?.contains("billing") == true)
    }
}
