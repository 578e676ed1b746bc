import ArgumentParser
import Foundation
import Logging
import CoreMetrics
import NIOCore
import NIOPosix
import NIOSSL
import OCPPSchema
import OCPPWire
import ServiceLifecycle
import UnixSignals
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessCLISupport
import WitnessMetrics
import WitnessLive
import WitnessProxy

struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Forward chargers to a backend, recording every message.",
        discussion: """
            Chargers connect to --listen as they would to the backend; each connection is dialled through to
            --upstream with the charger's path appended (ws://csms:9000/steve/ws + /CP-1 → ws://csms:9000/steve/ws/CP-1),
            with its query, subprotocol offer and Authorization header. Frames are forwarded unchanged and recorded
            as JSON Lines in --capture. Stop with Ctrl-C (SIGINT) or SIGTERM: connections are closed with 1001 and
            the capture is flushed.
            """
    )

    @Option(help: ArgumentHelp("Address chargers connect to.", valueName: "HOST:PORT"), transform: HostAndPort.parse)
    var listen: HostAndPort

    @Option(help: ArgumentHelp("The real backend: ws://HOST:PORT[/prefix] or wss://...", valueName: "URL"))
    var upstream: String

    @Option(help: ArgumentHelp("Folder for capture files (created if missing).", valueName: "DIR"))
    var capture: String = "captures"

    @Option(help: ArgumentHelp("Name of the backend in captures and reports.", valueName: "NAME"))
    var backendName: String?

    @Option(help: ArgumentHelp("Name of this instance among several (a witness_instance label on every /metrics sample, and the capture header).", valueName: "NAME"))
    var instance: String?

    @Flag(help: "Keep Basic-auth passwords and authorization keys in the capture (redacted by default).")
    var captureSecrets = false

    @Option(help: ArgumentHelp("Start a new capture file after this many MiB.", valueName: "MIB"))
    var rotateMib: Int = 256

    @Option(help: ArgumentHelp("When to fsync the capture: never, batch, or a number of milliseconds.", valueName: "POLICY"))
    var fsync: String = "1000"

    @Option(help: ArgumentHelp("Ed25519 private key (PEM, `openssl genpkey -algorithm ed25519`) that signs each capture file's seal; `verify --key` checks it with the public half.", valueName: "FILE"))
    var sealKey: String?

    @Option(help: ArgumentHelp("Certificate chain (PEM) for a wss:// listener.", valueName: "FILE"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("Private key (PEM) for a wss:// listener.", valueName: "FILE"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("Require charger client certificates signed by this CA (security profile 3).", valueName: "FILE"))
    var chargerCa: String?

    @Option(help: ArgumentHelp("Trust this CA (PEM) for a wss:// upstream instead of the system store.", valueName: "FILE"))
    var upstreamCa: String?

    @Option(help: ArgumentHelp("Client certificate (PEM) presented to the backend (mutual TLS).", valueName: "FILE"))
    var upstreamCert: String?

    @Option(help: ArgumentHelp("Key (PEM) of --upstream-cert.", valueName: "FILE"))
    var upstreamKey: String?

    @Flag(help: "Do not verify the backend's certificate. Lab use only: anyone in between can read the traffic.")
    var upstreamInsecure = false

    @Option(help: ArgumentHelp("Oldest TLS version a charger may use: 1.2 (default; OCPP security profiles 2 and 3) or 1.3; 1.0 or 1.1 only for a legacy charger, and the open record says so.", valueName: "VERSION"), transform: Self.tlsVersion)
    var tlsMinVersion: TLSVersion = .tlsv12

    @Option(help: ArgumentHelp("Oldest TLS version accepted from a wss:// backend: 1.2 (default) or 1.3; 1.0 or 1.1 only for a legacy backend, and the open record says so.", valueName: "VERSION"), transform: Self.tlsVersion)
    var upstreamTlsMinVersion: TLSVersion = .tlsv12

    @Option(help: ArgumentHelp("Largest WebSocket frame accepted from either side, in bytes.", valueName: "BYTES"))
    var maxFrameBytes: Int = 1 << 20

    @Option(help: ArgumentHelp("Largest message (all fragments) accepted from either side, in bytes.", valueName: "BYTES"))
    var maxMessageBytes: Int = 4 << 20

    @Option(help: ArgumentHelp("Seconds allowed for the upgrade on both sides.", valueName: "SECONDS"))
    var handshakeTimeout: Int = 15

    @Option(help: ArgumentHelp("Seconds a closing handshake may take, from the first close frame to both sockets closed; past it the proxy closes both and records which side did not answer.", valueName: "SECONDS"))
    var closeTimeout: Int = 10

    @Option(help: ArgumentHelp("Seconds a charge point may be gone (no connection open) before live analysis and the live page release what they keep of it: its open transactions (reported as tx.notStopped) and its frames. Written into the capture header, so that report releases alike. At least the longest window of the policy's checks; at most 30 days.", valueName: "SECONDS"))
    var stateRetention: Double = Departures.defaultRetentionSeconds

    @Option(help: ArgumentHelp("Bytes delay and bandwidth faults may hold back on one connection before the proxy stops reading its sender.", valueName: "BYTES"))
    var maxHeldBytes: Int = 1 << 20

    @Option(help: ArgumentHelp("Bytes delay and bandwidth faults may hold back over all connections together.", valueName: "BYTES"))
    var maxHeldBytesTotal: Int = 256 << 20

    @Flag(help: "Refuse (400) or fail (1002) what breaks RFC 6455, as a strict server would. By default it is carried to the other side as it came and recorded as a finding.")
    var strictWebSocket = false

    @Option(help: ArgumentHelp("Fault policy (YAML) to inject delays, drops, disconnects, malformed messages... (docs/policies.md).", valueName: "FILE"))
    var policy: String?

    @Option(help: ArgumentHelp("When the proxy stops, write its final counts (connections, messages, the recorder's records, losses and queue peak) here as JSON.", valueName: "FILE"))
    var statisticsFile: String?

    @Option(help: ArgumentHelp("Serve the admin API (connections, policy, one-off disconnects, /metrics) on this loopback address.", valueName: "HOST:PORT"), transform: HostAndPort.parse)
    var admin: HostAndPort?

    @Option(help: ArgumentHelp("File holding the admin token (at least 16 characters); without it one is generated into the capture folder.", valueName: "FILE"))
    var adminTokenFile: String?

    @Option(
        name: .customLong("admin-allow-host"),
        help: ArgumentHelp(
            "A host name the admin API and live page answer to besides loopback addresses and localhost (a name in Host or Origin; repeatable). Others are refused with 403 (DNS rebinding).",
            valueName: "NAME"
        )
    )
    var adminAllowHosts: [String] = []

    @Option(help: ArgumentHelp("Folder with the OCA schemas (v16, v201, v21) for live validation. Default: $OCPP_WITNESS_SCHEMAS, share/ocpp-witness/schemas beside the binary, the checkout, ./schemas.", valueName: "DIR"))
    var schemas: String?

    @Option(help: "Validation profile for live analysis: strict or lenient.")
    var profile: ValidationProfile = .strict

    @Flag(help: "Do not analyse traffic live (forward and record only).")
    var noValidate = false

    @Flag(help: "Forward only: no capture and no live analysis (to measure the forwarding cost alone).")
    var noCapture = false

    @Flag(help: "Drop the chargers' permessage-deflate offers, so both hops run uncompressed (by default they are forwarded and the peers compress as they would without the proxy).")
    var noCompression = false

    @OptionGroup var logging: LoggingOptions

    static func tlsVersion(_ text: String) throws -> TLSVersion {
        switch text {
        case "1.0", "1": return .tlsv1
        case "1.1": return .tlsv11
        case "1.2": return .tlsv12
        case "1.3": return .tlsv13
        default: throw ValidationError("a TLS version is 1.0, 1.1, 1.2 or 1.3, got '\(text)'")
        }
    }

    func validate() throws {
        _ = try BoundedDuration.option("--handshake-timeout", seconds: Double(self.handshakeTimeout))
        _ = try BoundedDuration.option("--state-retention", seconds: self.stateRetention)
        guard self.closeTimeout > 0 && self.closeTimeout <= 3600 else {
            throw ValidationError("--close-timeout is a number of seconds from 1 to 3600, got \(self.closeTimeout)")
        }
        guard self.maxHeldBytes > 0, self.maxHeldBytesTotal >= self.maxHeldBytes else {
            throw ValidationError("--max-held-bytes must be positive and at most --max-held-bytes-total (\(self.maxHeldBytes) > \(self.maxHeldBytesTotal))")
        }
        if (self.tlsCert == nil) != (self.tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if self.chargerCa != nil && self.tlsCert == nil {
            throw ValidationError("--charger-ca needs a TLS listener (--tls-cert and --tls-key)")
        }
        if (self.upstreamCert == nil) != (self.upstreamKey == nil) {
            throw ValidationError("--upstream-cert and --upstream-key go together")
        }
        if let sealKey {
            let key: SealKey
            do {
                key = try SealKey(pemFile: sealKey)
            } catch {
                throw ValidationError("--seal-key \(error)")
            }
            guard key.canSign else { throw ValidationError("--seal-key \(sealKey): a public key cannot sign; give the private key") }
        }
        if FsyncPolicy(self.fsync) == nil {
            throw ValidationError("--fsync expects never, batch or a number of milliseconds, got '\(self.fsync)'")
        }
        guard self.rotateMib > 0, self.maxFrameBytes > 0, self.maxMessageBytes >= self.maxFrameBytes, self.handshakeTimeout > 0 else {
            throw ValidationError("--rotate-mib, --max-frame-bytes and --handshake-timeout must be positive, and --max-message-bytes at least --max-frame-bytes")
        }
        do {
            _ = try WebSocketURL(parsing: self.upstream)
        } catch {
            throw ValidationError("--upstream: \(error)")
        }
    }

    /// What the capture header says of this proxy beyond the usual: where it listens, which instance it is.
    /// `retention`: the state retention live analysis applies, so that `report` releases alike.
    private func headerExtra(retention: Double) -> JSONObject {
        var extra: JSONObject = ["listen": .string(self.listen.description), Departures.headerField: .double(retention)]
        if let instance { extra["instance"] = .string(instance) }
        return extra
    }

    /// The admin token from --admin-token-file, or a new random one written next to the capture (mode 600).
    private func adminToken(logger: Logger) throws -> String {
        if let file = self.adminTokenFile {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read --admin-token-file \(file)") }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.count >= 16 else { throw ValidationError("the admin token in \(file) must have at least 16 characters") }
            return token
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        let path = self.capture + "/admin-token"
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write the admin token to \(path)")
        }
        logger.notice("admin token written to \(path)")
        return token
    }

    /// The Prometheus backend for what the proxy, the recorder, the fault engine and live analysis count.
    /// `instance` names this proxy among several: every sample then carries `witness_instance` (Prometheus
    /// keeps `instance` for the scrape target itself).
    static func metricsExposition(instance: String?) -> PrometheusExposition {
        let help = [WitnessProxyServer.metricHelp, CaptureWriter.metricHelp, ChaosEngine.metricHelp, LiveAnalysis.metricHelp]
            .reduce(into: [String: String]()) { $0.merge($1) { first, _ in first } }
        return PrometheusExposition(
            help: help, timerBuckets: CaptureWriter.metricTimerBuckets, commonLabels: instance.map { [("witness_instance", $0)] } ?? []
        )
    }

    func run() async throws {
        let logger = self.logging.makeLogger("ocpp-witness.proxy")
        // Trapped before anything else, so a stop sent while the proxy starts is kept and carried out.
        let termination = await TerminationSignal.arm()
        let openFiles = OpenFileLimit.raise()
        logger.info("open-file limit \(openFiles): room for about \(OpenFileLimit.chargers(within: openFiles)) chargers (two sockets each)")
        // Served on the admin API's /metrics; without one, the modules' metrics stay no-ops.
        let exposition = self.admin == nil ? nil : Self.metricsExposition(instance: self.instance)
        if let exposition { MetricsSystem.bootstrap(exposition) }
        let upstream = try WebSocketURL(parsing: self.upstream)
        if self.upstreamInsecure && upstream.secure {
            logger.warning("backend certificate verification is OFF (--upstream-insecure)")
        }
        var configuration = ProxyConfiguration(
            listenHost: self.listen.host, listenPort: self.listen.port, upstream: upstream, backendName: self.backendName,
            maximumFrameBytes: self.maxFrameBytes, maximumMessageBytes: self.maxMessageBytes,
            handshakeTimeout: .seconds(Int64(self.handshakeTimeout))
        )
        configuration.forwardsCompression = !self.noCompression
        configuration.strictWebSocket = self.strictWebSocket
        configuration.closingTimeout = .seconds(Int64(self.closeTimeout))
        configuration.heldBytesPerConnection = self.maxHeldBytes
        configuration.heldBytesTotal = self.maxHeldBytesTotal
        if let tlsCert, let tlsKey {
            configuration.chargerTLS = .init(
                certificateChainFile: tlsCert, privateKeyFile: tlsKey, clientCAFile: self.chargerCa, minimumVersion: self.tlsMinVersion
            )
        }
        configuration.upstreamTLS = .init(
            caFile: self.upstreamCa, clientCertificateFile: self.upstreamCert, clientKeyFile: self.upstreamKey,
            verifyCertificate: !self.upstreamInsecure, minimumVersion: self.upstreamTlsMinVersion
        )
        for (flag, version) in [("--tls-min-version", self.tlsMinVersion), ("--upstream-tls-min-version", self.upstreamTlsMinVersion)]
        where version == .tlsv1 || version == .tlsv11 {
            logger.warning("\(flag) lowers the TLS minimum below 1.2 (deprecated by RFC 8996; OCPP security profiles 2 and 3 require 1.2)")
        }

        if let policy {
            let loaded = try PolicyLoader.load(forCommand: policy)
            let text = FileManager.default.contents(atPath: policy).map { String(decoding: $0, as: UTF8.self) }
            configuration.faults = FaultInjection(ChaosEngine(policy: loaded), text: text)
            logger.notice("fault policy \(policy): seed \(loaded.seed), \(loaded.rules.count) rule(s)")
        } else if self.admin != nil {
            // The admin API can put a policy in force later.
            configuration.faults = FaultInjection()
        }
        // The live page's data, fed like live analysis from the records as written (so redacted alike).
        let checks = configuration.faults?.engine?.policy.checks ?? []
        // A retention never ends a check's window early (AnalyzerConfiguration.stateRetentionSeconds).
        let retention = max(self.stateRetention, checks.map(\.within).max() ?? 0)
        let board = self.admin != nil && !self.noCapture ? LiveBoard(stateRetentionSeconds: retention) : nil
        var live: LiveAnalysis?
        if !self.noValidate && !self.noCapture {
            let schemas = try SchemaRegistry.load(forCommand: self.schemas, hint: " (or run without live analysis: --no-validate)")
            var onDeviation: (@Sendable (Deviation) -> Void)?
            if let board { onDeviation = { deviation in board.deviation(deviation.json) } }
            live = LiveAnalysis(
                schemas: schemas, profile: self.profile, checks: checks, site: configuration.faults?.engine?.policy.site ?? SiteDeclaration(),
                stateRetentionSeconds: retention, logger: logger,
                onDeviation: onDeviation
            )
        }
        var observer: (@Sendable (CaptureRecord) -> Void)?
        switch (live, board) {
        case (let live?, let board?): observer = { record in
            board.record(record)
            live.consume(record)
        }
        case (let live?, nil): observer = { record in live.consume(record) }
        case (nil, let board?): observer = { record in board.record(record) }
        case (nil, nil): break
        }
        var recorderConfiguration = CaptureWriter.Configuration(
            directory: self.capture, rotateBytes: self.rotateMib << 20, fsync: FsyncPolicy(self.fsync) ?? .never,
            redactSecrets: !self.captureSecrets
        )
        recorderConfiguration.sealKey = try self.sealKey.map { try SealKey(pemFile: $0) }
        // A full disk: logged when it begins and when writing works again, not only counted at exit.
        recorderConfiguration.onWriteEpisode = { [logger] message in logger.error("\(message)") }
        let recorder = self.noCapture ? nil : try CaptureWriter(
            configuration: recorderConfiguration,
            header: CaptureHeader(
                backendName: self.backendName, upstream: upstream.description, policy: self.policy,
                seed: configuration.faults?.engine?.policy.seed,
                extra: self.headerExtra(retention: retention)
            ),
            observer: observer
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        // A proxy or admin API that cannot start (TLS files, address in use) leaves no header-only capture.
        func abandon() async {
            recorder?.closeDiscardingIfEmpty()
            try? await group.shutdownGracefully()
        }
        let proxy: WitnessProxyServer
        var adminServer: AdminServer?
        do {
            proxy = try WitnessProxyServer(configuration: configuration, recorder: recorder, logger: logger, group: group)
            if let admin, let faults = configuration.faults {
                let token = try self.adminToken(logger: logger)
                var verdicts: (@Sendable () -> JSONValue)?
                if let live { verdicts = { live.verdicts() } }
                adminServer = try AdminServer(
                    configuration: .init(host: admin.host, port: admin.port, token: token, allowedHosts: self.adminAllowHosts), proxy: proxy, faults: faults,
                    metrics: { exposition?.render() ?? "" },
                    board: board, verdicts: verdicts, logger: logger, group: group
                )
            }
        } catch {
            await abandon()
            throw error
        }

        // The services start together and stop, at SIGINT or SIGTERM, in reverse order: the policy watcher,
        // the admin API, the proxy (closing every pair), and last the recorder, which then writes what the
        // others recorded. A service that fails shuts the others down the same way.
        var services: [any Service] = []
        if let recorder { services.append(recorder) }
        let captureFolder = self.capture
        services.append(
            Started(proxy) {
                let address = try await proxy.start()
                logger.notice(
                    "OCPP Witness proxy on \(address), forwarding to \(upstream); \(recorder == nil ? "not recording (--no-capture)" : "capture in \(captureFolder)/")"
                )
            }
        )
        if let adminServer, let admin {
            let hasBoard = board != nil
            services.append(
                Started(adminServer) {
                    let address = try await adminServer.start()
                    logger.notice(
                        "admin API on http://\(address.ipAddress ?? admin.host):\(address.port ?? admin.port) (changes need the bearer token)\(hasBoard ? "; live page at /" : "")"
                    )
                }
            )
        }
        if let policy, let faults = configuration.faults { services.append(PolicyFileWatcher(path: policy, faults: faults, logger: logger)) }
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
                logger: logger
            )
        )
        // The signals were trapped at start-up rather than by the group, which traps them only once it runs;
        // a shutdown asked for before then is remembered by the group.
        let stopper = Task {
            guard let signal = await termination.wait() else { return }
            logger.notice("signal \(signal): closing connections and flushing the capture")
            await serviceGroup.triggerGracefulShutdown()
        }
        defer { stopper.cancel() }
        do {
            try await serviceGroup.run()
        } catch {
            await abandon()
            throw error
        }
        let stats = proxy.statistics
        let capture = recorder?.statistics ?? CaptureStatistics()
        logger.notice(
            "stopped: \(stats.accepted) connections accepted, \(stats.refused) refused, \(stats.messagesToCSMS) messages to the backend, \(stats.messagesToCharger) to chargers; \(capture.recordsWritten) records in \(capture.filesWritten) file(s), \(capture.recordsLost) lost; recorder queue peaked at \(capture.maximumQueueDepth) records"
        )
        if let statisticsFile {
            let json: JSONValue = [
                "connections": ["accepted": .int(stats.accepted), "refused": .int(stats.refused), "closed": .int(stats.closed)],
                "messages": ["toCSMS": .int(stats.messagesToCSMS), "toCharger": .int(stats.messagesToCharger)],
                "recorder": [
                    "recordsWritten": .int(capture.recordsWritten), "filesWritten": .int(capture.filesWritten), "bytesWritten": .int(capture.bytesWritten),
                    "recordsLost": .int(capture.recordsLost), "maximumQueueDepth": .int(capture.maximumQueueDepth),
                ],
            ]
            do {
                try (JSONWriter.string(json) + "\n").write(toFile: statisticsFile, atomically: true, encoding: .utf8)
            } catch {
                logger.error("cannot write --statistics-file \(statisticsFile): \(error)")
            }
        }
        if let live {
            let counts = live.countsByRule
            let summary = counts.keys.sorted().map { "\($0) \(counts[$0] ?? 0)" }.joined(separator: ", ")
            logger.notice("deviations seen live: \(counts.isEmpty ? "none" : summary); run `ocpp-witness report \(self.capture)` for the full report")
            let chargers = live.countsByChargePoint.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10)
            if !chargers.isEmpty {
                logger.notice("deviations per charge point: \(chargers.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
            }
            for pair in live.finish().pairs {
                let rules = pair.statistics.deviations.keys.sorted().map { "\($0) \(pair.statistics.deviations[$0] ?? 0)" }
                logger.notice(
                    "pair \(pair.verdict): \(pair.key.charger.label) × \(pair.key.backend)\(rules.isEmpty ? "" : " (" + rules.joined(separator: ", ") + ")")"
                )
            }
        }
        try? await group.shutdownGracefully()
        if capture.recordsLost > 0 {
            throw ExitCode(2)
        }
    }
}
