import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy
import WitnessProxy
import WitnessSim
import WitnessTestSupport

extension ProxyHarness {
    /// The report of everything captured so far, as `report` makes it with `configuration`.
    func report(_ configuration: AnalyzerConfiguration) async throws -> AnalysisReport {
        let analyzer = Analyzer(schemas: try InstalledSchemas.registry.get(), configuration: configuration)
        for record in try await self.records() { analyzer.consume(record) }
        return analyzer.finish()
    }
}

/// The backend's commands judged from real traffic through the proxy: answered, accepted, carried out, and how
/// fast (docs/reports.md, "Remote commands").
@Suite("Remote commands: answered, accepted, carried out")
struct CommandTests {
    @Test("a Reset and a remote start accepted and carried out are counted with their times; accepted and never carried out, they are findings with both lines", arguments: [OCPPVersion.v16, .v201])
    func commands(version: OCPPVersion) async throws {
        try await ProxyHarness.start().run { harness in
            let good = harness.charger(ChargerProfile(id: "CMD-GOOD", vendor: "Good Co", version: version))
            let bad = harness.charger(ChargerProfile(id: "CMD-BAD", vendor: "Bad Co", version: version, quirks: [.ignoresReset]))
            for charger in [good, bad] {
                try await charger.connect()
                try await charger.boot()
                let csms = await harness.csms.connection(charger.profile.id)
                // An unlock on an idle connector: accepted, with nothing on the wire to show for it.
                _ = try await csms.call("UnlockConnector", version == .v16 ? ["connectorId": 1] : ["evseId": 1, "connectorId": 1])
                // A driver plugs in: the remote start has an EV to start for.
                let plugged: JSONValue = version == .v16
                    ? ["connectorId": 1, "errorCode": "NoError", "status": "Preparing"]
                    : ["timestamp": .string(Timestamp.now().rfc3339), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1]
                _ = try await charger.call("StatusNotification", plugged)
                let remoteStart: JSONValue = version == .v16
                    ? ["connectorId": 1, "idTag": "REMOTE-1"] : ["idToken": ["idToken": "REMOTE-1", "type": "Central"], "remoteStartId": 7, "evseId": 1]
                _ = try await csms.call(version == .v16 ? "RemoteStartTransaction" : "RequestStartTransaction", remoteStart)
                // The good charger starts the session it accepted; the bad one never does.
                if charger === good { #expect(try await charger.chargingSession(idTag: "REMOTE-1", meterSamples: 1) == .charged) }
                _ = try await csms.call("TriggerMessage", ["requestedMessage": "StatusNotification"])
                _ = try await csms.call("Reset", version == .v16 ? ["type": "Soft"] : ["type": "Immediate"])
            }
            #expect(await eventually { good.reboots == 1 })
            // Outlast the 3 s window on the bad charger, so that what never came is not carried out.
            try await Task.sleep(for: .seconds(4))
            _ = try await bad.call("Heartbeat", [:])
            await good.disconnect()
            await bad.disconnect()
            await harness.waitForClosedPairs(3)

            var configuration = AnalyzerConfiguration()
            configuration.commandWindowSeconds = 3
            let report = try await harness.report(configuration)
            #expect(report.deviations.filter { $0.chargePoint == "CMD-GOOD" && $0.severity != .info }.map { "\($0.rule): \($0.detail)" } == [])
            let findings = report.deviations.filter { $0.rule == "command.notCarriedOut" }
            let remoteStart = version == .v16 ? "RemoteStartTransaction" : "RequestStartTransaction"
            #expect(findings.map { "\($0.chargePoint ?? "") \($0.action ?? "")" }.sorted() == ["CMD-BAD Reset", "CMD-BAD \(remoteStart)"].sorted(), "\(findings.map(\.detail))")
            for finding in findings {
                let answer = try #require(try await harness.record(at: finding.ref ?? ""))
                #expect(answer.messageType == .callResult && answer.action == finding.action && answer.direction == .toCSMS)
                let call = try #require(try await harness.record(at: finding.related.first ?? ""))
                #expect(call.messageType == .call && call.action == finding.action && call.direction == .toCharger)
            }

            func statistics(_ vendor: String, _ action: String) -> CommandStatistics? {
                report.pairs.first { $0.key.charger.vendor == vendor }?.statistics.commands[action]
            }
            let reset = try #require(statistics("Good Co", "Reset"))
            #expect((reset.sent, reset.answered, reset.accepted, reset.carriedOut) == (1, 1, 1, 1))
            #expect(reset.toAnswer.count == 1 && reset.toEffect.count == 1 && reset.toEffect.maximum >= reset.toAnswer.maximum)
            #expect(statistics("Good Co", remoteStart)?.carriedOut == 1)
            #expect(statistics("Good Co", "TriggerMessage")?.carriedOut == 1)
            #expect(statistics("Good Co", "UnlockConnector")?.notObservable == 1)
            #expect(statistics("Bad Co", "Reset")?.notCarriedOut == 1 && statistics("Bad Co", remoteStart)?.notCarriedOut == 1)
            #expect(statistics("Bad Co", "TriggerMessage")?.carriedOut == 1)
            // Every report format carries the table.
            #expect(report.render(.md).contains("## Remote commands") && report.render(.html).contains("<h3>Remote commands</h3>"))
            let json = try JSONParser.parse(report.render(.json))
            let commands = json["pairs"]?.arrayValue?.first { $0["charger"]?["vendor"] == "Good Co" }?["commands"]
            #expect(commands?["Reset"]?["carriedOut"] == 1 && commands?["Reset"]?["toEffectMs"]?["max"] != nil)

            // The same traffic judged by a site's requirements: the good charger meets them, the bad one does not.
            let policy = try PolicyLoader.parse(
                """
                site:
                  commands:
                    Reset: {answerWithin: 10s, effectWithin: 60s, carriedOut: 100%}
                    \(remoteStart): {carriedOut: 100%}
                    UnlockConnector: {answerWithin: 10s}
                checks:
                  - name: commands-as-required
                    area: remoteOperations
                    judge: commandRequirements
                """
            )
            configuration.checks = policy.checks
            configuration.site = policy.site
            let judged = try await harness.report(configuration)
            let met = try #require(judged.check("commands-as-required", vendor: "Good Co"))
            #expect(met.verdict == .pass && met.counts[.fail] == nil, "\(met.detail)")
            let missed = try #require(judged.check("commands-as-required", vendor: "Bad Co"))
            #expect(missed.verdict == .fail, "\(missed.detail)")
            // The Reset and the remote start not carried out, and both shares below 100%; the unlock met its requirement.
            #expect(missed.counts[.fail] == 4 && missed.counts[.pass] == 1, "\(missed.counts) \(missed.detail)")
            let command = try #require(try await harness.record(at: missed.refs.first ?? ""))
            #expect(command.messageType == .call && command.direction == .toCharger && [remoteStart, "Reset"].contains(command.action ?? ""))
        }
    }

    @Test("an unlock answered after 2 s fails a site that asks for an answer within 1 s; the prompt charger passes")
    func slowUnlock() async throws {
        try await ProxyHarness.start().run { harness in
            let prompt = harness.charger(ChargerProfile(id: "UNLOCK-FAST", vendor: "Prompt Co"))
            let slow = harness.charger(ChargerProfile(id: "UNLOCK-SLOW", vendor: "Slow Co", quirks: [.answersUnlockLate]))
            for charger in [prompt, slow] {
                try await charger.connect()
                try await charger.boot()
                _ = try await harness.csms.connection(charger.profile.id).call("UnlockConnector", ["connectorId": 1])
                await charger.disconnect()
            }
            await harness.waitForClosedPairs(2)
            let policy = try PolicyLoader.parse(
                "site:\n  commands:\n    UnlockConnector: {answerWithin: 1s}\nchecks:\n  - {name: commands-as-required, area: remoteOperations, judge: commandRequirements}\n"
            )
            var configuration = AnalyzerConfiguration()
            configuration.checks = policy.checks
            configuration.site = policy.site
            let report = try await harness.report(configuration)
            #expect(report.check("commands-as-required", vendor: "Prompt Co")?.verdict == .pass)
            let late = try #require(report.check("commands-as-required", vendor: "Slow Co"))
            #expect(late.verdict == .fail && late.side == .charger && late.detail.contains("was answered after 2.") && late.detail.contains("within 1 s"), "\(late.detail)")
            let unlock = try #require(report.pairs.first { $0.key.charger.vendor == "Slow Co" }?.statistics.commands["UnlockConnector"])
            #expect(unlock.toAnswer.maximum >= 2000 && unlock.notObservable == 1)
        }
    }

    @Test("a remote start on a connector without a cable that never starts is not observable, not a finding (the charger waits for the EV)")
    func remoteStartWithoutEV() async throws {
        try await ProxyHarness.start().run { harness in
            let charger = harness.charger(ChargerProfile(id: "CMD-NOEV", vendor: "Waits Co"))
            try await charger.connect()
            try await charger.boot()
            _ = try await harness.csms.connection("CMD-NOEV").call("RemoteStartTransaction", ["connectorId": 1, "idTag": "REMOTE-2"])
            try await Task.sleep(for: .seconds(2))
            _ = try await charger.call("Heartbeat", [:])
            await charger.disconnect()
            await harness.waitForClosedPairs(1)
            var configuration = AnalyzerConfiguration()
            configuration.commandWindowSeconds = 1
            let report = try await harness.report(configuration)
            #expect(report.deviations.filter { $0.severity != .info }.map(\.rule) == [])
            let start = try #require(report.pairs.first?.statistics.commands["RemoteStartTransaction"])
            #expect((start.accepted, start.notObservable, start.notCarriedOut) == (1, 1, 0))
        }
    }
}
