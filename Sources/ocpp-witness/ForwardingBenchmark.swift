import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessSim

#if canImport(Glibc)
import Glibc
#endif

/// Closed-loop OCPP load through direct, nginx and OCPP Witness set-ups, measured in one run.
struct ForwardingBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forwarding",
        abstract: "Throughput, latency, CPU and memory of forwarding: direct, nginx and OCPP Witness in one run.",
        discussion: """
            N simulated 1.6 chargers boot, then each sends MeterValues and Heartbeat CALLs and waits for every CALLRESULT
            from a CSMS simulator (its own process), for --seconds per set-up and round (--rounds interleaves the set-ups so a
            slow phase of a shared machine hits them alike): direct to the CSMS; through nginx configured as a
            plain WebSocket reverse proxy (when nginx is installed: `make bench` installs it); through OCPP Witness with
            recording and live validation, with recording only, and forwarding only. Prints messages per second (CALLs and
            CALLRESULTs), latency percentiles, the proxy's CPU seconds per million messages and resident memory, and the ratios.
            Then a run at half of OCPP Witness's saturating rate for the added latency, the capture check (recorded = counted,
            zero deviations), and the scale runs (--scale-connections held open with heartbeats; connection ramp).
            Run it on a quiet machine from a release build (`make bench`).
            """
    )

    @Option(help: "Concurrent chargers in the throughput runs.")
    var chargers: Int = 64

    @Option(help: "Seconds of measured load per set-up and round (after a short warm-up).")
    var seconds: Double = 6

    @Option(help: ArgumentHelp("Set-ups to run, comma-separated: direct, nginx, witness, witness-record, witness-forward.", valueName: "LIST"))
    var setups: String = "direct,nginx,witness,witness-record,witness-forward"

    @Option(
        help: """
            Rounds of the throughput runs. Each round runs every set-up once, in turn, so a slow phase of a shared \
            machine hits all set-ups alike; the table shows each set-up's median round and the median of the per-round ratios.
            """
    )
    var rounds: Int = 3

    @Option(help: "Chargers held open in the scale run (0 skips it).")
    var scaleConnections: Int = 10_000

    @Option(help: "Seconds the scale run holds the connections, heartbeating.")
    var scaleSeconds: Double = 10

    @Option(help: ArgumentHelp("Folder with the OCA schemas, for live validation and the capture check.", valueName: "DIR"))
    var schemas: String = "schemas"

    @Option(help: ArgumentHelp("nginx binary.", valueName: "PATH"))
    var nginx: String = "/usr/sbin/nginx"

    @Option(help: ArgumentHelp("Write the results as JSON here too.", valueName: "FILE"))
    var json: String?

    func run() async throws {
        let openFiles = OpenFileLimit.raise(wanted: 200_000)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("witness-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let selected = Set(self.setups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let machine = machineDescription()
        print("OCPP Witness forwarding benchmark — \(machine)")
        print("\(self.chargers) chargers, closed loop, \(self.seconds) s per set-up and round, \(self.rounds) round(s); messages = CALLs + CALLRESULTs\n")

        let csmsPort = try freePort()
        let csms = try Child.start(selfPath(), ["simulate", "csms", "--listen", "127.0.0.1:\(csmsPort)", "--ocpp-version", "1.6", "--log-level", "error"], log: work + "/csms.log")
        defer { csms.stop() }
        try await waitForPort(csmsPort)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)

        let rounds = try await self.runRounds(
            selected, ratePerCharger: nil, prefix: "BENCH", csmsPort: csmsPort, work: work, group: group
        )
        // The first round's capture is the one checked.
        let checked = rounds.lazy.compactMap { $0.first { $0.setup == "witness" } }.first
        let witnessCapture = checked?.capture
        let witnessCounted = checked?.load.messagesIncludingBoot ?? 0
        let results = Self.medianRounds(rounds)
        printTable(results, rounds: rounds)
        for run in results {
            if let recorder = run.recorder { print("  \(run.setup): \(recorder)") }
        }

        // Added latency at half of the saturating load: paced chargers, direct and through the proxies.
        if let saturated = results.first(where: { $0.setup == "witness" }) ?? results.first {
            let rate = saturated.load.messagesPerSecond / 2 / 2 / Double(self.chargers)  // round trips per charger per second
            print("\nAt half load (\(Int(saturated.load.messagesPerSecond / 2)) messages/s, paced):")
            let halfRounds = try await self.runRounds(
                selected, ratePerCharger: rate, prefix: "HALF", csmsPort: csmsPort, work: work, group: group
            )
            for round in halfRounds {
                for run in round where !run.load.connectFailures.isEmpty { Self.printConnectFailures(run) }
            }
            // Added p99 is taken against direct within each round, then the median over the rounds.
            for setup in halfRounds.first?.map(\.setup) ?? [] {
                let runs = halfRounds.compactMap { round -> (run: RunResult, added: Double?)? in
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
            if halfRounds.count > 1 {
                print("  (each set-up's median round by added p99, of \(halfRounds.count); the range over the rounds in brackets)")
            }
        }

        // Correctness under load: what the recorder wrote equals what the generator counted, with no deviations.
        if let witnessCapture {
            let check = try self.checkCapture(witnessCapture, expected: witnessCounted)
            print("\nCapture check (witness run): \(check)")
        }

        if self.scaleConnections > 0 {
            print("\nScale: \(self.scaleConnections) chargers held open, heartbeat every 5 s, \(self.scaleSeconds) s")
            // The proxies inherit this limit; OCPP Witness, one process, needs two descriptors per charger.
            if OpenFileLimit.chargers(within: openFiles) < self.scaleConnections {
                print(
                    "  note: the open-file limit here is \(openFiles) per process (the hard limit could not be raised), "
                        + "room for about \(OpenFileLimit.chargers(within: openFiles)) chargers in one OCPP Witness process"
                )
            }
            for setup in ["nginx", "witness"] where selected.contains(setup) {
                guard let target = try await self.startTarget(setup, csmsPort: csmsPort, work: work) else { continue }
                let before = target.probe?.residentBytes ?? 0
                let scale = try await ScaleRun.run(url: target.url, chargers: self.scaleConnections, seconds: self.scaleSeconds, prefix: "SCALE-\(setup)", group: group)
                let after = target.probe?.residentBytes ?? 0
                let perConnection = self.scaleConnections > 0 ? Double(after - before) / Double(scale.connected) : 0
                print(
                    "  \(setup.padding(toLength: 16, withPad: " ", startingAt: 0)) connected \(scale.connected)/\(self.scaleConnections) "
                        + "at \(Int(scale.upgradesPerSecond)) upgrades/s; RSS \(fmtMiB(before)) → \(fmtMiB(after)), "
                        + "\(String(format: "%.1f", perConnection / 1024)) KiB per charger; \(scale.heartbeats) heartbeats, \(scale.failures) failures"
                )
                for (reason, count) in scale.failureReasons.sorted(by: { $0.value > $1.value }).prefix(3) {
                    print("    \(count) × \(reason)")
                }
                target.stop()
            }
        }
        try? await group.shutdownGracefully()
    }

    // MARK: Set-ups

    static let setupOrder = ["direct", "nginx", "witness", "witness-record", "witness-forward"]

    /// One set-up under one load: starts it, runs the chargers (closed loop, or paced at `ratePerCharger`
    /// round trips per second), reads the proxy's CPU and memory, and stops it.
    private func measure(
        _ setup: String, ratePerCharger: Double?, prefix: String, csmsPort: Int, work: String, group: any EventLoopGroup
    ) async throws -> RunResult? {
        guard let target = try await self.startTarget(setup, csmsPort: csmsPort, work: work) else { return nil }
        let load = try await LoadRun.run(
            url: target.url, chargers: self.chargers, seconds: self.seconds, ratePerCharger: ratePerCharger, prefix: prefix, group: group
        )
        let usage = target.probe.map { ($0.cpuTime - target.cpuAtStart, $0.residentBytes) }
        let recorder = target.stop()
        return RunResult(
            setup: setup, load: load, proxyCPU: usage?.0, proxyRSS: usage?.1, recorder: recorder,
            logTail: load.connectFailures.isEmpty ? nil : target.logTail(), capture: target.capture
        )
    }

    struct Target {
        var url: String
        var probe: ProcessProbe?
        var cpuAtStart: CPUTime
        var capture: String?
        /// The set-up's log (the proxy's, nginx's error log, or the CSMS's for direct).
        var log: String? = nil
        /// Stops the set-up; for recording proxies, returns what the proxy said of its recorder.
        var stopAction: () -> String?
        @discardableResult
        func stop() -> String? { self.stopAction() }

        /// The last lines of the set-up's log.
        func logTail(_ count: Int = 8) -> [String] {
            guard let log, let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").suffix(count).map(String.init)
        }
    }

    private func startTarget(_ setup: String, csmsPort: Int, work: String) async throws -> Target? {
        switch setup {
        case "direct":
            return Target(url: "ws://127.0.0.1:\(csmsPort)", probe: nil, cpuAtStart: CPUTime(), capture: nil, log: work + "/csms.log", stopAction: { nil })
        case "nginx":
            guard FileManager.default.isExecutableFile(atPath: self.nginx) else {
                print("nginx: skipped, \(self.nginx) not installed (`make bench` installs it)")
                return nil
            }
            let port = try freePort()
            let directory = work + "/nginx-\(port)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let config = """
                daemon off;
                worker_processes auto;
                worker_rlimit_nofile 65536;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log warn;
                events { worker_connections 32768; }
                http {
                    access_log off;
                    client_body_temp_path \(directory); proxy_temp_path \(directory); fastcgi_temp_path \(directory);
                    uwsgi_temp_path \(directory); scgi_temp_path \(directory);
                    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
                    server {
                        listen 127.0.0.1:\(port) backlog=4096;
                        location / {
                            proxy_pass http://127.0.0.1:\(csmsPort);
                            proxy_http_version 1.1;
                            proxy_set_header Upgrade $http_upgrade;
                            proxy_set_header Connection $connection_upgrade;
                            proxy_set_header Host $host;
                            proxy_read_timeout 3600s;
                            proxy_buffering off;
                        }
                    }
                }
                """
            try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            let child = try Child.start(self.nginx, ["-c", directory + "/nginx.conf", "-p", directory], log: directory + "/stderr.log")
            try await waitForPort(port)
            let probe = ProcessProbe(pid: child.pid, includeChildren: true)
            return Target(
                url: "ws://127.0.0.1:\(port)", probe: probe, cpuAtStart: probe.cpuTime, capture: nil, log: directory + "/error.log",
                stopAction: {
                    child.stop()
                    return nil
                }
            )
        default:
            let port = try freePort()
            let capture = work + "/capture-\(setup)-\(port)"
            // Notice level: the shutdown line reports the recorder's queue peak; nothing is logged per message.
            var arguments = ["proxy", "--listen", "127.0.0.1:\(port)", "--upstream", "ws://127.0.0.1:\(csmsPort)", "--capture", capture, "--log-level", "notice", "--schemas", self.schemas]
            if setup == "witness-record" { arguments.append("--no-validate") }
            if setup == "witness-forward" { arguments.append("--no-capture") }
            let log = work + "/\(setup)-\(port).log"
            let child = try Child.start(selfPath(), arguments, log: log)
            try await waitForPort(port)
            let probe = ProcessProbe(pid: child.pid, includeChildren: false)
            return Target(
                url: "ws://127.0.0.1:\(port)", probe: probe, cpuAtStart: probe.cpuTime,
                capture: setup == "witness-forward" ? nil : capture, log: log,
                stopAction: {
                    child.stop()
                    return setup == "witness-forward" ? nil : Self.recorderReport(log: log)
                }
            )
        }
    }

    /// The recorder's queue peak and losses, from the proxy's shutdown line: the recorder keeps up when
    /// its queue stays far below the high watermark (65,536 records), above which chargers are paused.
    private static func recorderReport(log: String) -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").last(where: { $0.contains("recorder queue peaked at") }) else {
            return "the proxy did not report its recorder (see \(log))"
        }
        func number(before marker: String) -> Substring {
            guard let range = line.range(of: marker) else { return "?" }
            return line[..<range.lowerBound].split(separator: " ").last ?? "?"
        }
        let peak = line.range(of: "peaked at ").flatMap { line[$0.upperBound...].split(separator: " ").first } ?? "?"
        return "recorder queue peaked at \(peak) records (chargers are paused above 65536), "
            + "\(number(before: " lost;")) records lost"
    }

    private func checkCapture(_ directory: String, expected: Int) throws -> String {
        let reader = try CaptureReader(paths: [directory])
        let registry = try SchemaRegistry.load(forCommand: self.schemas)
        let analyzer = Analyzer(schemas: registry, configuration: AnalyzerConfiguration(profile: .strict, responseTimeoutSeconds: 30))
        var messages = 0
        for record in reader {
            if record.kind == "frame", record.opcode == .text { messages += 1 }
            analyzer.consume(record)
        }
        let report = analyzer.finish(readIssues: reader.issues)
        let verdict = messages == expected && report.totalDeviations == 0 && reader.issues.isEmpty ? "ok" : "MISMATCH"
        let rules = report.countsByRule.sorted { $0.value > $1.value }.prefix(5).map { "\($0.key) \($0.value)" }
        return "\(verdict): \(messages) messages recorded, \(expected) counted by the load generator; "
            + "report: \(report.totalDeviations) deviations\(rules.isEmpty ? "" : " (" + rules.joined(separator: ", ") + ")"), "
            + "\(reader.issues.count) unreadable lines"
    }

    // MARK: Output

    struct RunResult {
        var setup: String
        var load: LoadRun.Result
        var proxyCPU: CPUTime?
        var proxyRSS: Int?
        var recorder: String? = nil
        /// The last lines of the set-up's log, kept when chargers could not connect.
        var logTail: [String]? = nil
        /// The recording proxy's capture folder.
        var capture: String? = nil
    }

    /// Chargers that could not connect or boot, and what the set-up's own log said last.
    /// Runs every selected set-up once per round, in `setupOrder`, so a slow phase of a shared machine
    /// hits all set-ups alike. A set-up whose target could not start is left out of its round.
    private func runRounds(
        _ selected: Set<String>, ratePerCharger: Double?, prefix: String, csmsPort: Int, work: String,
        group: MultiThreadedEventLoopGroup
    ) async throws -> [[RunResult]] {
        var rounds: [[RunResult]] = []
        for round in 1...max(1, self.rounds) {
            var results: [RunResult] = []
            for setup in Self.setupOrder where selected.contains(setup) {
                if let run = try await self.measure(
                    setup, ratePerCharger: ratePerCharger, prefix: "\(prefix)\(round)-\(setup)", csmsPort: csmsPort, work: work,
                    group: group
                ) {
                    results.append(run)
                }
            }
            rounds.append(results)
        }
        return rounds
    }

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

    private func printTable(_ results: [RunResult], rounds: [[RunResult]]) {
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
}

// MARK: Load generation

/// N chargers in a closed loop: each boots, then alternates MeterValues and Heartbeat CALLs, timing each answer.
enum LoadRun {
    struct Result {
        var messages: Int
        var messagesIncludingBoot: Int
        var messagesPerSecond: Double
        var p50: Double
        var p99: Double
        var p999: Double
        var errors: Int
        /// Chargers that could not connect or boot, with why; the run goes on with the others.
        var connectFailures: [String] = []
    }

    static func run(url: String, chargers: Int, seconds: Double, ratePerCharger: Double?, prefix: String, group: any EventLoopGroup) async throws -> Result {
        let base = try WebSocketURL(parsing: url)
        var simulators: [ChargerSimulator] = []
        var connectFailures: [String] = []
        for index in 0..<chargers {
            let charger = ChargerSimulator(profile: ChargerProfile(id: "\(prefix)-\(index)", version: .v16), baseURL: base, group: group)
            do {
                _ = try await charger.connect()
                try await charger.boot()
                simulators.append(charger)
            } catch {
                connectFailures.append("\(prefix)-\(index): \(error)")
                await charger.endpoint?.close()
            }
        }
        let warmUp = ContinuousClock.now + .milliseconds(500)
        let end = warmUp + .milliseconds(Int64(seconds * 1000))
        let outcomes = await withTaskGroup(of: ([Double], Int, Int).self) { tasks in
            for (index, charger) in simulators.enumerated() {
                tasks.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(4096)
                    var errors = 0
                    var total = 0
                    let interval = ratePerCharger.map { Duration.nanoseconds(Int64(1e9 / max($0, 0.001))) }
                    var next = ContinuousClock.now + .microseconds(Int64(index * 997 % 50_000))
                    var meter = 10_000
                    while ContinuousClock.now < end {
                        if let interval {
                            try? await Task.sleep(until: next, clock: .continuous)
                            next += interval
                        }
                        let started = ContinuousClock.now
                        do {
                            if total % 5 == 4 {
                                _ = try await charger.call("Heartbeat", [:])
                            } else {
                                meter += 10
                                _ = try await charger.call("MeterValues", LoadRun.meterValues(meter))
                            }
                        } catch {
                            errors += 1
                        }
                        total += 1
                        let finished = ContinuousClock.now
                        if started >= warmUp && finished <= end {
                            let elapsed = finished - started
                            latencies.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                        }
                    }
                    return (latencies, errors, total)
                }
            }
            var all: [([Double], Int, Int)] = []
            for await outcome in tasks { all.append(outcome) }
            return all
        }
        for charger in simulators { await charger.endpoint?.close() }
        // Everything the chargers sent and got answered, boot sequence included, for the capture check.
        let exchanged = simulators.reduce(0) { $0 + $1.counts.completed + $1.counts.errors }
        var latencies = outcomes.flatMap(\.0)
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
        }
        let measured = latencies.count * 2
        return Result(
            messages: measured, messagesIncludingBoot: exchanged * 2, messagesPerSecond: Double(measured) / seconds,
            p50: percentile(0.5), p99: percentile(0.99), p999: percentile(0.999), errors: outcomes.reduce(0) { $0 + $1.1 },
            connectFailures: connectFailures
        )
    }

    static func meterValues(_ wh: Int) -> JSONValue {
        let ts = CaptureTimestamp.now().rfc3339
        return [
            "connectorId": 1,
            "meterValue": [[
                "timestamp": .string(ts),
                "sampledValue": [
                    ["value": .string(String(wh)), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"],
                    ["value": "7360", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"],
                    ["value": "32.1", "context": "Sample.Periodic", "measurand": "Current.Import", "phase": "L1", "unit": "A"],
                ],
            ]],
        ]
    }
}

/// Many chargers connecting as fast as they can, then holding their connections with heartbeats.
enum ScaleRun {
    struct Result {
        var connected: Int
        var upgradesPerSecond: Double
        var heartbeats: Int
        var failures: Int
        /// Why connections failed, with how many failed that way.
        var failureReasons: [String: Int]
    }

    static func run(url: String, chargers: Int, seconds: Double, prefix: String, group: any EventLoopGroup) async throws -> Result {
        let base = try WebSocketURL(parsing: url)
        let started = ContinuousClock.now
        let inFlight = 256
        var endpoints: [OCPPEndpoint] = []
        var failures = 0
        var failureReasons: [String: Int] = [:]
        await withTaskGroup(of: Swift.Result<OCPPEndpoint, any Error>.self) { tasks in
            var launched = 0
            func launch() {
                let index = launched
                launched += 1
                tasks.addTask {
                    do {
                        let url = try WebSocketURL(parsing: base.description + "/\(prefix)-\(index)")
                        return .success(
                            try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"], connectTimeout: .seconds(30)), group: group)
                        )
                    } catch {
                        return .failure(error)
                    }
                }
            }
            while launched < min(inFlight, chargers) { launch() }
            for await outcome in tasks {
                switch outcome {
                case .success(let endpoint): endpoints.append(endpoint)
                case .failure(let error):
                    failures += 1
                    failureReasons["\(error)", default: 0] += 1
                }
                if launched < chargers { launch() }
            }
        }
        let ramp = ContinuousClock.now - started
        let rampSeconds = Double(ramp.components.seconds) + Double(ramp.components.attoseconds) / 1e18
        // Hold: every charger heartbeats every 5 s, spread over the interval.
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let heartbeats = await withTaskGroup(of: Int.self) { tasks in
            for (index, endpoint) in endpoints.enumerated() {
                tasks.addTask {
                    var count = 0
                    var next = ContinuousClock.now + .milliseconds(Int64(index % 5000))
                    while next < end {
                        try? await Task.sleep(until: next, clock: .continuous)
                        if (try? await endpoint.call("Heartbeat", [:], timeout: .seconds(30))) != nil { count += 1 }
                        next += .seconds(5)
                    }
                    return count
                }
            }
            return await tasks.reduce(0, +)
        }
        for endpoint in endpoints { endpoint.channel.close(promise: nil) }
        return Result(
            connected: endpoints.count, upgradesPerSecond: Double(endpoints.count) / max(rampSeconds, 0.001), heartbeats: heartbeats,
            failures: failures, failureReasons: failureReasons
        )
    }
}

// MARK: Processes

/// A child process started for the benchmark, stopped with SIGTERM (then SIGKILL).
final class Child: @unchecked Sendable {
    let process = Process()
    var pid: Int32 { self.process.processIdentifier }

    static func start(_ path: String, _ arguments: [String], log: String) throws -> Child {
        let child = Child()
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        child.process.executableURL = URL(fileURLWithPath: path)
        child.process.arguments = arguments
        child.process.standardOutput = FileHandle(forWritingAtPath: log)
        child.process.standardError = FileHandle(forWritingAtPath: log)
        try child.process.run()
        return child
    }

    func stop() {
        guard self.process.isRunning else { return }
        kill(self.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(15)
        while self.process.isRunning && Date() < deadline { usleep(20_000) }
        if self.process.isRunning { kill(self.pid, SIGKILL) }
        self.process.waitUntilExit()
    }
}

/// CPU seconds a process spent in its own code and in the kernel on its behalf (system calls, and on
/// loopback the TCP work of the packets it sends).
struct CPUTime {
    var user: Double = 0
    var kernel: Double = 0

    var total: Double { self.user + self.kernel }

    static func - (lhs: CPUTime, rhs: CPUTime) -> CPUTime {
        CPUTime(user: lhs.user - rhs.user, kernel: lhs.kernel - rhs.kernel)
    }

    /// "total (user + kernel)" seconds per million of `messages`.
    func perMillion(_ messages: Int) -> String {
        let millions = max(1, Double(messages)) / 1e6
        return String(format: "%.1f (%.1f + %.1f)", self.total / millions, self.user / millions, self.kernel / millions)
    }
}

/// CPU time and resident memory of a process (and its children, for nginx's workers), from /proc.
struct ProcessProbe {
    var pid: Int32
    var includeChildren: Bool

    private var pids: [Int32] {
        guard self.includeChildren else { return [self.pid] }
        var result = [self.pid]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let candidate = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { continue }
            let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == self.pid { result.append(candidate) }
        }
        return result
    }

    var cpuTime: CPUTime {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return self.pids.reduce(CPUTime()) { total, pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.range(of: ")")
            else { return total }
            let fields = stat[close.upperBound...].split(separator: " ")
            // After the command: state(0) ppid(1) ... utime(11) stime(12)
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return total }
            return CPUTime(user: total.user + user / ticks, kernel: total.kernel + system / ticks)
        }
    }

    var residentBytes: Int {
        self.pids.reduce(0) { total, pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
            else { return total }
            return total + kib * 1024
        }
    }
}

private func selfPath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

private func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ValidationError("cannot create a socket") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ValidationError("cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

private func waitForPort(_ port: Int) async throws {
    let deadline = Date().addingTimeInterval(30)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        close(fd)
        if connected { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw ValidationError("nothing listens on 127.0.0.1:\(port) after 30 s")
}

/// Lifts the open-files limit as far as allowed: the scale run holds tens of thousands of sockets.
private func machineDescription() -> String {
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    return "\(System.coreCount) cores, \(cpu)"
}

private func fmtMs(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }
private func fmtMiB(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
