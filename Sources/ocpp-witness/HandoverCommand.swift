import ArgumentParser
import Foundation
import WitnessAnalysis
import WitnessCapture

struct HandoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handover",
        abstract: "Export charger inventory, last known configuration and transactions from captures (CSV and JSON Lines).",
        discussion: """
            What a buyer needs when leaving a platform, as the chargers and the backend exchanged it: chargers.csv,
            configuration.csv and transactions.csv, each also as .jsonl. idTags are pseudonymised (tag- and 8 hex
            digits, the same for the same card) unless --include-id-tags. Columns: docs/handover.md.
            """
    )

    @Argument(help: ArgumentHelp("Capture files or folders.", valueName: "CAPTURE"))
    var captures: [String]

    @Option(name: .shortAndLong, help: ArgumentHelp("Folder to write the files into (created if missing).", valueName: "DIR"))
    var output: String

    @Flag(help: "Write the idTags as recorded instead of pseudonyms.")
    var includeIdTags = false

    func run() throws {
        let reader: CaptureReader
        do {
            reader = try CaptureReader(paths: self.captures)
        } catch {
            throw ValidationError("cannot read captures: \(error)")
        }
        let export = HandoverExport.read(reader, includeIdTags: self.includeIdTags)
        do {
            try FileManager.default.createDirectory(atPath: self.output, withIntermediateDirectories: true)
            let files: [(String, [String], [[String]], Set<String>)] = [
                ("chargers", HandoverExport.chargerColumns, export.chargerRows, ["connections"]),
                ("configuration", HandoverExport.configurationColumns, export.configurationRows, []),
                ("transactions", HandoverExport.transactionColumns, export.transactionRows, ["meterStartWh", "meterStopWh", "energyWh"]),
            ]
            for (name, columns, rows, numeric) in files {
                try HandoverExport.csv(columns, rows).write(toFile: "\(self.output)/\(name).csv", atomically: true, encoding: .utf8)
                try HandoverExport.jsonLines(columns, rows, numeric: numeric).write(toFile: "\(self.output)/\(name).jsonl", atomically: true, encoding: .utf8)
            }
        } catch {
            throw ValidationError("cannot write into \(self.output): \(error)")
        }
        for issue in reader.issues { FileHandle.standardError.write(Data("warning: \(issue)\n".utf8)) }
        print(
            "\(self.output): \(export.chargers.count) chargers, \(export.configuration.count) configuration values, \(export.transactions.count) transactions"
                + (self.includeIdTags ? "" : " (idTags pseudonymised)")
        )
    }
}
