import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessCLISupport
import WitnessSim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
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

    @Option(
        help: ArgumentHelp(
            """
            Set-ups to run, comma-separated: direct, nginx, witness, witness-record, witness-forward, and byte-relay (not by \
            default: a TCP relay on the proxy's event loops that does not read the bytes, the framework's floor).
            """,
            valueName: "LIST"
        )
    )
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
    var schemas: String?

    @Option(help: ArgumentHelp("nginx binary.", valueName: "PATH"))
    var nginx: String = "/usr/sbin/nginx"

    @Option(help: ArgumentHelp("Write the results as JSON here too.", valueName: "FILE"))
    var json: String?

    @Option(
        help: ArgumentHelp(
            "Measure latency at this many messages per second (CALLs + CALLRESULTs) instead of at half of OCPP Witness's saturating rate; the saturating runs are skipped.",
            valueName: "MSGS"
        )
    )
    var rate: Int?

    @Option(
        help: ArgumentHelp(
            "Where the recording proxies write their captures (default: a temporary folder, removed at the end). On tmpfs (/dev/shm) the runs measure the proxy without the disk's share.",
            valueName: "DIR"
        )
    )
    var captureDirectory: String?

    @Option(
        help: ArgumentHelp(
            "More options for every OCPP Witness proxy the benchmark starts, separated by spaces (e.g. \"--fsync never\").",
            valueName: "OPTIONS"
        )
    )
    var proxyOptions: String = ""

    @Option(
        name: .customLong("proxy-cpus"),
        help: ArgumentHelp(
            """
            CPUs for the proxy under test (nginx, the byte relay, OCPP Witness), as `taskset -c` takes them (e.g. 4-7). With \
            --load-cpus, the load generator and the CSMS stay off the proxy's cores; the benchmark checks each proxy runs there.
            """,
            valueName: "LIST"
        )
    )
    var proxyCPUs: String?

    @Option(
        name: .customLong("load-cpus"),
        help: ArgumentHelp("CPUs for the load generator (this process) and the CSMS simulator, e.g. 0-3.", valueName: "LIST")
    )
    var loadCPUs: String?

    private var proxyCPUList: CPUList? { get throws { try self.proxyCPUs.map { try CPUList(parsing: $0, option: "--proxy-cpus") } } }
    private var loadCPUList: CPUList? { get throws { try self.loadCPUs.map { try CPUList(parsing: $0, option: "--load-cpus") } } }

    func validate() throws {
        _ = try self.proxyCPUList
        _ = try self.loadCPUList
        if let rate, rate < 2 * self.chargers {
            throw ValidationError("--rate \(rate) is below one round trip per second for each of the \(self.chargers) chargers; use at least \(2 * self.chargers)")
        }
        if self.rounds < 1 { throw ValidationError("--rounds expects at least 1, got \(self.rounds)") }
        if self.chargers < 1 { throw ValidationError("--chargers expects at least 1, got \(self.chargers)") }
        for setup in self.setups.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !Self.setupOrder.contains(setup) {
            throw ValidationError("--setups: unknown set-up '\(setup)'; choose from \(Self.setupOrder.joined(separator: ", "))")
        }
    }

    func run() async throws {
        let openFiles = OpenFileLimit.raise(wanted: 200_000)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("witness-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        if let captureDirectory {
            do {
                try FileManager.default.createDirectory(atPath: captureDirectory, withIntermediateDirectories: true)
            } catch {
                throw ValidationError("--capture-directory \(captureDirectory) cannot be created: \(error.localizedDescription)")
            }
        }
        let selected = Set(self.setups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let machine = machineDescription()
        print("OCPP Witness forwarding benchmark — \(machine)")
        print("\(self.chargers) chargers, closed loop, \(self.seconds) s per set-up and round, \(self.rounds) round(s); messages = CALLs + CALLRESULTs")
        let loadCPUs = try self.loadCPUList
        if let loadCPUs { try loadCPUs.pinCurrentProcess() }
        if loadCPUs != nil || self.proxyCPUs != nil {
            print(
                "CPUs: proxy under test on \(try self.proxyCPUList?.description ?? "any"), "
                    + "load generator and CSMS on \(loadCPUs?.description ?? "any")"
            )
        }
        print("")

        let csmsPort = try freePort()
        let csmsArguments = ["simulate", "csms", "--listen", "127.0.0.1:\(csmsPort)", "--ocpp-version", "1.6", "--log-level", "error"]
        let csms = try Self.start(selfPath(), csmsArguments, on: loadCPUs, log: work + "/csms.log")
        defer { csms.stop() }
        try await csms.waitUntilListening(on: csmsPort)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loadCPUs?.cpus.count ?? System.coreCount)
        let load = LoadSide(generator: ProcessProbe(pid: getpid(), includeChildren: false), csms: ProcessProbe(pid: csms.pid, includeChildren: false))

        var checked: RunResult?
        var halfRate = self.rate.map(Double.init)
        if self.rate == nil {
            let rounds = try await self.runRounds(
                selected, ratePerCharger: nil, prefix: "BENCH", csmsPort: csmsPort, load: load, work: work, keepsFirstCapture: true, group: group
            )
            // The first round's capture is the one checked.
            checked = rounds.lazy.compactMap { $0.first { $0.setup == "witness" } }.first
            let results = Self.medianRounds(rounds)
            printTable(results, rounds: rounds)
            for run in results {
                if let recorder = run.recorder { print("  \(run.setup): \(recorder)") }
            }
            Self.printCPUBudget(results, rounds: rounds)
            halfRate = (results.first(where: { $0.setup == "witness" }) ?? results.first).map { $0.load.messagesPerSecond / 2 }
        }

        // Added latency at a fixed rate (half of the saturating load unless --rate): paced chargers, direct and through the proxies.
        if let halfRate {
            let ratePerCharger = halfRate / 2 / Double(self.chargers)  // round trips per charger per second
            print("\n\(self.rate == nil ? "At half load" : "At the given rate") (\(Int(halfRate)) messages/s, paced):")
            let halfRounds = try await self.runRounds(
                selected, ratePerCharger: ratePerCharger, prefix: "HALF", csmsPort: csmsPort, load: load, work: work,
                keepsFirstCapture: checked == nil, group: group
            )
            if checked == nil { checked = halfRounds.lazy.compactMap { $0.first { $0.setup == "witness" } }.first }
            Self.printPaced(halfRounds)
        }

        // Correctness under load: what the recorder wrote equals what the generator counted, with no deviations.
        if let witnessCapture = checked?.capture {
            let check = try self.checkCapture(witnessCapture, expected: checked?.load.messagesIncludingBoot ?? 0)
            print("\nCapture check (witness run): \(check)")
            try? FileManager.default.removeItem(atPath: witnessCapture)
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

    static let setupOrder = ["direct", "nginx", "byte-relay", "witness", "witness-record", "witness-forward"]

    /// One set-up under one load: starts it, runs the chargers (closed loop, or paced at `ratePerCharger`
    /// round trips per second), reads the proxy's CPU and memory, and stops it.
    private func measure(
        _ setup: String, ratePerCharger: Double?, prefix: String, csmsPort: Int, load side: LoadSide, work: String,
        group: any EventLoopGroup
    ) async throws -> RunResult? {
        guard let target = try await self.startTarget(setup, csmsPort: csmsPort, work: work) else { return nil }
        let loadAtStart = side.cpuTime
        let started = ContinuousClock.now
        let load = try await LoadRun.run(
            url: target.url, chargers: self.chargers, seconds: self.seconds, ratePerCharger: ratePerCharger, prefix: prefix, group: group
        )
        let loadCPU = side.cpuTime - loadAtStart
        let wall = ContinuousClock.now - started
        let usage = target.probe.map { ($0.cpuTime - target.cpuAtStart, $0.residentBytes) }
        let recorder = target.stop()
        return RunResult(
            setup: setup, load: load, proxyCPU: usage?.0, proxyRSS: usage?.1, loadCPU: loadCPU,
            wallSeconds: Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18, recorder: recorder,
            logTail: load.connectFailures.isEmpty ? nil : target.logTail(), capture: target.capture
        )
    }

    /// The processes that make the load: this one (the chargers) and the CSMS simulator. On a machine whose
    /// cores they share with the proxy, their CPU time per message is what the proxy's competes with.
    struct LoadSide {
        var generator: ProcessProbe
        var csms: ProcessProbe

        var cpuTime: CPUTime {
            let generator = self.generator.cpuTime
            let csms = self.csms.cpuTime
            return CPUTime(user: generator.user + csms.user, kernel: generator.kernel + csms.kernel)
        }
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
            let config = try NginxProxyConfiguration(port: port, backendPort: csmsPort, directory: directory).write()
            let child = try self.startProxy(self.nginx, ["-c", config, "-p", directory], log: directory + "/stderr.log")
            try await child.waitUntilListening(on: port)
            try self.checkPinned(child, setup)
            let probe = ProcessProbe(pid: child.pid, includeChildren: true)
            return Target(
                url: "ws://127.0.0.1:\(port)", probe: probe, cpuAtStart: probe.cpuTime, capture: nil, log: directory + "/error.log",
                stopAction: {
                    child.stop()
                    return nil
                }
            )
        case "byte-relay":
            let port = try freePort()
            let log = work + "/byte-relay-\(port).log"
            let child = try self.startProxy(selfPath(), ["benchmark", "byte-relay", "--listen", "127.0.0.1:\(port)", "--upstream", "127.0.0.1:\(csmsPort)"], log: log)
            try await child.waitUntilListening(on: port)
            try self.checkPinned(child, setup)
            let probe = ProcessProbe(pid: child.pid, includeChildren: false)
            return Target(
                url: "ws://127.0.0.1:\(port)", probe: probe, cpuAtStart: probe.cpuTime, capture: nil, log: log,
                stopAction: {
                    child.stop()
                    return nil
                }
            )
        default:
            let port = try freePort()
            let capture = (self.captureDirectory ?? work) + "/capture-\(setup)-\(port)"
            // The recorder's figures come from the statistics file the proxy writes when it stops.
            let statistics = work + "/\(setup)-\(port).statistics.json"
            var arguments = [
                "proxy", "--listen", "127.0.0.1:\(port)", "--upstream", "ws://127.0.0.1:\(csmsPort)", "--capture", capture, "--log-level", "notice",
                "--statistics-file", statistics,
            ] + (self.schemas.map { ["--schemas", $0] } ?? [])
            if setup == "witness-record" { arguments.append("--no-validate") }
            if setup == "witness-forward" { arguments.append("--no-capture") }
            arguments += self.proxyOptions.split(separator: " ").map(String.init)
            let log = work + "/\(setup)-\(port).log"
            let child = try self.startProxy(selfPath(), arguments, log: log)
            try await child.waitUntilListening(on: port)
            try self.checkPinned(child, setup)
            let probe = ProcessProbe(pid: child.pid, includeChildren: false)
            return Target(
                url: "ws://127.0.0.1:\(port)", probe: probe, cpuAtStart: probe.cpuTime,
                capture: setup == "witness-forward" ? nil : capture, log: log,
                stopAction: {
                    child.stop()
                    return setup == "witness-forward" ? nil : recorderReport(statistics: statistics, log: log)
                }
            )
        }
    }

    /// Starts a proxy under test, on --proxy-cpus when given.
    private func startProxy(_ path: String, _ arguments: [String], log: String) throws -> Child {
        try Self.start(path, arguments, on: self.proxyCPUList, log: log)
    }

    /// Starts a child process, on `cpus` when given.
    private static func start(_ path: String, _ arguments: [String], on cpus: CPUList?, log: String) throws -> Child {
        let command = try cpus?.command(path, arguments) ?? (path: path, arguments: arguments)
        return try Child.start(command.path, command.arguments, log: log)
    }

    /// With --proxy-cpus, makes sure the proxy runs on those CPUs and nowhere else.
    private func checkPinned(_ child: Child, _ setup: String) throws {
        guard let wanted = try self.proxyCPUList else { return }
        let actual = CPUList(allowedFor: child.pid)
        guard actual == wanted else {
            child.stop()
            throw ValidationError("\(setup) runs on CPUs \(actual?.description ?? "unknown"), not on --proxy-cpus \(wanted)")
        }
    }

    private func checkCapture(_ directory: String, expected: Int) throws -> String {
        let reader = try CaptureReader(paths: [directory])
        let registry = try SchemaRegistry.load(forCommand: self.schemas)
        let analyzer = Analyzer(schemas: registry, configuration: AnalyzerConfiguration(profile: .strict, responseTimeoutSeconds: 30))
        var messages = 0
        for record in reader {
            if record.recordKind == .frame, record.opcode == .text { messages += 1 }
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
        /// CPU time of the load generator and the CSMS simulator over the run.
        var loadCPU: CPUTime
        /// How long the load ran, connecting and warm-up included: the window `loadCPU` covers.
        var wallSeconds: Double
        var recorder: String? = nil
        /// The last lines of the set-up's log, kept when chargers could not connect.
        var logTail: [String]? = nil
        /// The recording proxy's capture folder.
        var capture: String? = nil
    }

    /// Runs every selected set-up once per round, in `setupOrder`, so a slow phase of a shared machine
    /// hits all set-ups alike. A set-up whose target could not start is left out of its round.
    private func runRounds(
        _ selected: Set<String>, ratePerCharger: Double?, prefix: String, csmsPort: Int, load: LoadSide, work: String,
        keepsFirstCapture: Bool, group: MultiThreadedEventLoopGroup
    ) async throws -> [[RunResult]] {
        var rounds: [[RunResult]] = []
        var keeping = keepsFirstCapture
        for round in 1...max(1, self.rounds) {
            var results: [RunResult] = []
            for setup in Self.setupOrder where selected.contains(setup) {
                guard
                    var run = try await self.measure(
                        setup, ratePerCharger: ratePerCharger, prefix: "\(prefix)\(round)-\(setup)", csmsPort: csmsPort, load: load,
                        work: work, group: group
                    )
                else { continue }
                // A capture's data still on its way to the disk would be written during the next set-ups' runs
                // and slow them down: the one capture that is checked is synced now, the others are removed
                // before the kernel writes them.
                if let capture = run.capture {
                    if keeping && setup == "witness" {
                        keeping = false
                        sync()
                    } else {
                        try? FileManager.default.removeItem(atPath: capture)
                        run.capture = nil
                    }
                }
                results.append(run)
            }
            rounds.append(results)
        }
        return rounds
    }
}
