import Foundation
import Testing
import WitnessTestSupport

@Suite("Docs derived from the code")
struct DocsTests {
    @Test("the module graph in docs/architecture.md is the one Package.swift declares")
    func moduleGraphMatchesPackage() async throws {
        // A scratch path of its own: the build folder is locked by the test run.
        let scratch = temporaryPath("dump-package")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let manifest = try await Program.run(
            "/usr/bin/env", ["swift", "package", "--scratch-path", scratch, "dump-package"], directory: WitnessBinary.root
        )
        try #require(manifest.status == 0, "\(manifest.errors)")
        let check = try await Program.run(
            "/usr/bin/env", ["python3", "scripts/module-graph.py", "--check", "docs/architecture.md"],
            directory: WitnessBinary.root, input: Data(manifest.output.utf8)
        )
        #expect(check.status == 0, "\(check.errors)")
        // The check can fail: a graph that leaves out a module is caught.
        let trimmed = manifest.output.replacingOccurrences(of: #""name" : "WitnessBenchmarks""#, with: #""name" : "WitnessBench""#)
        let drifted = try await Program.run(
            "/usr/bin/env", ["python3", "scripts/module-graph.py", "--check", "docs/architecture.md"],
            directory: WitnessBinary.root, input: Data(trimmed.utf8)
        )
        #expect(drifted.status == 1)
        #expect(drifted.errors.contains("run `make docs`"), "\(drifted.errors)")
    }

    /// Package.swift declares macOS as well as Linux, and no macOS machine builds this project's CI: a call
    /// qualified with one platform's C module has to sit in that platform's `#if canImport(...)` branch.
    @Test("every call qualified with Glibc or Darwin is inside that module's #if canImport branch")
    func platformCallsAreConditional() throws {
        let sources = WitnessBinary.root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(atPath: sources.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        #expect(files.count > 50)
        var unguarded: [String] = []
        for file in files {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            // The module each open #if branch is about, innermost last (nil: some other condition).
            var branches: [String?] = []
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                func module(_ directive: String) -> String? {
                    guard let open = code.range(of: "canImport("), let close = code[open.upperBound...].firstIndex(of: ")") else { return nil }
                    return String(code[open.upperBound..<close])
                }
                if code.hasPrefix("#if ") {
                    branches.append(module(code))
                } else if code.hasPrefix("#elseif ") {
                    branches[branches.count - 1] = module(code)
                } else if code.hasPrefix("#else") {
                    branches[branches.count - 1] = nil
                } else if code.hasPrefix("#endif") {
                    branches.removeLast()
                } else if !code.hasPrefix("//") {
                    for platform in ["Glibc", "Darwin"] where code.contains(platform + ".") && !branches.contains(platform) {
                        unguarded.append("\(file):\(number + 1): \(code)")
                    }
                }
            }
        }
        #expect(unguarded.isEmpty, "platform calls outside their #if canImport branch:\n\(unguarded.joined(separator: "\n"))")
    }
}

