import ArgumentParser
import ChildProcesses
import Foundation
import OCPPSchema
import OCPPWire
import WitnessCLISupport

/// `ocpp-witness benchmark`: each subcommand measures OCPP Witness against a peer in the same run.
package struct BenchmarkCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Measure OCPP Witness against a peer in the same run.",
        subcommands: [
            ForwardingBenchmark.self, ReconnectBenchmark.self, SoakBenchmark.self, ValidationBenchmark.self, RecorderBenchmark.self, AnalysisBenchmark.self,
            ByteRelayPeer.self,
        ]
    )

    package init() {}
}

struct ValidationBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validation",
        abstract: "Messages per second parsed and schema-validated on one core, against Python jsonschema.",
        discussion: """
            Each typical OCPP 1.6 and 2.0.1 message is parsed from its text and validated against its OCA schema in a loop on one
            thread for --seconds. With --peer-python, the same messages go through the Python `jsonschema` package (what the
            `ocpp` library uses) on the same schema files in the same run, and the ratio is printed. Timings are for reading, not
            for asserting: run it on a quiet machine, in a release build (`make bench-validation`).
            """
    )

    @Option(help: ArgumentHelp("Folder with the OCA schemas.", valueName: "DIR"))
    var schemas: String?

    @Option(help: "Seconds per message and implementation.")
    var seconds: Double = 2

    @Option(help: ArgumentHelp("Python with `jsonschema` installed, for the peer measurement (e.g. .tools/venv/bin/python).", valueName: "PATH"))
    var peerPython: String?

    struct Case {
        var name: String
        var version: OCPPVersion
        var action: String
        var payload: String
    }

    static let cases: [Case] = {
        let ts = "2026-11-24T10:00:00.000Z"
        return [
            Case(name: "1.6 BootNotification", version: .v16, action: "BootNotification",
                 payload: #"{"chargePointVendor":"Alpha Charge","chargePointModel":"AC-22","chargePointSerialNumber":"SN-0001","firmwareVersion":"3.4.1","iccid":"8931440400012345678","meterType":"EM-1"}"#),
            Case(name: "1.6 StatusNotification", version: .v16, action: "StatusNotification",
                 payload: #"{"connectorId":1,"errorCode":"NoError","status":"Charging","timestamp":"\#(ts)"}"#),
            Case(name: "1.6 MeterValues", version: .v16, action: "MeterValues",
                 payload: #"{"connectorId":1,"transactionId":4711,"meterValue":[{"timestamp":"\#(ts)","sampledValue":[{"value":"15234","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"},{"value":"7360","context":"Sample.Periodic","measurand":"Power.Active.Import","unit":"W"},{"value":"32.1","context":"Sample.Periodic","measurand":"Current.Import","phase":"L1","unit":"A"},{"value":"229.8","context":"Sample.Periodic","measurand":"Voltage","phase":"L1-N","unit":"V"}]}]}"#),
            Case(name: "1.6 Heartbeat", version: .v16, action: "Heartbeat", payload: "{}"),
            Case(name: "2.0.1 BootNotification", version: .v201, action: "BootNotification",
                 payload: #"{"reason":"PowerUp","chargingStation":{"model":"BP-150 DC","vendorName":"Beta Power","serialNumber":"SN-0002","firmwareVersion":"2.0.7","modem":{"iccid":"8931440400012345678","imsi":"262011234567890"}}}"#),
            Case(name: "2.0.1 StatusNotification", version: .v201, action: "StatusNotification",
                 payload: #"{"timestamp":"\#(ts)","connectorStatus":"Occupied","evseId":1,"connectorId":1}"#),
            Case(name: "2.0.1 TransactionEvent", version: .v201, action: "TransactionEvent",
                 payload: #"{"eventType":"Updated","timestamp":"\#(ts)","triggerReason":"MeterValuePeriodic","seqNo":3,"transactionInfo":{"transactionId":"tx-0001","chargingState":"Charging"},"evse":{"id":1,"connectorId":1},"meterValue":[{"timestamp":"\#(ts)","sampledValue":[{"value":15234,"context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unitOfMeasure":{"unit":"Wh"}},{"value":7360,"context":"Sample.Periodic","measurand":"Power.Active.Import","unitOfMeasure":{"unit":"W"}},{"value":32.1,"context":"Sample.Periodic","measurand":"Current.Import","phase":"L1"}]}]}"#),
            Case(name: "2.0.1 Heartbeat", version: .v201, action: "Heartbeat", payload: "{}"),
        ]
    }()

    func run() async throws {
        let (registry, schemaFolder) = try DataFolder.locate("schemas", option: self.schemas, variable: "OCPP_WITNESS_SCHEMAS") {
            (try SchemaRegistry(root: $0), $0)
        }
        let validator = SchemaValidator(profile: .strict)
        var ours: [String: Double] = [:]
        for benchCase in Self.cases {
            guard let schema = registry.request(benchCase.version, benchCase.action) else {
                throw ValidationError("no schema for \(benchCase.action) in OCPP \(benchCase.version.rawValue)")
            }
            let bytes = Array(benchCase.payload.utf8)
            let check = validator.validate(try JSONParser.parse(bytes), against: schema)
            guard check.isEmpty else { throw ValidationError("benchmark message \(benchCase.name) is invalid: \(check)") }
            var count = 0
            let clock = ContinuousClock()
            let start = clock.now
            let deadline = start + .milliseconds(Int(self.seconds * 1000))
            var violations = 0
            repeat {
                for _ in 0..<50 {
                    let value = try JSONParser.parse(bytes)
                    violations &+= validator.validate(value, against: schema).count
                }
                count += 50
            } while clock.now < deadline
            let elapsed = clock.now - start
            ours[benchCase.name] = Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            precondition(violations == 0)
        }

        var peer: [String: Double] = [:]
        if let peerPython {
            peer = try self.runPeer(python: peerPython, schemas: schemaFolder)
        }
        let nameWidth = Self.cases.map(\.name.count).max() ?? 10
        func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, width - text.count))
            return left ? text + fill : fill + text
        }
        print("Parse + schema validation, one core, \(self.seconds) s per message (messages per second)")
        print(pad("message", nameWidth, left: true) + "  " + pad("ocpp-witness", 12) + (peer.isEmpty ? "" : "  " + pad("jsonschema", 12) + "  " + pad("ratio", 7)))
        for benchCase in Self.cases {
            let mine = ours[benchCase.name] ?? 0
            var line = pad(benchCase.name, nameWidth, left: true) + "  " + pad(String(format: "%.0f", mine), 12)
            if let theirs = peer[benchCase.name], theirs > 0 {
                line += "  " + pad(String(format: "%.0f", theirs), 12) + "  " + pad(String(format: "%.1fx", mine / theirs), 7)
            }
            print(line)
        }
    }

    private func runPeer(python: String, schemas schemaFolder: String) throws -> [String: Double] {
        let script = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var root = script.deletingLastPathComponent()
        while root.path != "/" && !FileManager.default.fileExists(atPath: root.appendingPathComponent("scripts/bench/validate_jsonschema.py").path) {
            root = root.deletingLastPathComponent()
        }
        let peerScript = root.appendingPathComponent("scripts/bench/validate_jsonschema.py").path
        guard FileManager.default.fileExists(atPath: peerScript) else {
            throw ValidationError("cannot find scripts/bench/validate_jsonschema.py above \(script.path)")
        }
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [peerScript, schemaFolder, String(self.seconds)]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        for benchCase in Self.cases {
            let suffix = benchCase.version == .v16 ? ".json" : "Request.json"
            let line: JSONValue = [
                "name": .string(benchCase.name), "version": .string(SchemaRegistry.folder(for: benchCase.version)),
                "schema": .string(benchCase.action + suffix), "message": .string(benchCase.payload),
            ]
            input.fileHandleForWriting.write(Data((JSONWriter.string(line) + "\n").utf8))
        }
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("the jsonschema peer failed (status \(process.terminationStatus))") }
        var results: [String: Double] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let value = try? JSONParser.parse(String(line)), let name = value["name"]?.stringValue else { continue }
            if value["valid"] != true { throw ValidationError("jsonschema finds the benchmark message \(name) invalid") }
            results[name] = value["perSecond"]?.doubleValue
        }
        return results
    }
}
