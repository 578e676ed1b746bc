import ArgumentParser
import Foundation
import WitnessCapture

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that capture files are complete and unaltered: their hash chains, seals and signatures.",
        discussion: """
            Every line of a capture is chained to the one before it and each file the proxy closed ends with a seal
            that the next file's header names (docs/capture-format.md, "Hash chain and seal"). verify says for each
            file whether it is intact, and if not, the first line that changed, was removed or was added; which
            part of a run is missing; and, with --key, whether each seal was signed with the proxy's --seal-key.
            A file without a seal (a crash, or still being written) and a gap a full disk left are reported as
            such, not as tampering. Exit status: 0 all intact, 1 something altered or missing, 3 nothing altered
            but not everything sealed or chained.
            """
    )

    @Argument(help: ArgumentHelp("Capture files or folders.", valueName: "CAPTURE"))
    var captures: [String]

    @Option(help: ArgumentHelp("The seal key's public half (PEM, as `openssl pkey -pubout` writes it); every seal must be signed with it.", valueName: "FILE"))
    var key: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        var files: [String] = []
        for path in self.captures {
            do {
                files += try CaptureReader.captureFiles(at: path)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        guard !files.isEmpty else { throw ValidationError("no capture files (*.jsonl) in \(self.captures.joined(separator: ", "))") }
        var key: SealKey?
        if let path = self.key {
            do {
                key = try SealKey(pemFile: path)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        let result = CaptureVerifier(key: key).verify(files)
        if self.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(Self.text(result), terminator: "")
        }
        if result.tampered { throw ExitCode(1) }
        if !result.intact { throw ExitCode(3) }
    }

    static func text(_ result: CaptureVerifier.Result) -> String {
        var out = ""
        for file in result.files {
            out += "\(file.file): \(Self.sentence(file))\n"
            for gap in file.gaps {
                out += "  gap at line \(gap.line): \(gap.recordsLost) records the disk could not take, \(gap.from) to \(gap.to)\n"
            }
            if file.problems > 1 { out += "  \(file.problems - 1) more problems after the first\n" }
        }
        for problem in result.sequences {
            out += "missing: \(problem.detail)\(problem.instance.map { " (instance \($0))" } ?? "")\n"
        }
        let altered = result.files.filter { $0.verdict == .altered }.count
        let open = result.files.filter { $0.verdict == .unsealed || $0.verdict == .unchained || $0.verdict == .unreadable }.count
        if result.intact {
            out += "verdict: intact (\(result.files.count) files)\n"
        } else if result.tampered {
            var parts: [String] = []
            if altered > 0 { parts.append("\(altered) of \(result.files.count) files altered") }
            if !result.sequences.isEmpty { parts.append("\(result.sequences.count) parts missing or replaced") }
            out += "verdict: NOT intact: \(parts.joined(separator: ", "))\n"
        } else {
            out += "verdict: nothing altered, but \(open) of \(result.files.count) files cannot vouch for their end (unsealed, unchained or unreadable)\n"
        }
        return out
    }

    static func sentence(_ file: CaptureVerifier.FileResult) -> String {
        let signature: String
        switch file.signature {
        case .valid: signature = ", signature valid (key \(file.key ?? ""))"
        case .notChecked: signature = ", signed by key \(file.key ?? "") (give --key to check)"
        case .unsigned: signature = ", not signed"
        case .invalid, nil: signature = ""
        }
        switch file.verdict {
        case .intact:
            return "intact: \(file.lines) lines, sealed\(signature)"
        case .altered:
            let first = file.firstProblem.map { "line \($0.line) \($0.kind.rawValue): \($0.detail)" } ?? ""
            return "ALTERED: \(first)"
        case .unsealed:
            let torn = file.tornLastLine.map { "; its last line (\($0)) is cut short" } ?? ""
            return "unsealed: \(file.lines) lines chained and unaltered, but no seal (so no signature covers it): the proxy did not close it (a crash, or it is still being written)\(torn); lines removed from its end would look the same"
        case .unchained:
            return "unchained: \(file.detail ?? "no hash chain")"
        case .unreadable:
            return "unreadable: \(file.detail ?? "")"
        }
    }
}
