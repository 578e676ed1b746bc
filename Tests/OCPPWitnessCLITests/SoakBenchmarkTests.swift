import Foundation
import Testing
import WitnessTestSupport

/// The soak benchmark in miniature, so it keeps working: its tables and goal lines print with figures in them.
/// Memory, descriptors and timings are printed, never asserted.
@Suite("Soak benchmark (reduced)")
struct SoakBenchmarkSmokeTests {
    @Test("a short soak with one hostile peer of each kind prints the samples, the hostile kinds and every goal with its figure")
    func reducedSoak() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "soak", "--clean-seconds", "3", "--seconds", "8", "--good", "4", "--hostile", "1", "--sample-seconds", "2",
            "--hold-seconds", "2", "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        let lines = result.output.split(separator: "\n").map(String.init)

        #expect(lines.contains("| time | phase | proxy RSS | proxy fds | hostile cycles | backend RSS |"), "\(result.output)")
        let sampleRow = #"^\| \d+ s \| (clean|hostile) \| [\d.]+ MiB \| \d+ \| \d+ \| [\d.]+ MiB \|$"#
        let samples = lines.filter { $0.range(of: sampleRow, options: .regularExpression) != nil }
        #expect(samples.contains { $0.contains("| clean |") } && samples.contains { $0.contains("| hostile |") }, "\(result.output)")

        for kind in ["continuation streamer", "close staller", "delay-fault sender", "half-finished upgrade"] {
            #expect(lines.contains { $0.hasPrefix("| \(kind) | 1 | ") }, "no row for \(kind): \(result.output)")
        }

        let number = #"-?[\d.]+"#
        let goals = [
            "memory: .* \(number) KiB per cycle.*goal: <= 1 KiB per cycle +(met|NOT MET)",
            "descriptors: \\d+ → \\d+ .*goal: <= \\+\\d+ \\(2 per hostile peer\\) +(met|NOT MET)",
            "latency: +p99 hostile / clean \(number)x +goal: <= 2.0x +(met|NOT MET)",
            "good chargers, clean: +p50 \(number) ms, p99 \(number) ms",
            "good chargers, hostile: p50 \(number) ms, p99 \(number) ms",
        ]
        for goal in goals {
            #expect(lines.contains { $0.range(of: goal, options: .regularExpression) != nil }, "no line matches \(goal): \(result.output)")
        }
    }

    @Test("an unknown hostile kind is refused")
    func unknownKind() async throws {
        let result = try await WitnessBinary.run(["benchmark", "soak", "--kinds", "delay,slowloris"])
        #expect(result.status != 0)
        #expect(result.errors.contains("unknown kind 'slowloris'"), "\(result.errors)")
    }
}
