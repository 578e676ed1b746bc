import ArgumentParser
import Foundation
import OCPPWire
import WitnessPolicy
import WitnessCLISupport

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with fault policy files.",
        subcommands: [PolicyCheckCommand.self]
    )
}

struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a fault policy file and explain every error with its line.",
        discussion: "Exits 0 and summarises the rules when the policy is valid; otherwise prints FILE:LINE:COLUMN: problem for each one and exits 1."
    )

    @Argument(help: ArgumentHelp("Policy file (YAML).", valueName: "FILE"))
    var file: String

    static func seconds(_ value: Double) -> String { value.plainText }

    func run() throws {
        do {
            let policy = try PolicyLoader.load(path: self.file)
            print("\(self.file): valid; seed \(policy.seed), \(policy.rules.count) rule(s), \(policy.checks.count) check(s)")
            for rule in policy.rules {
                print("  \(rule.name): \(rule.fault.kind)")
            }
            for check in policy.checks {
                let versions = check.versions.map { " (OCPP " + $0.map(\.rawValue).sorted().joined(separator: ", ") + ")" } ?? ""
                print("  check \(check.name) [\(check.area.rawValue)]\(versions): when \(check.when.description), \(check.outcome.rawValue) \(check.then.description) within \(Self.seconds(check.within)) s")
            }
        } catch let errors as PolicyErrors {
            FileHandle.standardError.write(Data((errors.description + "\n").utf8))
            throw ExitCode.failure
        }
    }
}

extension PolicyLoader {
    /// Loads a policy for a command; all problems become one error message with their lines.
    static func load(forCommand path: String) throws -> FaultPolicy {
        do {
            return try self.load(path: path)
        } catch let errors as PolicyErrors {
            throw ValidationError("invalid policy:\n\(errors.description)")
        }
    }
}
