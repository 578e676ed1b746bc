import Foundation
import NIOCore
import OCPPWire

/// What the forwarding benchmark prints: the throughput table, the CPU budget, the paced latencies.
extension ForwardingBenchmark {
    /// Chargers that could not connect or boot, and what the set-up's own log said last.
    static func printConnectFailures(_ run: RunResult) {
        print("  \(run.setup): \(run.load.connectFailures.count) chargers could not connect or boot; first: \(run.load.connectFailures[0])")
        for line in run.logTail ?? [] { print("    log: \(line)") }
    }

    /// Each set-up's median round by throughput (its own latencies, CPU and memory, and recorder line).
    static func medianRounds(_ rounds: [[RunResult]]) -> [RunResult] {
        guard let first = rounds.first else { return [] }
        return first.map { run in
            let all = rounds.compactMap { $0.first { $0.setup == run.setup } }.sorted { $0.load.messagesPerSecond < $1.load.messagesPerSecond }
            return all[all.count / 2]
        }
    }

    /// The median, lowest and highest of a set-up's throughput ratio to `peer`, each ratio taken within one round.
    static func ratio(_ setup: String, to peer: String, in rounds: [[RunResult]]) -> (median: Double, low: Double, high: Double)? {
        let ratios = rounds.compactMap { round -> Double? in
            guard let run = round.first(where: { $0.setup == setup }), let other = round.first(where: { $0.setup == peer }),
                other.load.messagesPerSecond > 0
            else { return nil }
            return run.load.messagesPerSecond / other.load.messagesPerSecond
        }.sorted()
        guard let low = ratios.first, let high = ratios.last else { return nil }
        return (ratios[ratios.count / 2], low, high)
    }

    func printTable(_ results: [RunResult], rounds: [[RunResult]]) {
        print("| set-up | messages/s | p50 | p99 | p999 | proxy CPU s / 1M msgs (user + kernel) | proxy RSS | vs nginx | vs direct |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        func versus(_ setup: String, _ peer: String) -> String {
            guard let ratio = Self.ratio(setup, to: peer, in: rounds) else { return "–" }
            let spread = rounds.count > 1 && setup != peer ? String(format: " (%.2f–%.2f)", ratio.low, ratio.high) : ""
            return String(format: "%.2f×", ratio.median) + spread
        }
        for run in results {
            let cpu = run.proxyCPU.map { $0.perMillion(run.load.messages) } ?? "–"
            let rss = run.proxyRSS.map(fmtMiB) ?? "–"
            print(
                "| \(run.setup) | \(Int(run.load.messagesPerSecond)) | \(fmtMs(run.load.p50)) | \(fmtMs(run.load.p99)) | \(fmtMs(run.load.p999)) | \(cpu) | \(rss) | \(versus(run.setup, "nginx")) | \(versus(run.setup, "direct")) |"
            )
        }
        if rounds.count > 1 {
            print("  (median round of \(rounds.count) per set-up; ratios are the median of the per-round ratios, lowest–highest in brackets)")
        }
        if let json {
            let rows: [JSONValue] = results.map { run in
                .object(JSONObject([
                    "setup": .string(run.setup), "messagesPerSecond": .double(run.load.messagesPerSecond),
                    "p50Ms": .double(run.load.p50 * 1000), "p99Ms": .double(run.load.p99 * 1000), "p999Ms": .double(run.load.p999 * 1000),
                    "proxyCPUSeconds": run.proxyCPU.map { .double($0.total) } ?? .null,
                    "proxyUserCPUSeconds": run.proxyCPU.map { .double($0.user) } ?? .null,
                    "proxyKernelCPUSeconds": run.proxyCPU.map { .double($0.kernel) } ?? .null,
                    "proxyRSSBytes": run.proxyRSS.map { .int($0) } ?? .null,
                    "messages": .int(run.load.messages), "errors": .int(run.load.errors),
                ]))
            }
            try? JSONWriter.string(.array(rows)).write(toFile: json, atomically: true, encoding: .utf8)
        }
        for round in rounds {
            for run in round where run.load.errors > 0 { print("  \(run.setup): \(run.load.errors) CALLs failed") }
            for run in round where !run.load.connectFailures.isEmpty { Self.printConnectFailures(run) }
        }
    }

