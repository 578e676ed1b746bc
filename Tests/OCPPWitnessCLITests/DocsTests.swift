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
}
