import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import OCPPWire
import WitnessCLISupport
import WitnessSim

/// Hostile chargers next to well-behaved ones for a long time: the proxy's memory and descriptors must level
/// off, and the good chargers' latency must not suffer much.
struct SoakBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Hostile chargers beside good ones: does the proxy's memory and descriptor count level off, and do the good chargers' latencies hold?",
        discussion: """
            A CSMS simulator (its own process) and OCPP Witness (`proxy`, its own process, with recording, live validation and a
            fault policy written for the run) start on 127.0.0.1. Phase 1, clean: --good chargers boot and each sends Heartbeat
            CALLs in a closed loop, waiting for every CALLRESULT, for --clean-seconds. Phase 2, hostile: the good chargers go on,
            and --hostile peers of each of four kinds connect, misbehave until the proxy closes them or --hold-seconds pass,
            disconnect and connect again, for --seconds: continuation streamers (a message that never ends; every other connection
            offers permessage-deflate), close stallers (a close frame sent, or the backend's close received, and never answered),
            delay-fault senders (CALLs as fast as the socket takes them, every one delayed by the policy, no answer read) and
            half-finished upgrades. Every --sample-seconds the proxy's resident memory and open descriptors are read from /proc.
            Printed: the samples, each hostile kind's connections and who ended them, the growth over the last half of the
            hostile phase per hostile connection, and the good chargers' p50/p99 in both phases, each beside its goal.
            Run it from a release build (`make bench-soak`).
            """
    )

    @Option(help: "Well-behaved chargers: each sends Heartbeat CALLs in a closed loop, through both phases.")
    var good: Int = 32

    @Option(help: "Hostile peers of each of the four kinds in the hostile phase (0 runs the good chargers alone).")
    var hostile: Int = 8

    @Option(help: ArgumentHelp("Seconds of the clean phase (good chargers only).", valueName: "SECONDS"))
    var cleanSeconds: Double = 60

    @Option(help: ArgumentHelp("Seconds of the hostile phase.", valueName: "SECONDS"))
    var seconds: Double = 600

    @Option(help: ArgumentHelp("Seconds between two readings of the proxy's memory and descriptors.", valueName: "SECONDS"))
    var sampleSeconds: Double = 5

    @Option(
        help: ArgumentHelp(
            """
            Hostile kinds to run, comma-separated: \(HostileKind.allCases.map(\.option).joined(separator: ", ")) (all by \
            default); one at a time tells which kind makes the proxy grow.
            """,
            valueName: "LIST"
        )
    )
    var kinds: String = HostileKind.allCases.map(\.option).joined(separator: ",")

    @Option(
        help: ArgumentHelp(
            """
            Seconds a hostile connection misbehaves before its peer gives up and closes it, unless the proxy closes it \
            first. Longer than the proxy's 15 s upgrade deadline, so the per-kind table shows which connections the \
            proxy ends by itself.
            """,
            valueName: "SECONDS"
        )
    )
    var holdSeconds: Double = 20

    @Option(help: ArgumentHelp("Milliseconds a hostile peer waits between one connection's end and its next connection.", valueName: "MS"))
    var reconnectMs: Int = 100

    @Option(help: ArgumentHelp("Milliseconds the policy's delay fault holds each message of the delay-fault senders.", valueName: "MS"))
    var delayMs: Int = 2000

    @Option(help: ArgumentHelp("Folder with the OCA schemas, for OCPP Witness's live validation.", valueName: "DIR"))
    var schemas: String?

    @Option(help: ArgumentHelp("The ocpp-witness binary run as the proxy (default: this one); another build's, to compare two builds.", valueName: "PATH"))
    var witness: String?

    @Flag(help: "Keep the run's folder (the proxy's log and capture, the policy, the backend's log) and print where it is.")
    var keep = false

    /// The least-squares slope of `points` (y per x); nil with fewer than three points or no spread in x.
    static func trend(_ points: [(x: Double, y: Double)]) -> Double? {
        guard points.count >= 3 else { return nil }
        let meanX = points.map(\.x).reduce(0, +) / Double(points.count)
        let meanY = points.map(\.y).reduce(0, +) / Double(points.count)
        let spread = points.map { ($0.x - meanX) * ($0.x - meanX) }.reduce(0, +)
        guard spread > 0 else { return nil }
        return points.map { ($0.x - meanX) * ($0.y - meanY) }.reduce(0, +) / spread
    }

    /// The goals of the acceptance criterion, printed beside the figures.
    static let bytesPerCycleGoal = 1024.0
    static let p99RatioGoal = 2.0

    func validate() throws {
        if self.good < 1 { throw ValidationError("--good expects at least 1 charger, got \(self.good)") }
        if self.hostile < 0 { throw ValidationError("--hostile must not be negative, got \(self.hostile)") }
        let durations = [
            ("--clean-seconds", self.cleanSeconds), ("--seconds", self.seconds), ("--sample-seconds", self.sampleSeconds),
            ("--hold-seconds", self.holdSeconds),
        ]
        for (name, value) in durations where !(value > 0) {
            throw ValidationError("\(name) expects a number of seconds above 0, got \(value)")
        }
        if self.reconnectMs < 0 || self.delayMs < 0 { throw ValidationError("--reconnect-ms and --delay-ms must not be negative") }
        _ = try self.selectedKinds
    }

    /// The kinds --kinds names, in the order of `HostileKind.allCases`.
    private var selectedKinds: [HostileKind] {
        get throws {
            let names = self.kinds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for name in names where !HostileKind.allCases.contains(where: { $0.option == name }) {
                throw ValidationError("--kinds: unknown kind '\(name)'; choose from \(HostileKind.allCases.map(\.option).joined(separator: ", "))")
            }
            return HostileKind.allCases.filter { names.contains($0.option) }
        }
    }

    func run() async throws {
        OpenFileLimit.raise()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("witness-soak-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer {
            if self.keep {
                print("\nThe run's folder (proxy.log, capture/, soak-policy.yaml, csms.log): \(work)")
            } else {
                try? FileManager.default.removeItem(atPath: work)
            }
        }
        print("OCPP Witness soak with hostile peers — \(machineDescription())")
        print(
            "\(self.good) good chargers (Heartbeat, closed loop); "
                + "\(self.hostile) hostile peers of each kind (\(try self.selectedKinds.map(\.rawValue).joined(separator: ", "))); "
                + "clean \(Self.seconds(self.cleanSeconds)), hostile \(Self.seconds(self.seconds)); a sample every \(Self.seconds(self.sampleSeconds)); "
                + "hostile connections held up to \(Self.seconds(self.holdSeconds))\n"
        )
        fflush(nil)

        // The backend and the proxy as the reconnect storm starts them, the proxy with the soak's policy.
        let csmsPort = try freePort()
        let csms = try Child.start(
            selfPath(), ["simulate", "csms", "--listen", "127.0.0.1:\(csmsPort)", "--ocpp-version", "1.6", "--log-level", "error"],
            log: work + "/csms.log"
        )
        defer { csms.stop() }
        try await csms.waitUntilListening(on: csmsPort)
        let policy = work + "/soak-policy.yaml"
        try self.policyText.write(toFile: policy, atomically: true, encoding: .utf8)
        let port = try freePort()
        let statistics = work + "/statistics.json"
        let proxyLog = work + "/proxy.log"
        let proxy = try Child.start(
            self.witness ?? selfPath(),
            [
                "proxy", "--listen", "127.0.0.1:\(port)", "--upstream", "ws://127.0.0.1:\(csmsPort)", "--capture", work + "/capture",
                "--policy", policy, "--statistics-file", statistics, "--log-level", "warning",
            ] + (self.schemas.map { ["--schemas", $0] } ?? []),
            log: proxyLog
        )
        defer { proxy.stop() }
        try await proxy.waitUntilListening(on: port)
        let probe = ProcessProbe(pid: proxy.pid, includeChildren: false)
        let backend = ProcessProbe(pid: csms.pid, includeChildren: false)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let base = try WebSocketURL(parsing: "ws://127.0.0.1:\(port)")
        var chargers: [ChargerSimulator] = []
        for index in 0..<self.good {
            let charger = ChargerSimulator(profile: ChargerProfile(id: "SOAK-GOOD-\(index)", version: .v16), baseURL: base, group: group)
            do {
                _ = try await charger.connect()
                try await charger.boot()
            } catch {
                throw ValidationError("good charger SOAK-GOOD-\(index) could not connect and boot through the proxy: \(error) (proxy log: \(proxyLog))")
            }
            chargers.append(charger)
        }

        let clock = ContinuousClock()
        let start = clock.now
        let hostileStart = start + Self.duration(self.cleanSeconds)
        let end = hostileStart + Self.duration(self.seconds)
        let tally = HostileTally()
        let kinds = try self.selectedKinds
        let peers = kinds.flatMap { kind in
            (0..<self.hostile).map {
                HostilePeer(
                    kind: kind, index: $0, port: port, group: group, hold: Self.duration(self.holdSeconds), pause: .milliseconds(self.reconnectMs)
                )
            }
        }
        for peer in peers { await tally.register(peer.kind) }
        let sampleTimes = self.sampleTimes()

        async let samples = Self.sample(at: sampleTimes, from: start, cleanSeconds: self.cleanSeconds, proxy: probe, backend: backend, tally: tally)
        async let good = Self.runGoodChargers(chargers, measuredFrom: start + .seconds(1), hostileFrom: hostileStart, until: end)
        async let hostile: Void = Self.runHostilePeers(peers, from: hostileStart, until: end, tally: tally)
        let sampled = await samples
        let latencies = await good
        await hostile
        // Dropped without a closing handshake: through a proxy that is still busy, one could take seconds per charger.
        for charger in chargers { charger.endpoint?.channel.close(promise: nil) }
        let counts = await tally.counts
        // Stopped here, not by the deferred stop, so that it writes its statistics for the recorder line.
        let stopping = clock.now
        proxy.stop()
        var recorder = recorderReport(statistics: statistics, log: proxyLog)
        if !FileManager.default.fileExists(atPath: statistics) {
            // Child.stop sends SIGKILL 15 s after SIGTERM: a proxy still busy with what the hostile peers left it.
            let took = clock.now - stopping
            recorder = "the proxy did not write its statistics: it was stopped after \(took.components.seconds) s"
                + (took >= .seconds(15) ? " with SIGKILL, not having ended within 15 s of SIGTERM" : "")
                + (self.keep ? " (its log: \(proxyLog))" : " (--keep keeps its log)")
        }
        try? await group.shutdownGracefully()

        self.printSamples(sampled)
        self.printHostileKinds(counts)
        self.printSummary(samples: sampled, good: latencies, recorder: recorder)
    }

    /// The policy written for the run: the delay fault on the delay-fault senders, and, at the first CALL of the
    /// close stallers' close-wait variant, a close frame to the charger on the backend's behalf, which the
    /// staller never answers. (The CSMS simulator never closes a connection by itself; a `side: csms`
    /// disconnect would drop the charger without a close frame.) No rule matches a good charger.
    var policyText: String {
        """
        # Written by `ocpp-witness benchmark soak` for one run.
        seed: 1
        rules:
          - name: soak-delay-fault-senders
            description: Every message of the delay-fault senders is held for \(self.delayMs) ms; the next ones wait behind it.
            match: {chargePoint: "SOAK-DELAY-*", direction: toCSMS}
            fault: {delay: {ms: \(self.delayMs)}}
          - name: soak-backend-closes-close-waiters
            description: The close stallers' close-wait variant gets a close frame on the backend's behalf at its first CALL.
            match: {chargePoint: "SOAK-CLOSEWAIT-*", direction: toCSMS, type: CALL}
            fault: {disconnect: {side: charger, code: 1001, reason: soak benchmark}}

        """
    }

    // MARK: Good chargers

    /// Round trips of the good chargers, per phase, in seconds; a CALL counts in the phase it started in, also
    /// when its answer comes after the phase (a slow answer at the end is as much the proxy's as any other).
    struct GoodLatencies: Sendable {
        var clean: [Double] = []
        var hostile: [Double] = []
        var cleanErrors = 0
        var hostileErrors = 0
        /// Times a good charger found itself disconnected and connected again.
        var reconnects = 0
    }

    private static func runGoodChargers(
        _ chargers: [ChargerSimulator], measuredFrom: ContinuousClock.Instant, hostileFrom: ContinuousClock.Instant, until end: ContinuousClock.Instant
    ) async -> GoodLatencies {
        await withTaskGroup(of: GoodLatencies.self) { tasks in
            for charger in chargers {
                tasks.addTask {
                    var result = GoodLatencies()
                    let clock = ContinuousClock()
                    while clock.now < end {
                        if charger.endpoint?.isActive != true {
                            // A good charger the proxy dropped comes back as firmware would, a little later.
                            try? await Task.sleep(for: .milliseconds(200))
                            if (try? await charger.connect()) != nil, (try? await charger.boot()) != nil { result.reconnects += 1 }
                            continue
                        }
                        let started = clock.now
                        let answered = (try? await charger.call("Heartbeat", [:])) != nil
                        let elapsed = clock.now - started
                        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                        if started >= hostileFrom {
                            if answered { result.hostile.append(seconds) } else { result.hostileErrors += 1 }
                        } else if started >= measuredFrom {
                            if answered { result.clean.append(seconds) } else { result.cleanErrors += 1 }
                        }
                    }
                    return result
                }
            }
            var all = GoodLatencies()
            for await one in tasks {
                all.clean += one.clean
                all.hostile += one.hostile
                all.cleanErrors += one.cleanErrors
                all.hostileErrors += one.hostileErrors
                all.reconnects += one.reconnects
            }
            all.clean.sort()
            all.hostile.sort()
            return all
        }
    }

    /// Every hostile peer, from the start of the hostile phase to its end.
    private static func runHostilePeers(
        _ peers: [HostilePeer], from start: ContinuousClock.Instant, until end: ContinuousClock.Instant, tally: HostileTally
    ) async {
        try? await Task.sleep(until: start, clock: .continuous)
        await withTaskGroup(of: Void.self) { tasks in
            for peer in peers { tasks.addTask { await peer.run(until: end, tally: tally) } }
        }
    }

    // MARK: Samples

    /// One reading of the proxy (and of the backend, whose growth would otherwise pass for the proxy's).
    struct Sample: Sendable {
        var seconds: Double
        var hostile: Bool
        var residentBytes: Int
        var descriptors: Int
        var hostileCycles: Int
        var backendResidentBytes: Int
    }

    /// Seconds from the start at which to sample: every --sample-seconds, and at the start and the end of the
    /// hostile phase, so the phases' own figures have their bounds.
    private func sampleTimes() -> [Double] {
        let total = self.cleanSeconds + self.seconds
        var times = Set(stride(from: 0, to: total, by: self.sampleSeconds).map { $0 })
        times.insert(self.cleanSeconds)
        times.insert(total)
        return times.sorted()
    }

    private static func sample(
        at times: [Double], from start: ContinuousClock.Instant, cleanSeconds: Double, proxy: ProcessProbe, backend: ProcessProbe, tally: HostileTally
    ) async -> [Sample] {
        var samples: [Sample] = []
        for time in times {
            try? await Task.sleep(until: start + Self.duration(time), clock: .continuous)
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(proxy.pid)/fd").count) ?? 0
            samples.append(
                Sample(
                    seconds: time, hostile: time >= cleanSeconds, residentBytes: proxy.residentBytes, descriptors: descriptors,
                    hostileCycles: await tally.cycles, backendResidentBytes: backend.residentBytes
                )
            )
        }
        return samples
    }

    // MARK: Output

    private func printSamples(_ samples: [Sample]) {
        print("Samples (proxy process; hostile cycles = hostile connections completed so far)")
        print("| time | phase | proxy RSS | proxy fds | hostile cycles | backend RSS |")
        print("|---:|---|---:|---:|---:|---:|")
        for sample in samples {
            print(
                "| \(String(format: "%.0f s", sample.seconds)) | \(sample.hostile ? "hostile" : "clean") | \(fmtMiB(sample.residentBytes)) "
                    + "| \(sample.descriptors) | \(sample.hostileCycles) | \(fmtMiB(sample.backendResidentBytes)) |"
            )
        }
        print("")
    }

    private func printHostileKinds(_ counts: [HostileKind: HostileTally.Counts]) {
        guard self.hostile > 0 else { return }
        print("Hostile peers (a connection ends by the proxy when it closes before the peer's \(Self.seconds(self.holdSeconds)) hold runs out)")
        print("| kind | peers | cycles | ended by the proxy | ended by the peer | upgrades refused | failed to connect | sent | notes |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for kind in HostileKind.allCases {
            guard let count = counts[kind] else { continue }
            let notes = count.notes.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            print(
                "| \(kind.rawValue) | \(count.peers) | \(count.cycles) | \(count.byProxy) | \(count.byPeer) | \(count.refused) "
                    + "| \(count.connectFailures) | \(fmtMiB(count.bytesSent)) | \(notes.isEmpty ? "–" : notes) |"
            )
        }
        print("")
    }

    private func printSummary(samples: [Sample], good: GoodLatencies, recorder: String) {
        print("Summary")
        print(
            "good chargers, clean:   p50 \(fmtMs(percentile(good.clean, 0.5))), p99 \(fmtMs(percentile(good.clean, 0.99))) "
                + "(\(good.clean.count) round trips, \(good.cleanErrors) failed)"
        )
        print(
            "good chargers, hostile: p50 \(fmtMs(percentile(good.hostile, 0.5))), p99 \(fmtMs(percentile(good.hostile, 0.99))) "
                + "(\(good.hostile.count) round trips, \(good.hostileErrors) failed, \(good.reconnects) reconnects)"
        )
        let cleanP99 = percentile(good.clean, 0.99)
        let ratio = cleanP99 > 0 ? percentile(good.hostile, 0.99) / cleanP99 : .infinity
        print(
            String(format: "latency:     p99 hostile / clean %.2fx   goal: <= %.1fx", ratio, Self.p99RatioGoal)
                + "   \(ratio <= Self.p99RatioGoal ? "met" : "NOT MET")"
        )

        // Growth over the last half of the hostile phase: from the first sample at or after its middle to the last.
        let half = samples.filter { $0.hostile && $0.seconds >= self.cleanSeconds + self.seconds / 2 }
        guard let first = half.first, let last = half.last, last.seconds > first.seconds else {
            print("memory:      not enough samples in the last half of the hostile phase; goal: <= 1 KiB per cycle   NOT MET")
            print("descriptors: not enough samples in the last half of the hostile phase; goal: level   NOT MET")
            print(recorder)
            return
        }
        let cycles = last.hostileCycles - first.hostileCycles
        let grown = last.residentBytes - first.residentBytes
        // The trend of every sample of the half (least squares, bytes per cycle), not two samples' difference:
        // RSS moves by tens of MiB from one sample to the next as allocator pools and the recorder's queue fill
        // and drain, which two endpoints mistake for growth or shrinkage.
        let perCycle = Self.trend(half.map { (Double($0.hostileCycles), Double($0.residentBytes)) }) ?? Double(grown) / Double(max(1, cycles))
        let range = (half.map(\.residentBytes).min() ?? 0, half.map(\.residentBytes).max() ?? 0)
        let memoryMet = cycles > 0 && perCycle <= Self.bytesPerCycleGoal
        print(
            "memory:      \(fmtMiB(first.residentBytes)) → \(fmtMiB(last.residentBytes)) "
                + String(format: "(%+.1f MiB; ", Double(grown) / 1_048_576) + "\(fmtMiB(range.0)) to \(fmtMiB(range.1)) between) "
                + String(format: "from %.0f s to %.0f s, %d hostile cycles: ", first.seconds, last.seconds, cycles)
                + String(format: "trend %.2f KiB per cycle", perCycle / 1024) + (cycles > 0 ? "" : " (none completed)")
                + String(format: "   goal: <= %.0f KiB per cycle", Self.bytesPerCycleGoal / 1024)
                + "   \(memoryMet ? "met" : "NOT MET")"
        )
        // A sample can catch every hostile peer in the middle of a connection, each holding a charger socket and
        // an upstream one: that much is the level, not growth.
        let descriptorGrowth = last.descriptors - first.descriptors
        let allowance = 2 * self.hostile * ((try? self.selectedKinds.count) ?? HostileKind.allCases.count)
        print(
            "descriptors: \(first.descriptors) → \(last.descriptors) (\(descriptorGrowth >= 0 ? "+" : "")\(descriptorGrowth)), "
                + String(format: "%.3f per cycle", Double(descriptorGrowth) / Double(max(1, cycles)))
                + "   goal: <= +\(allowance) (2 per hostile peer)   \(descriptorGrowth <= allowance ? "met" : "NOT MET")"
        )
        print(
            "backend:     \(fmtMiB(first.backendResidentBytes)) → \(fmtMiB(last.backendResidentBytes)) over the same half "
                + "(the CSMS simulator, not under test)"
        )
        print(recorder)
    }

    private static func duration(_ seconds: Double) -> Duration { .nanoseconds(Int64(seconds * 1e9)) }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}
