import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OCPPWire
import WitnessCapture
import WitnessProxy
import WitnessSim

/// A CSMS simulator behind a real proxy with a real capture, on loopback ports chosen by the OS.
package final class ProxyHarness: Sendable {
    package let group: MultiThreadedEventLoopGroup
    package let csms: CSMSSimulator
    package let proxy: WitnessProxyServer
    package let recorder: CaptureWriter
    package let captureDirectory: String
    package let proxyURL: WebSocketURL

    package static func start(
        csms csmsConfiguration: CSMSSimulator.Configuration = .init(),
        upstreamScheme: String = "ws", upstreamOverride: String? = nil, upstreamPrefix: String = "/ocpp",
        configure: (inout ProxyConfiguration) -> Void = { _ in }, redactSecrets: Bool = true,
        proxyScheme: String = "ws", recording: Bool = true,
        recorderConfigure: (inout CaptureWriter.Configuration) -> Void = { _ in }, observer: (@Sendable (CaptureRecord) -> Void)? = nil
    ) async throws -> ProxyHarness {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let csms = CSMSSimulator(configuration: csmsConfiguration, group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("witness-test-\(UUID().uuidString)").path
        var recorderConfiguration = CaptureWriter.Configuration(directory: directory, fsync: .never, redactSecrets: redactSecrets)
        recorderConfigure(&recorderConfiguration)
        let recorder = try CaptureWriter(configuration: recorderConfiguration, header: CaptureHeader(backendName: "SimCSMS"), observer: observer)
        let upstream = try WebSocketURL(
            parsing: upstreamOverride ?? "\(upstreamScheme)://127.0.0.1:\(csmsAddress.port ?? 0)\(upstreamPrefix)"
        )
        var configuration = ProxyConfiguration(
            listenHost: "127.0.0.1", listenPort: 0, upstream: upstream, backendName: "SimCSMS",
            handshakeTimeout: .seconds(10), upstreamConnectTimeout: .seconds(5)
        )
        configure(&configuration)
        var logger = Logger(label: "proxy-test")
        logger.logLevel = .critical
        // Without recording the proxy only forwards; the harness's capture then stays empty.
        let proxy = try WitnessProxyServer(configuration: configuration, recorder: recording ? recorder : nil, logger: logger, group: group)
        let address = try await proxy.start()
        let proxyURL = try WebSocketURL(parsing: "\(proxyScheme)://127.0.0.1:\(address.port ?? 0)")
        return ProxyHarness(group: group, csms: csms, proxy: proxy, recorder: recorder, directory: directory, proxyURL: proxyURL)
    }

    private init(
        group: MultiThreadedEventLoopGroup, csms: CSMSSimulator, proxy: WitnessProxyServer, recorder: CaptureWriter,
        directory: String, proxyURL: WebSocketURL
    ) {
        self.group = group
        self.csms = csms
        self.proxy = proxy
        self.recorder = recorder
        self.captureDirectory = directory
        self.proxyURL = proxyURL
    }

    /// A simulated charger through the proxy; `stop()` switches it off before the event loops go.
    package func charger(_ profile: ChargerProfile, tls: OCPPClientOptions? = nil) -> ChargerSimulator {
        let charger = ChargerSimulator(profile: profile, baseURL: self.proxyURL, tls: tls, group: self.group)
        self.chargers.withLockedValue { $0.append(charger) }
        return charger
    }

    private let chargers = NIOLockedValueBox<[ChargerSimulator]>([])

    /// Waits until the proxy has recorded `count` closed pairs (or the time runs out).
    package func waitForClosedPairs(_ count: Int, seconds: Double = 10) async {
        let deadline = Date().addingTimeInterval(seconds)
        while self.proxy.statistics.closed < count && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Everything captured so far.
    package func records() async throws -> [CaptureRecord] {
        await self.recorder.flush()
        return Array(try CaptureReader(paths: [self.captureDirectory]))
    }

    package func frames(_ chargePoint: String) async throws -> [CaptureRecord] {
        try await self.records().filter { $0.kind == "frame" && $0.chargePoint == chargePoint }
    }

    /// Stops everything and removes the capture, unless the caller goes on reading it (and removes it itself).
    package func stop(keepingCapture: Bool = false) async {
        // A charger still rebooting after a Reset would otherwise dial event loops that are gone.
        for charger in self.chargers.withLockedValue({ $0 }) { await charger.stop() }
        await self.proxy.shutdown(grace: .seconds(1))
        await self.csms.stop()
        self.recorder.close()
        if !keepingCapture { try? FileManager.default.removeItem(atPath: self.captureDirectory) }
        try? await self.group.shutdownGracefully()
    }
}

extension ProxyHarness {
    /// Runs `body` with this harness and stops it afterwards, also when `body` throws (a failed `#require`,
    /// a timeout), so a failing test leaves no event loops, listeners or capture folders behind:
    /// `try await ProxyHarness.start().run { harness in ... }`.
    package func run<T>(_ body: (ProxyHarness) async throws -> T) async throws -> T {
        let value: T
        do {
            value = try await body(self)
        } catch {
            await self.stop()
            throw error
        }
        await self.stop()
        return value
    }
}
