import ArgumentParser
import Foundation
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessPolicy
import WitnessCLISupport

extension ReportFormat: ExpressibleByArgument {}
extension ValidationProfile: ExpressibleByArgument {}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Analyse captures and report the deviations of each charger/backend pair.",
        discussion: """
            Validates every message against the official OCA schemas of its OCPP version, applies the RPC and
            transaction/metering rules (see docs/rules.md or `ocpp-witness rules`), and groups the findings by charger
            vendor/model/firmware (from BootNotification) and backend. Streams the captures: any size fits.
            """
    )

    @Argument(help: ArgumentHelp("Capture files or folders.", valueName: "CAPTURE"))
    var captures: [String]

    @Option(help: "Output format: json, md, html or junit.")
    var format: ReportFormat = .json

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the report here instead of standard output.", valueName: "FILE"))
    var output: String?

    @Option(help: "strict (the schemas as written) or lenient (well-known field quirks are warnings).")
    var profile: ValidationProfile = .strict

    @Option(help: ArgumentHelp("Folder with the OCA schemas (v16, v201, v21), as `make setup` installs them.", valueName: "DIR"))
    var schemas: String?

    @Option(help: ArgumentHelp("Seconds after which an unanswered CALL is rpc.timeout.", valueName: "SECONDS"))
    var responseTimeout: Double = 30

    @Option(
        help: ArgumentHelp(
            "Seconds two of the charger's timestamps may disagree before an ordering rule (tx.timestampOutside) counts it; readings taken within one message and clocks of whole seconds differ that much.",
            valueName: "SECONDS"
        )
    )
    var clockTolerance: Double = 1

    @Option(
        help: ArgumentHelp(
            "How far a transaction's median interval between periodic meter readings may be from the configured one (meter.interval), as a fraction (0.1) or a percentage (10%), never less than --clock-tolerance. Default: the policies' site intervalTolerance, else 10%.",
            valueName: "FRACTION"
        )
    )
    var intervalTolerance: String?

    @Option(
        help: ArgumentHelp(
            "Seconds an accepted command's effect may take (a reboot after Reset, a transaction after a remote start) before it is command.notCarriedOut.",
            valueName: "SECONDS"
        )
    )
    var commandWindow: Double = 120

    @Option(
        help: ArgumentHelp(
            "Seconds a charge point may be gone (no connection open) before its open transactions are reported tx.notStopped and released, as live analysis did. Default: what the capture header says the proxy used; nothing is released for captures whose header does not say (older versions).",
            valueName: "SECONDS"
        )
    )
    var stateRetention: Double?

    @Option(
        name: .customLong("policy"),
        help: ArgumentHelp(
            "A policy whose checks judge the witness test areas (repeat for several). Default: the policy named in the captures' headers, when it can be read.",
            valueName: "FILE"
        )
    )
    var policies: [String] = []

    @Option(
        help: ArgumentHelp(
            "The kind of site whose required areas a pair must have run: \(WitnessScope.all.map(\.name).joined(separator: ", ")). A pair is incomplete while one of them is notRun.",
            valueName: "NAME"
        )
    )
    var scope: String?

    @OptionGroup var meterKeys: MeterKeys

    @Option(
        name: .customLong("declaration"),
        help: ArgumentHelp(
            "A vendor's feature declaration (YAML, docs/policies.md \"Vendor declaration\"), held against the features the capture shows claimed and used. Repeatable.",
            valueName: "FILE"
        )
    )
    var declarations: [String] = []

    @Option(
        help: "Exit with status 1 when the report has findings of this severity or worse (error also: a failed test area): error, warning, or never; or regression: a charger model's later firmware does worse than the earlier against the same backend (repeatable)."
    )
    var failOn: [FailOn] = []

    enum FailOn: String, ExpressibleByArgument, CaseIterable {
        case error, warning, regression, never
    }

    func validate() throws {
        guard !self.captures.isEmpty else { throw ValidationError("give at least one capture file or folder") }
        _ = try BoundedDuration.option("--response-timeout", seconds: self.responseTimeout)
        _ = try BoundedDuration.option("--clock-tolerance", seconds: self.clockTolerance, allowsZero: true)
        if let stateRetention { _ = try BoundedDuration.option("--state-retention", seconds: stateRetention, allowsZero: true) }
        _ = try BoundedDuration.option("--command-window", seconds: self.commandWindow)
        if let intervalTolerance, Self.fraction(intervalTolerance) == nil {
            throw ValidationError("--interval-tolerance must be a fraction from 0 to 1 (0.1) or a percentage (10%); got '\(intervalTolerance)'")
        }
        if let scope, WitnessScope.named(scope) == nil {
            throw ValidationError("unknown --scope '\(scope)'; expected one of: \(WitnessScope.all.map(\.name).joined(separator: ", "))")
        }
    }

    /// The checks and site declarations of the policies given, or of those the captures' headers name.
    func loadPolicies() throws -> (checks: [WitnessCheck], site: SiteDeclaration) {
        try WitnessChecks.loadPolicies(policies: self.policies, captures: self.captures)
    }

    /// `0.1` or `10%`, from 0 to 1.
    static func fraction(_ text: String) -> Double? {
        let value = text.hasSuffix("%") ? Double(text.dropLast()).map { $0 / 100 } : Double(text)
        guard let value, value.isFinite, value >= 0, value <= 1 else { return nil }
        return value
    }

    func run() async throws {
        let registry = try SchemaRegistry.load(forCommand: self.schemas)
        let reader: CaptureReader
        do {
            reader = try CaptureReader(paths: self.captures)
        } catch {
            throw ValidationError("cannot read captures: \(error)")
        }
        var configuration = AnalyzerConfiguration(
            profile: self.profile, responseTimeoutSeconds: self.responseTimeout, clockToleranceSeconds: self.clockTolerance
        )
        (configuration.checks, configuration.site) = try self.loadPolicies()
        configuration.meterKeys = try self.meterKeys.load()
        for path in self.declarations {
            do {
                configuration.declarations += try DeclarationLoader.load(path: path)
            } catch let error as PolicyErrors {
                throw ValidationError("declaration \(path) cannot be used:\n\(error)")
            }
        }
        configuration.intervalTolerance = self.intervalTolerance.flatMap(Self.fraction)
        configuration.commandWindowSeconds = self.commandWindow
        configuration.scope = self.scope.flatMap(WitnessScope.named)
        configuration.stateRetentionSeconds = self.stateRetention
        let analyzer = Analyzer(schemas: registry, configuration: configuration)
        for record in reader { analyzer.consume(record) }
        let report = analyzer.finish(readIssues: reader.issues)
        let text = report.render(self.format)
        if let output {
            do {
                try text.write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write \(output): \(error)")
            }
            FileHandle.standardError.write(
                Data("\(output): \(report.count(.error)) errors, \(report.count(.warning)) warnings across \(report.pairs.count) pair(s)\n".utf8)
            )
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        for issue in reader.issues {
            FileHandle.standardError.write(Data("warning: \(issue)\n".utf8))
        }
        for failOn in self.failOn {
            switch failOn {
            case .error where report.count(.error) > 0 || report.pairs.contains(where: { $0.verdict == "fail" }): throw ExitCode.failure
            case .warning where report.count(.error) + report.count(.warning) > 0 || report.pairs.contains(where: { $0.verdict != "pass" }): throw ExitCode.failure
            case .regression where !report.regressions.isEmpty:
                for comparison in report.regressions {
                    // Names come from the chargers' BootNotifications: no control characters reach a CI log.
                    let line = "regression: \(comparison.vendor) \(comparison.model) × \(comparison.backend), \(comparison.before) → \(comparison.after): \(comparison.regressions.map(\.detail).joined(separator: "; "))"
                    let printable = String(String.UnicodeScalarView(line.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
                    FileHandle.standardError.write(Data((printable + "\n").utf8))
                }
                throw ExitCode.failure
            default: break
            }
        }
    }
}

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "List the deviation rules: stable id, severity and meaning (Markdown, as in docs/rules.md)."
    )

    func run() throws {
        print(RuleCatalog.markdown, terminator: "")
    }
}

