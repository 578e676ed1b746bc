import ArgumentParser
import Foundation
import Logging
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessCLISupport
import WitnessPcap

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a capture as a pcapng file for Wireshark and tshark.",
        discussion: """
            Each charger connection becomes a TCP stream with its handshake, HTTP upgrade and one WebSocket frame per
            recorded message, with the recorded timestamps. Faults and proxy-made frames carry packet comments.
            See docs/wireshark.md for what the file holds and what is synthesized.
            """
    )

    @Argument(help: ArgumentHelp("Capture files or folders.", valueName: "CAPTURE"))
    var captures: [String]

    @Option(help: ArgumentHelp("The pcapng file to write.", valueName: "FILE"))
    var pcapng: String

    @Option(help: ArgumentHelp("TCP port of the server in the file (80 lets Wireshark decode without Decode As).", valueName: "PORT"))
    var serverPort: UInt16 = 80

    func run() throws {
        let summary: PcapngExporter.Summary
        do {
            summary = try PcapngExporter.export(
                capture: self.captures, to: self.pcapng, options: .init(serverPort: self.serverPort)
            )
        } catch {
            throw ValidationError("\(error)")
        }
        for issue in summary.readIssues { printError("warning: \(issue)") }
        print(
            "wrote \(self.pcapng): \(summary.packets) packets, \(summary.connections) connections, \(summary.messages) messages"
                + (summary.rejected > 0 ? ", \(summary.rejected) rejected upgrades" : "")
                + (summary.synthesizedHandshakes > 0 ? ", \(summary.synthesizedHandshakes) handshakes made up (not in the capture)" : "")
        )
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read plain ws:// OCPP traffic from a pcap or pcapng file (tcpdump -w) into a capture.",
        discussion: """
            Reassembles the TCP streams (retransmissions, out-of-order segments), finds the WebSocket upgrades and
            frames and writes an ordinary capture that `report` analyses. What cannot be decoded (TLS, connections
            that began before the recording, bytes missing from the file) is written as `error` records and listed.
            """
    )

    @Argument(help: ArgumentHelp("The pcap or pcapng file.", valueName: "FILE"))
    var file: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Capture folder to write.", valueName: "DIR"))
    var output: String

    @Option(help: ArgumentHelp("Only packets matching this BPF filter (tcpdump syntax), e.g. 'tcp port 8080'.", valueName: "EXPR"))
    var filter: String?

    @Flag(help: "Keep secrets (Authorization passwords, authorization keys) in the capture instead of redacting them.")
    var captureSecrets = false

    func run() throws {
        // The file is opened first: one that cannot be read leaves no capture file behind.
        let source: PacketSource
        do {
            source = try PcapImporter.open(self.file, filter: self.filter)
        } catch {
            throw ValidationError("\(error)")
        }
        let writer = try CaptureWriter(
            configuration: .init(directory: self.output, fsync: .never, redactSecrets: !self.captureSecrets),
            header: CaptureHeader(extra: ["imported": .string(self.file)])
        )
        let statistics = PcapImporter.importPackets(from: source, into: writer, redactSecrets: !self.captureSecrets)
        writer.close()
        printTrafficSummary(statistics, into: self.output)
    }
}

struct SniffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sniff",
        abstract: "Record plain ws:// OCPP traffic passively from a network interface.",
        discussion: """
            For sites where a proxy cannot be put in the path. Needs capture privileges (root, or
            `sudo setcap cap_net_raw,cap_net_admin=eip` on the binary). Records into the same capture format with the
            same live analysis as the proxy; stops on SIGINT/SIGTERM. TLS (wss://) traffic cannot be decoded passively.
            """
    )

    @Option(help: ArgumentHelp("Network interface to capture on (`lo`, `eth0`, `any`).", valueName: "NAME"))
    var interface: String

    @Option(help: ArgumentHelp("BPF filter (tcpdump syntax), e.g. 'tcp port 8080'.", valueName: "EXPR"))
    var filter: String?

    @Option(help: ArgumentHelp("Capture folder to write.", valueName: "DIR"))
    var capture: String = "captures/passive"

    @Option(help: ArgumentHelp("Folder with the OCA schemas for live analysis (default: found as docs/setup.md says).", valueName: "DIR"))
    var schemas: String?

    @Option(help: "strict (the schemas as written) or lenient (well-known field quirks are warnings).")
    var profile: ValidationProfile = .strict

    @Flag(help: "Record only; no live schema validation and rules.")
    var noValidate = false

    @Flag(help: "Keep secrets in the capture instead of redacting them.")
    var captureSecrets = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = self.logging.makeLogger("sniff")
        let termination = await TerminationSignal.arm()
        var live: LiveAnalysis?
        if !self.noValidate {
            let schemas = try SchemaRegistry.load(forCommand: self.schemas, hint: " (or run without live analysis: --no-validate)")
            live = LiveAnalysis(schemas: schemas, profile: self.profile, logger: logger)
        }
        var observer: (@Sendable (CaptureRecord) -> Void)?
        if let live { observer = { record in live.consume(record) } }
        // The interface is opened first: one that cannot be opened leaves no capture file behind.
        let source: PacketSource
        do {
            source = try PassiveCapture.open(interface: self.interface, filter: self.filter)
        } catch {
            throw ValidationError("\(error)")
        }
        let writer = try CaptureWriter(
            configuration: .init(directory: self.capture, fsync: .never, redactSecrets: !self.captureSecrets),
            header: CaptureHeader(extra: ["sniff": .string(self.interface), "filter": self.filter.map(JSONValue.string) ?? .null]),
            observer: observer
        )
        let capture = PassiveCapture(source: source, writer: writer, redactSecrets: !self.captureSecrets)
        logger.notice("recording \(self.interface)\(self.filter.map { " (\($0))" } ?? "") into \(self.capture)/")
        let signal = await termination.wait()
        logger.notice("signal \(signal.map { "\($0)" } ?? "?"): stopping")
        let failure = capture.stop()
        writer.close()
        printTrafficSummary(capture.statistics, into: self.capture)
        if let live {
            let counts = live.countsByRule
            let summary = counts.keys.sorted().map { "\($0) \(counts[$0] ?? 0)" }.joined(separator: ", ")
            logger.notice("deviations seen live: \(counts.isEmpty ? "none" : summary); run `ocpp-witness report \(self.capture)` for the full report")
        }
        if let failure { throw ValidationError("capture stopped early: \(failure)") }
    }
}

/// Prints what an import or sniff found, with the problems that were recorded.
func printTrafficSummary(_ statistics: TrafficDecoder.Statistics, into folder: String) {
    var line = "\(statistics.packets) packets, \(statistics.connections) TCP connections, "
        + "\(statistics.webSocketConnections) WebSocket connections, \(statistics.messages) messages → \(folder)/"
    if statistics.rejectedUpgrades > 0 { line += "; \(statistics.rejectedUpgrades) upgrades rejected" }
    if statistics.retransmittedBytes > 0 || statistics.outOfOrderSegments > 0 {
        line += "; \(statistics.retransmittedBytes) retransmitted bytes dropped, \(statistics.outOfOrderSegments) out-of-order segments put back"
    }
    print(line)
    let skipped = statistics.skipped.filter { $0.key != .notTCP && $0.key != .notIP }
    for (reason, count) in skipped.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
        printError("warning: \(count) packets skipped: \(reason.rawValue)")
    }
    for (error, count) in statistics.errors.sorted(by: { $0.key < $1.key }) {
        printError("warning: \(count) × \(error) (see the error records in the capture)")
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
