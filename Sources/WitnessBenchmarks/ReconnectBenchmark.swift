import ArgumentParser
import ChildProcesses
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import OCPPWire
import WitnessCLISupport
import WitnessSim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The moment after an outage: every charger of a fleet reconnects at once, over plain WebSocket and TLS,
/// through nginx and through OCPP Witness, measured in one run.
struct ReconnectBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconnect",
        abstract: "A reconnect storm over ws:// and wss://: time until every charger is booted again, through nginx and OCPP Witness.",
        discussion: """
            For each transport (plain with --chargers, TLS with --tls-chargers) and each set-up: the chargers connect through the
            proxy to a CSMS simulator and boot (BootNotification, StatusNotification); the memory the proxy gained per charger is
            noted. Then the backend goes away (its connections are reset, so the proxy drops every charger), comes back on the same
            port, and every charger reconnects at once, retrying after --retry-ms (with jitter) when refused, and boots again.
            Printed per run: time until all are booted, upgrades (and TLS handshakes) per second over the storm, median and p99
            time-to-boot, failed attempts, the proxy's CPU seconds for the storm and memory per charger; then OCPP Witness's figures
            as ratios of nginx's. With TLS, nginx and OCPP Witness both terminate the chargers' TLS and open their own to the
            backend, on the same certificates (made with openssl for the run). Run it from a release build (`make bench-reconnect`).
            """
    )

    @Option(help: "Chargers in the plain (ws://) storm (0 skips it).")
    var chargers: Int = 10_000

    @Option(help: "Chargers in the TLS (wss://) storm (0 skips it).")
    var tlsChargers: Int = 2_000

    @Option(help: ArgumentHelp("Set-ups, comma-separated: nginx, witness.", valueName: "LIST"))
    var setups: String = "nginx,witness"

    @Option(help: "Milliseconds a charger waits before trying again after a failed attempt (plus up to as much again, drawn per charger).")
    var retryMs: Int = 250

    @Option(help: "Seconds a storm may take before the chargers still offline count as lost.")
    var stormSeconds: Double = 120

    @Option(help: ArgumentHelp("Folder with the OCA schemas, for OCPP Witness's live validation.", valueName: "DIR"))
    var schemas: String?

    @Option(help: ArgumentHelp("nginx binary.", valueName: "PATH"))
    var nginx: String = "/usr/sbin/nginx"

    @Option(help: ArgumentHelp("The ocpp-witness binary run as the proxy (default: this one); another build's, to compare two builds in one run.", valueName: "PATH"))
    var witness: String?

    @Flag(
        inversion: .prefixedNo,
        help: "Let nginx resume its TLS sessions to the backend (its default). OCPP Witness opens every backend connection with a full handshake; --no-nginx-session-reuse compares like with like."
    )
    var nginxSessionReuse = true

    func validate() throws {
        for setup in self.setups.split(separator: ",") where !["nginx", "witness"].contains(setup.trimmingCharacters(in: .whitespaces)) {
            throw ValidationError("--setups: unknown set-up '\(setup)'; choose from nginx, witness")
        }
        if self.chargers < 0 || self.tlsChargers < 0 || self.chargers + self.tlsChargers == 0 {
            throw ValidationError("--chargers and --tls-chargers must not be negative, and one of them positive")
        }
    }

    struct Storm {
        var setup: String
        var tls: Bool
        var chargers: Int
        var booted = 0
        var allBootedSeconds: Double?
        var medianSeconds = 0.0
        var p99Seconds = 0.0
        var failedAttempts = 0
        var proxyCPUSeconds = 0.0
        var bytesPerCharger = 0.0
        var firstConnectFailures = 0
        /// OCPP Witness's live page with every charger connected: median milliseconds and bytes of its first load.
        var page: (pageMillis: Double, pageBytes: Int, stateMillis: Double, stateBytes: Int, rows: Int)?
        /// OCPP Witness's recorder over the run: whether it kept up with the storm's connection records and frames.
        var recorder: String?

        var rate: Double { self.allBootedSeconds.map { Double(self.booted) / max($0, 0.001) } ?? 0 }
    }

    func run() async throws {
        let openFiles = OpenFileLimit.raise(wanted: 200_000)
        // Each proxy process holds two descriptors per charger (nginx spreads them over its workers).
        let fits = OpenFileLimit.chargers(within: openFiles)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("witness-storm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let setups = self.setups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        print("OCPP Witness reconnect storm — \(machineDescription())")
        print("retry after \(self.retryMs)–\(2 * self.retryMs) ms; a charger is back when its BootNotification and StatusNotification are answered")
        print("nginx resumes its TLS sessions to the backend: \(self.nginxSessionReuse ? "yes (its default)" : "no (--no-nginx-session-reuse)")\n")
        let certificates = self.tlsChargers > 0 ? try StormCertificates.make(in: work) : nil
        var storms: [Storm] = []
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        if max(self.chargers, self.tlsChargers) > fits {
            print("note: the open-file limit is \(openFiles) per process (its hard limit could not be raised): one OCPP Witness process holds \(fits) chargers, so the storms run with at most that many\n")
        }
        for (tls, wanted) in [(false, self.chargers), (true, self.tlsChargers)] where wanted > 0 {
            let count = min(wanted, fits)
            for setup in setups {
                if setup == "nginx" && !FileManager.default.isExecutableFile(atPath: self.nginx) {
                    print("nginx: skipped, \(self.nginx) not installed (`make bench-reconnect` installs it)")
                    continue
                }
                let storm = try await self.storm(setup, tls: tls, chargers: count, certificates: certificates, work: work, group: group)
                Self.report(storm)
                storms.append(storm)
            }
        }
        Self.printRatios(storms)
        try? await group.shutdownGracefully()
    }

    // MARK: One storm

    private func storm(
        _ setup: String, tls: Bool, chargers: Int, certificates: StormCertificates?, work: String, group: MultiThreadedEventLoopGroup
    ) async throws -> Storm {
        // The backend runs in a process of its own: its sockets do not count against this one's limit.
        let csmsPort = try freePort()
        var csmsArguments = ["simulate", "csms", "--listen", "127.0.0.1:\(csmsPort)", "--ocpp-version", "1.6", "--log-level", "error"]
        if tls, let certificates { csmsArguments += ["--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey] }
        let csmsLog = work + "/csms-\(csmsPort).log"
        var backend = try Child.start(selfPath(), csmsArguments, log: csmsLog)
        // Whichever backend runs when the storm ends (or fails) is stopped with it.
        defer { backend.stop() }
        try await backend.waitUntilListening(on: csmsPort)
        let target = try await self.startTarget(setup, tls: tls, csmsPort: csmsPort, certificates: certificates, work: work)
        defer { target.stop() }
        var options = OCPPClientOptions(subprotocols: ["ocpp1.6"], connectTimeout: .seconds(30))
        if tls, let certificates {
            options.tls = certificates.clientConfiguration()
            options.sslContext = try NIOSSLContext(configuration: certificates.clientConfiguration())
        }
        let base = try WebSocketURL(parsing: "\(tls ? "wss" : "ws")://127.0.0.1:\(target.port)")
        let clientOptions = options
        var result = Storm(setup: setup, tls: tls, chargers: chargers)

        // Everyone connects and boots, 256 at a time.
        let idle = target.probe.residentBytes
        var endpoints: [OCPPEndpoint?] = Array(repeating: nil, count: chargers)
        await withTaskGroup(of: (Int, OCPPEndpoint?).self) { tasks in
            var launched = 0
            func launch() {
                let index = launched
                launched += 1
                tasks.addTask { (index, try? await Self.connectAndBoot(base, index: index, options: clientOptions, group: group)) }
            }
            while launched < min(256, chargers) { launch() }
            for await (index, endpoint) in tasks {
                endpoints[index] = endpoint
                if launched < chargers { launch() }
            }
        }
        result.firstConnectFailures = endpoints.filter { $0 == nil }.count
        try await Task.sleep(for: .milliseconds(500))
        result.bytesPerCharger = Double(target.probe.residentBytes - idle) / Double(max(1, chargers - result.firstConnectFailures))
        if let adminPort = target.adminPort { result.page = try Self.measurePage(adminPort) }

        // The backend goes away; the proxy drops every charger.
        backend.stop()
        for endpoint in endpoints.compactMap({ $0 }) { await endpoint.waitClosed() }
        backend = try Child.start(selfPath(), csmsArguments, log: csmsLog)
        try await backend.waitUntilListening(on: csmsPort)

        // And every charger comes back at once.
        let cpuBefore = target.probe.cpuTime
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int64(self.stormSeconds * 1000))
        let retry = self.retryMs
        let outcomes = await withTaskGroup(of: (seconds: Double?, failures: Int, endpoint: OCPPEndpoint?).self) { tasks in
            for index in 0..<chargers {
                tasks.addTask {
                    var failures = 0
                    var generator = SystemRandomNumberGenerator()
                    while clock.now < deadline {
                        if let endpoint = try? await Self.connectAndBoot(base, index: index, options: clientOptions, group: group) {
                            let elapsed = clock.now - start
                            return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, failures, endpoint)
                        }
                        failures += 1
                        try? await Task.sleep(for: .milliseconds(retry + Int.random(in: 0...retry, using: &generator)))
                    }
                    return (nil, failures, nil)
                }
            }
            var all: [(seconds: Double?, failures: Int, endpoint: OCPPEndpoint?)] = []
            for await outcome in tasks { all.append(outcome) }
            return all
        }
        result.proxyCPUSeconds = (target.probe.cpuTime - cpuBefore).total
        let times = outcomes.compactMap(\.seconds).sorted()
        result.booted = times.count
        result.failedAttempts = outcomes.map(\.failures).reduce(0, +)
        result.allBootedSeconds = times.count == chargers ? times.last : nil
        if !times.isEmpty {
            result.medianSeconds = times[times.count / 2]
            result.p99Seconds = times[min(times.count - 1, Int(Double(times.count) * 0.99))]
        }
        for outcome in outcomes { outcome.endpoint?.channel.close(promise: nil) }
        if let statistics = target.statisticsFile {
            // Stopped here, not by the deferred stop, so that it writes its statistics first.
            target.stop()
            result.recorder = recorderReport(statistics: statistics, log: target.log)
        }
        return result
    }

    /// Connects one charger and boots it; throws when any step fails.
    private static func connectAndBoot(_ base: WebSocketURL, index: Int, options: OCPPClientOptions, group: any EventLoopGroup) async throws -> OCPPEndpoint {
        var url = base
        url.pathPrefix = "/STORM-\(index)"
        let endpoint = try await OCPPClient.connect(to: url, options: options, group: group)
        do {
            _ = try await endpoint.call(
                "BootNotification", ["chargePointVendor": "Storm Labs", "chargePointModel": "SC-1", "chargePointSerialNumber": .string("SN-\(index)")],
                timeout: .seconds(30)
            ).payload()
            _ = try await endpoint.call(
                "StatusNotification", ["connectorId": 1, "errorCode": "NoError", "status": "Available"], timeout: .seconds(30)
            ).payload()
            return endpoint
        } catch {
            endpoint.channel.close(promise: nil)
            throw error
        }
    }

    // MARK: Set-ups

    struct Target {
        var port: Int
        /// OCPP Witness's admin API and live page.
        var adminPort: Int?
        var probe: ProcessProbe
        var child: Child
        /// Where OCPP Witness writes its final counts when it stops.
        var statisticsFile: String?
        var log: String
        func stop() { self.child.stop() }
    }

    private func startTarget(_ setup: String, tls: Bool, csmsPort: Int, certificates: StormCertificates?, work: String) async throws -> Target {
        let port = try freePort()
        let directory = work + "/\(setup)-\(tls ? "tls" : "plain")-\(port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let child: Child
        var adminPort: Int?
        var statisticsFile: String?
        let log: String
        if setup == "nginx" {
            let nginxTLS = tls ? certificates.map {
                NginxProxyConfiguration.TLS(
                    certificate: $0.serverCertificate, key: $0.serverKey, caCertificate: $0.caCertificate, sessionReuse: self.nginxSessionReuse
                )
            } : nil
            let config = try NginxProxyConfiguration(port: port, backendPort: csmsPort, directory: directory, tls: nginxTLS).write()
            log = directory + "/stderr.log"
            child = try Child.start(self.nginx, ["-c", config, "-p", directory], log: log)
        } else {
            var arguments = [
                "proxy", "--listen", "127.0.0.1:\(port)", "--upstream", "\(tls ? "wss" : "ws")://127.0.0.1:\(csmsPort)",
                "--capture", directory + "/capture", "--log-level", "notice",
            ] + (self.schemas.map { ["--schemas", $0] } ?? [])
            if tls, let certificates {
                arguments += ["--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey, "--upstream-ca", certificates.caCertificate]
            }
            // With the admin API and the live page, as in a pilot; its first load is measured with the fleet connected.
            let admin = try freePort()
            try String(repeating: "storm-token-", count: 3).write(toFile: directory + "/admin-token", atomically: true, encoding: .utf8)
            arguments += ["--admin", "127.0.0.1:\(admin)", "--admin-token-file", directory + "/admin-token"]
            adminPort = admin
            statisticsFile = directory + "/statistics.json"
            arguments += ["--statistics-file", directory + "/statistics.json"]
            log = directory + "/proxy.log"
            child = try Child.start(self.witness ?? selfPath(), arguments, log: log)
        }
        try await child.waitUntilListening(on: port)
        return Target(
            port: port, adminPort: adminPort, probe: ProcessProbe(pid: child.pid, includeChildren: setup == "nginx"), child: child,
            statisticsFile: statisticsFile, log: log
        )
    }

    /// The live page's first load as a browser does it: the page, then the first page of the state; the
    /// median of five of each.
    private static func measurePage(_ port: Int) throws -> (pageMillis: Double, pageBytes: Int, stateMillis: Double, stateBytes: Int, rows: Int) {
        func timed(_ path: String) throws -> (Double, Int) {
            var times: [Double] = []
            var bytes = 0
            for _ in 0..<5 {
                let clock = ContinuousClock()
                let start = clock.now
                let answer = try httpGet(port: port, path: path)
                let elapsed = clock.now - start
                guard answer.status == 200 else { throw ValidationError("live page: GET \(path) answered \(answer.status)") }
                times.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                bytes = answer.bytes
            }
            return (times.sorted()[times.count / 2], bytes)
        }
        let page = try timed("/")
        let state = try timed("/api/state?offset=0&limit=200")
        return (page.0, page.1, state.0, state.1, 200)
    }

    // MARK: Output

    private static func report(_ storm: Storm) {
        let transport = storm.tls ? "wss" : "ws "
        let all = storm.allBootedSeconds.map { String(format: "%6.2f s", $0) } ?? "  —     "
        Swift.print(
            "\(transport) \(storm.setup.padding(toLength: 8, withPad: " ", startingAt: 0)) \(storm.chargers) chargers: all booted in \(all) "
                + "(\(storm.booted)/\(storm.chargers)), \(Int(storm.rate)) \(storm.tls ? "TLS handshakes" : "upgrades")/s, "
                + String(format: "median %.2f s, p99 %.2f s, ", storm.medianSeconds, storm.p99Seconds)
                + "\(storm.failedAttempts) failed attempts, "
                + String(format: "proxy CPU %.2f s, %.1f KiB per charger", storm.proxyCPUSeconds, storm.bytesPerCharger / 1024)
                + (storm.firstConnectFailures > 0 ? "; \(storm.firstConnectFailures) could not connect before the storm" : "")
        )
        if let page = storm.page {
            Swift.print(
                String(
                    format: "    live page with %d chargers connected: GET / %.1f ms (%.0f KiB), GET /api/state %.1f ms (first %d rows, %.0f KiB)",
                    storm.chargers - storm.firstConnectFailures, page.pageMillis, Double(page.pageBytes) / 1024, page.stateMillis, page.rows,
                    Double(page.stateBytes) / 1024
                )
            )
        }
        if let recorder = storm.recorder { Swift.print("    \(recorder)") }
        // Each storm's line as soon as it is measured, also when the output is a file.
        fflush(nil)
    }

    /// OCPP Witness's figures as ratios of nginx's, per transport (below 1 is better for times, CPU and memory).
    private static func printRatios(_ storms: [Storm]) {
        for tls in [false, true] {
            guard let nginx = storms.first(where: { $0.setup == "nginx" && $0.tls == tls }),
                let witness = storms.first(where: { $0.setup == "witness" && $0.tls == tls })
            else { continue }
            func ratio(_ ours: Double, _ theirs: Double) -> String { theirs > 0 ? String(format: "%.2f", ours / theirs) : "—" }
            Swift.print(
                "\n\(tls ? "wss" : "ws"): OCPP Witness / nginx — time to all booted "
                    + "\(ratio(witness.allBootedSeconds ?? .infinity, nginx.allBootedSeconds ?? 0)), p99 \(ratio(witness.p99Seconds, nginx.p99Seconds)), "
                    + "CPU \(ratio(witness.proxyCPUSeconds, nginx.proxyCPUSeconds)), memory per charger \(ratio(witness.bytesPerCharger, nginx.bytesPerCharger))"
            )
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 and localhost, made with openssl for one benchmark run.
struct StormCertificates {
    let directory: String
    var caCertificate: String { self.directory + "/ca.pem" }
    var serverCertificate: String { self.directory + "/server.pem" }
    var serverKey: String { self.directory + "/server.key" }

    static func make(in work: String) throws -> StormCertificates {
        let certificates = StormCertificates(directory: work + "/certificates")
        let directory = certificates.directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: directory + "/san.cnf", atomically: true, encoding: .utf8)
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try Self.openssl(["req", "-x509"] + curve + ["-days", "2", "-subj", "/CN=Storm CA", "-keyout", directory + "/ca.key", "-out", certificates.caCertificate])
        try Self.openssl(["req"] + curve + ["-subj", "/CN=localhost", "-keyout", certificates.serverKey, "-out", directory + "/server.csr"])
        try Self.openssl([
            "x509", "-req", "-in", directory + "/server.csr", "-CA", certificates.caCertificate, "-CAkey", directory + "/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", directory + "/san.cnf", "-out", certificates.serverCertificate,
        ])
        return certificates
    }

    func clientConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(self.caCertificate)
        return configuration
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = nil
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("openssl \(arguments.first ?? "") failed: \(message)") }
    }
}