/// The witness checks a report or a view judges: those of `--policy` files, or else those of the policies the
/// captures' headers name.
enum WitnessChecks {
    static func load(policies: [String], captures: [String]) throws -> [WitnessCheck] {
        try self.loadPolicies(policies: policies, captures: captures).checks
    }

    /// The checks and the site declarations (merged: a setting declared two ways is an error) of the policies.
    static func loadPolicies(policies: [String], captures: [String]) throws -> (checks: [WitnessCheck], site: SiteDeclaration) {
        var paths = policies
        if paths.isEmpty {
            for file in (try? captures.flatMap(CaptureReader.captureFiles(at:))) ?? [] {
                guard let reader = try? CaptureReader(paths: [file]), let header = reader.next(), header.recordKind == .header,
                    let policy = header.fields["policy"]?.stringValue, !paths.contains(policy)
                else { continue }
                guard FileManager.default.isReadableFile(atPath: policy) else {
                    FileHandle.standardError.write(Data("warning: \(file) was recorded with policy \(policy), which cannot be read here; its checks are not judged (give --policy)\n".utf8))
                    continue
                }
                paths.append(policy)
            }
        }
        var checks: [WitnessCheck] = []
        var sites: [SiteDeclaration] = []
        for path in paths {
            do {
                let policy = try PolicyLoader.load(path: path)
                for check in policy.checks where checks.contains(where: { $0.name == check.name }) {
                    throw ValidationError("check '\(check.name)' of \(path) has the name of a check of another policy; check names must be unique across the policies of one report")
                }
                checks += policy.checks
                sites.append(policy.site)
            } catch let error as PolicyErrors {
                throw ValidationError("policy \(path) cannot be used:\n\(error)")
            }
        }
        do {
            return (checks, try SiteDeclaration.merged(sites))
        } catch let error as PolicyErrors {
            throw ValidationError("the policies' site declarations disagree:\n\(error)")
        }
    }
}
