import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessCLISupport
import WitnessLive
import WitnessProxy

struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Serve the live page over recorded captures, to walk through a pilot or a dispute after the fact.",
        discussion: """
            Reads the captures, finds their deviations as the proxy's live analysis would, and serves the live page (the one
            `proxy --admin` serves) on a loopback address until Ctrl-C: every charger in the captures with vendor, model and
            firmware, the deviations with their capture lines, and each charger's messages from its first, as recorded (so
            redacted). Nothing can be changed from it. Example: ocpp-witness view captures/pilot --listen 127.0.0.1:8090
            """
    )

    @Argument(help: ArgumentHelp("Capture files or folders.", valueName: "CAPTURE"))
    var captures: [String]

    @Option(help: ArgumentHelp("Loopback address to serve the page on (port 0: any free one).", valueName: "HOST:PORT"), transform: HostAndPort.parse)
    var listen: HostAndPort = HostAndPort(host: "127.0.0.1", port: 8090)

    @Option(help: "Messages kept per charger for its message view (the newest when it sent more).")
    var framesPerCharger: Int = 2000

    @Option(help: ArgumentHelp("Folder with the OCA schemas (v16, v201, v21), as `make setup` installs them.", valueName: "DIR"))
    var schemas: String?

    @Option(help: "strict (the schemas as written) or lenient (well-known field quirks are warnings).")
    var profile: ValidationProfile = .strict

    @Option(
        name: .customLong("policy"),
        help: ArgumentHelp(
            "A policy whose checks are judged and shown (repeat for several). Default: the policy named in the captures' headers, when it can be read.",
            valueName: "FILE"
        )
    )
    var policies: [String] = []

    @Flag(help: "Do not look for deviations or judge checks (show the messages only).")
    var noValidate = false

    func validate() throws {
        if self.framesPerCharger < 1 { throw ValidationError("--frames-per-charger must be at least 1") }
    }

    func run() async throws {
        let termination = await TerminationSignal.arm()
        let board = LiveBoard(framesPerCharger: self.framesPerCharger)
        var configuration = AnalyzerConfiguration(profile: self.profile)
        if !self.noValidate { (configuration.checks, configuration.site) = try WitnessChecks.loadPolicies(policies: self.policies, captures: self.captures) }
        let analyzer = try self.noValidate ? nil : Analyzer(
            schemas: SchemaRegistry.load(forCommand: self.schemas, hint: " (or show the messages only: --no-validate)"),
            configuration: configuration
        )
        analyzer?.onDeviation = { deviation in board.deviation(deviation.json) }
        let reader: CaptureReader
        do {
            reader = try CaptureReader(paths: self.captures)
        } catch {
            throw ValidationError("cannot read captures: \(error)")
        }
        var records = 0
        for record in reader {
            board.record(record)
            analyzer?.consume(record)
            records += 1
        }
        // Deviations that only the end of a capture reveals (calls never answered, open transactions), and the
        // checks' verdicts as the report gives them.
        let report = analyzer?.finish(readIssues: reader.issues)
        let verdicts: [JSONValue] = (report?.pairs ?? []).filter { $0.areas.contains { !$0.checks.isEmpty } }.map { pair in
            Analyzer.verdicts(of: pair.key, chargePoints: pair.statistics.chargePoints, areas: .array(pair.areas.filter { !$0.checks.isEmpty }.map(\.json)))
        }
        for issue in reader.issues {
            FileHandle.standardError.write(Data("warning: \(issue)\n".utf8))
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = CaptureViewServer(
            board: board, sources: self.captures, verdicts: .array(verdicts), host: self.listen.host, port: self.listen.port, group: group
        )
        let address: SocketAddress
        do {
            address = try await server.start()
        } catch {
            try? await group.shutdownGracefully()
            throw ValidationError("cannot serve the page on \(self.listen): \(error)")
        }
        let shown = "http://\(address.ipAddress ?? self.listen.host):\(address.port ?? self.listen.port)/"
        FileHandle.standardError.write(
            Data("\(records) records of \(self.captures.joined(separator: ", ")); the capture's view on \(shown) (Ctrl-C ends it)\n".utf8)
        )
        _ = await termination.wait()
        await server.stop()
        try? await group.shutdownGracefully()
    }
}
