import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import OCPPWire
import WitnessCLISupport
import WitnessSim

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the charger or CSMS simulator on its own (tests, demos, load).",
        subcommands: [ChargerCommand.self, CSMSCommand.self]
    )
}

extension OCPPVersion: ExpressibleByArgument {}
extension ChargerQuirk: ExpressibleByArgument {}

struct ChargerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "charger",
        abstract: "Connect simulated chargers to a CSMS or a proxy.",
        discussion: """
            Each charger connects to URL/ID (ID = --id-prefix plus a number), boots, and then either runs a charging
            session (--scenario session) or sends Heartbeat and MeterValues CALLs, each waiting for its answer
            (--scenario load), so that --count chargers make a closed-loop load.
            """
    )

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case session, load
    }

    @Option(help: ArgumentHelp("CSMS or proxy address without the charger id: ws[s]://HOST:PORT[/prefix].", valueName: "URL"))
    var url: String

    @Option(help: "Number of chargers.")
    var count: Int = 1

    @Option(help: "Charger ids are this prefix followed by 1, 2, 3...")
    var idPrefix: String = "SIM-"

    @Option(help: "OCPP version: 1.6, 2.0.1 or 2.1.")
    var ocppVersion: OCPPVersion = .v16

    @Option(help: "What each charger does after booting: session or load.")
    var scenario: Scenario = .session

    @Option(help: "With --scenario load: CALLs per charger.")
    var messages: Int = 100

    @Option(help: "With --scenario load: stop after this many seconds even if --messages were not all sent.")
    var duration: Int = 60

    @Option(help: "With --scenario load: milliseconds between a charger's CALLs (0: as fast as answers come).")
    var intervalMs: Int = 0

    @Option(help: "Basic-auth password (the user is the charger id).")
    var password: String?

    @Option(help: "Vendor reported in BootNotification.")
    var vendor: String = "Witness Labs"

    @Option(help: "Model reported in BootNotification.")
    var model: String = "SimCharger 22"

    @Option(help: "Firmware version reported in BootNotification.")
    var firmware: String = "1.0.0"

    @Option(parsing: .singleValue, help: "Misbehave on purpose: registerGoesBackwards, timestampWithoutZone (repeatable).")
    var quirk: [ChargerQuirk] = []

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard self.count > 0 else { throw ValidationError("--count must be at least 1") }
        _ = try BoundedDuration.option("--duration", seconds: Double(self.duration))
        _ = try BoundedDuration.option("--interval-ms", seconds: Double(self.intervalMs) / 1000, allowsZero: true)
        do {
            _ = try WebSocketURL(parsing: self.url)
        } catch {
            throw ValidationError("--url: \(error)")
        }
    }

    func run() async throws {
        let logger = self.logging.makeLogger("ocpp-witness.simulate")
        let base = try WebSocketURL(parsing: self.url)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let clock = ContinuousClock()
        let started = clock.now
        let results = await withTaskGroup(of: (Int, Int, String?).self) { tasks in
            for index in 1...self.count {
                let profile = ChargerProfile(
                    id: "\(self.idPrefix)\(index)", vendor: self.vendor, model: self.model, firmware: self.firmware,
                    version: self.ocppVersion, password: self.password, quirks: Set(self.quirk)
                )
                tasks.addTask { [scenario, messages, duration, intervalMs] in
                    let charger = ChargerSimulator(profile: profile, baseURL: base, group: group)
                    do {
                        try await charger.connect()
                        try await charger.boot()
                        switch scenario {
                        case .session: try await charger.chargingSession()
                        case .load:
                            try await charger.load(
                                messages: messages, duration: .seconds(duration), interval: .milliseconds(intervalMs)
                            )
                        }
                        await charger.disconnect()
                        return (charger.counts.completed, charger.counts.errors, nil)
                    } catch {
                        await charger.disconnect()
                        return (charger.counts.completed, charger.counts.errors, "\(profile.id): \(error)")
                    }
                }
            }
            var all: [(Int, Int, String?)] = []
            for await result in tasks { all.append(result) }
            return all
        }
        let seconds = Double((clock.now - started).components.attoseconds) / 1e18 + Double((clock.now - started).components.seconds)
        try? await group.shutdownGracefully()
        let completed = results.reduce(0) { $0 + $1.0 }
        let errors = results.reduce(0) { $0 + $1.1 }
        let failed = results.compactMap(\.2)
        for failure in failed { logger.error("\(failure)") }
        print(
            "\(self.count) chargers: \(completed) CALLs answered, \(errors) errors, \(failed.count) chargers failed, "
                + "\(String(format: "%.1f", seconds)) s, \(String(format: "%.0f", Double(completed) / max(seconds, 0.001))) CALLs/s"
        )
        if !failed.isEmpty { throw ExitCode.failure }
    }
}

struct CSMSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csms",
        abstract: "Run the CSMS simulator: accepts chargers and answers like a well-behaved backend.",
        discussion: "Runs until Ctrl-C (SIGINT) or SIGTERM."
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT"), transform: HostAndPort.parse)
    var listen: HostAndPort = HostAndPort(host: "127.0.0.1", port: 9000)

    @Option(parsing: .upToNextOption, help: "OCPP versions to accept, in order of preference.")
    var ocppVersion: [OCPPVersion] = [.v201, .v16, .v21]

    @Option(help: "Require this Basic-auth password (answers 401 otherwise).")
    var password: String?

    @Option(help: ArgumentHelp("Certificate chain (PEM) for a wss:// listener.", valueName: "FILE"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("Private key (PEM) of --tls-cert.", valueName: "FILE"))
    var tlsKey: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if (self.tlsCert == nil) != (self.tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    func run() async throws {
        let logger = self.logging.makeLogger("ocpp-witness.csms")
        let termination = await TerminationSignal.arm()
        OpenFileLimit.raise()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        var tls: TLSConfiguration?
        if let tlsCert, let tlsKey {
            do {
                tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(tlsCert).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: tlsKey, format: .pem))
                )
            } catch {
                throw ValidationError("cannot read --tls-cert \(tlsCert) or --tls-key \(tlsKey): \(error)")
            }
        }
        var configuration = CSMSSimulator.Configuration(
            host: self.listen.host, port: self.listen.port, versions: self.ocppVersion, requiredPassword: self.password, tls: tls
        )
        // Run on its own, nothing reads transcripts: memory follows the open connections, not the traffic.
        configuration.keepsHistory = false
        let csms = CSMSSimulator(
            configuration: configuration,
            group: group, logger: logger
        )
        csms.onConnect { endpoint, chargePoint in
            logger.info("charger connected", metadata: ["chargePoint": "\(chargePoint)", "version": "\(endpoint.version.rawValue)"])
        }
        let address = try await csms.start()
        logger.notice("CSMS simulator listening on \(address) (\(self.ocppVersion.map(\.subprotocol).joined(separator: ", ")))")
        _ = await termination.wait()
        await csms.stop()
        try? await group.shutdownGracefully()
    }
}
