import ArgumentParser
import Foundation
import OCPPSchema
import OCPPWire
import WitnessCLISupport
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy

struct BillingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billing",
        abstract: "Write each transaction's billing sheet: energy by each source, times charging and parked, the backend's price and the tariff's.",
        discussion: """
            One line per stopped transaction of the captures: charge point, connector, id token (as recorded), start,
            stop, energy by the register and by interval readings, duration, time charging and parked, what the backend
            said it costs (2.0.1 totalCost), and, with a policy whose site declares a tariff, the expected price and the
            difference (docs/billing.md). Numbers stay numbers in the CSV.
            """
    )

    @Argument(help: ArgumentHelp("Capture files or folders.", valueName: "CAPTURE"))
    var captures: [String]

    @Option(
        name: .customLong("policy"),
        help: ArgumentHelp("A policy whose site declares the tariff (repeatable). Default: the policies the captures' headers name, when they can be read.", valueName: "FILE")
    )
    var policies: [String] = []

    @OptionGroup var meterKeys: MeterKeys

    @Option(help: "Output format: csv or json.")
    var format: Format = .csv

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case csv, json
    }

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the sheet here instead of standard output.", valueName: "FILE"))
    var output: String?

    func validate() throws {
        guard !self.captures.isEmpty else { throw ValidationError("give at least one capture file or folder") }
    }

    func run() async throws {
        let reader: CaptureReader
        do {
            reader = try CaptureReader(paths: self.captures)
        } catch {
            throw ValidationError("cannot read captures: \(error)")
        }
        var configuration = AnalyzerConfiguration()
        configuration.site = try WitnessChecks.loadPolicies(policies: self.policies, captures: self.captures).site
        configuration.meterKeys = try self.meterKeys.load()
        // With the schemas where they are installed, as `report` reads the captures (a CALL that breaks its schema
        // is not taken at its word); without them, every message as it came.
        let analyzer = Analyzer(schemas: try? SchemaRegistry.load(forCommand: nil), configuration: configuration)
        for record in reader { analyzer.consume(record) }
        let report = analyzer.finish(readIssues: reader.issues)
        let text = self.format == .csv ? BillingSheet.csv(report) : JSONWriter.string(BillingSheet.json(report)) + "\n"
        if let output {
            do {
                try text.write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write \(output): \(error)")
            }
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        for issue in reader.issues { FileHandle.standardError.write(Data("warning: \(issue)\n".utf8)) }
        if report.billingRowsDropped > 0 {
            FileHandle.standardError.write(Data("warning: \(report.billingRowsDropped) transactions past the first \(BillingSheet.rowsKept) are not in the sheet; give fewer captures at a time\n".utf8))
        }
    }
}

/// `--meter-key [CHARGEPOINT=]FILE` of `report` and `billing`: meter public keys by charge point (`*`: any).
struct MeterKeys: ParsableArguments {
    @Option(
        name: .customLong("meter-key"),
        help: ArgumentHelp(
            "A meter public key for signed meter values (PEM, or DER as hex or base64): FILE for every charger, or CHARGEPOINT=FILE. Repeatable; a key the message, the transaction or the charger's configuration gives comes first.",
            valueName: "[CHARGEPOINT=]FILE"
        )
    )
    var options: [String] = []

    func load() throws -> [String: String] {
        var keys: [String: String] = [:]
        for option in self.options {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            let (chargePoint, path) = parts.count == 2 ? (parts[0], parts[1]) : ("*", option)
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8),
                !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            else { throw ValidationError("--meter-key \(option): cannot read a key from \(path)") }
            keys[chargePoint] = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return keys
    }
}