    /// Latency at a fixed rate: each set-up's median round by added p99 against direct in the same round.
    static func printPaced(_ rounds: [[RunResult]]) {
        for round in rounds {
            for run in round where !run.load.connectFailures.isEmpty { Self.printConnectFailures(run) }
        }
        for setup in rounds.first?.map(\.setup) ?? [] {
            let runs = rounds.compactMap { round -> (run: RunResult, added: Double?)? in
                guard let run = round.first(where: { $0.setup == setup }) else { return nil }
                let direct = setup == "direct" ? nil : round.first { $0.setup == "direct" }
                return (run, direct.map { run.load.p99 - $0.load.p99 })
            }.sorted { ($0.added ?? $0.run.load.p99) < ($1.added ?? $1.run.load.p99) }
            guard !runs.isEmpty else { continue }
            let median = runs[runs.count / 2]
            let run = median.run
            var added = median.added.map { " (added p99 \(fmtMs($0))" } ?? ""
            if !added.isEmpty {
                let lowest = runs.first?.added ?? 0
                let highest = runs.last?.added ?? 0
                added += runs.count > 1 ? ", rounds \(fmtMs(lowest))–\(fmtMs(highest)))" : ")"
            }
            // At a fixed rate the machine has room to spare, so CPU per message is steadier than at saturation.
            let cpu = run.proxyCPU.map { "; proxy CPU " + $0.perMillion(run.load.messages) + " s / 1M msgs (user + kernel)" } ?? ""
            print("  \(setup.padding(toLength: 16, withPad: " ", startingAt: 0)) p50 \(fmtMs(run.load.p50))  p99 \(fmtMs(run.load.p99))  p999 \(fmtMs(run.load.p999))\(added)\(cpu)")
        }
        if rounds.count > 1 {
            print("  (each set-up's median round by added p99, of \(rounds.count); the range over the rounds in brackets)")
        }
    }

    /// Where the CPU goes at saturation, machine-wide. When the load generator, the CSMS and the proxy share
    /// the cores and keep them busy, a set-up's messages per second are the cores' seconds divided by the CPU
    /// time all of them spend per message: a proxy then carries nginx's rate only by spending no more CPU
    /// per message than nginx does, whatever else it does with the messages.
    static func printCPUBudget(_ results: [RunResult], rounds: [[RunResult]]) {
        guard !results.isEmpty else { return }
        func perMillion(_ seconds: Double, _ run: RunResult) -> Double { seconds / max(1, Double(run.load.messages)) * 1e6 }
        print("\nCPU per message on the whole machine at saturation, s / 1M msgs (load generator and CSMS + proxy = all; busy share of \(System.coreCount) cores):")
        var idle = false
        for run in results {
            let load = perMillion(run.loadCPU.total, run)
            let proxy = run.proxyCPU.map { perMillion($0.total, run) }
            let busy = (run.loadCPU.total + (run.proxyCPU?.total ?? 0)) / max(0.001, run.wallSeconds * Double(System.coreCount))
            idle = idle || busy < 0.9
            let proxyText = proxy.map { String(format: "%5.1f", $0) } ?? "    –"
            print(
                "  \(run.setup.padding(toLength: 16, withPad: " ", startingAt: 0)) "
                    + String(format: "%5.1f + %@ = %5.1f; busy %3.0f%%", load, proxyText, load + (proxy ?? 0), busy * 100)
            )
        }
        if let nginx = results.first(where: { $0.setup == "nginx" }), let nginxCPU = nginx.proxyCPU {
            let forwarding = results.first { $0.setup == "witness-forward" }
            let forward = forwarding.flatMap { run in run.proxyCPU.map { perMillion($0.total, run) } }
            print(
                String(format: "  Carrying nginx's rate on these cores takes at most %.1f s / 1M msgs of proxy CPU, nginx's own", perMillion(nginxCPU.total, nginx))
                    + (forward.map { String(format: "; OCPP Witness forwarding alone spends %.1f", $0) } ?? "") + "."
            )
        }
        if idle {
            print("  Some runs left the cores idle (busy under 90%): their throughput is bounded by latency, not by CPU alone.")
        }
    }
}
