import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPWire
import WitnessCapture
import WitnessCLISupport
import WitnessProxy
import WitnessDiff
import WitnessReplay

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay one side of a recorded run against a live peer, record it, and report what changed.",
        discussion: """
            --as charger --to URL: every recorded charger connects to the backend at URL (its charge point id appended
            as the last path segment) and sends its recorded CALLs; the backend's CALLs are answered as recorded.
            --as csms --listen HOST:PORT: plays the backend for real chargers that connect there.
            Message ids are new; transaction ids the live peer assigns are carried into later messages. The new run
            is recorded (--capture) and compared with the recording, as `ocpp-witness diff` does.
            Exit status 1 when the live peer answered differently.
            """
    )

    enum Side: String, ExpressibleByArgument, CaseIterable { case charger, csms }

    @Argument(help: ArgumentHelp("The recorded capture (files or folders).", valueName: "CAPTURE"))
    var captures: [String]

    @Option(name: .customLong("as"), help: "Which side to play: charger or csms.")
    var side: Side

    @Option(help: ArgumentHelp("--as charger: the backend's address, ws:// or wss://.", valueName: "URL"))
    var to: String?

    @Option(help: ArgumentHelp("--as csms: where chargers connect.", valueName: "HOST:PORT"))
    var listen: String?

    @Option(help: "Timing: 'recorded' keeps the recorded pauses (see --speed); 'fast' sends each message as soon as the one before was answered.")
    var pace: PaceOption = .fast

    @Option(help: "With --pace recorded: how much faster than recorded (2 = twice as fast).")
    var speed: Double = 1

    @Option(help: ArgumentHelp("Seconds to wait for an answer or for the peer's next CALL.", valueName: "SECONDS"))
    var responseTimeout: Double = 10

    @Option(help: ArgumentHelp("--as csms: seconds to wait for the chargers to connect.", valueName: "SECONDS"))
    var connectWait: Double = 60

    @Option(help: ArgumentHelp("Where to record the new run.", valueName: "DIR"))
    var capture: String?

    @Option(help: ArgumentHelp("Basic-auth user:password for --as charger (recordings keep no passwords).", valueName: "USER:PASSWORD"))
    var basicAuth: String?

    @Flag(help: "Do not verify the backend's TLS certificate (wss:// test backends only).")
    var upstreamInsecure = false

    @Option(help: "Print the comparison as text or json.")
    var format: DiffFormat = .text

    @OptionGroup var logging: LoggingOptions

    enum PaceOption: String, ExpressibleByArgument, CaseIterable { case recorded, fast }

    func validate() throws {
        switch self.side {
        case .charger: guard self.to != nil else { throw ValidationError("--as charger needs --to URL") }
        case .csms: guard self.listen != nil else { throw ValidationError("--as csms needs --listen HOST:PORT") }
        }
        guard self.speed > 0, self.speed.isFinite else { throw ValidationError("--speed must be a positive number, got \(self.speed)") }
        _ = try BoundedDuration.option("--response-timeout", seconds: self.responseTimeout)
        _ = try BoundedDuration.option("--connect-wait", seconds: self.connectWait)
        if let basicAuth, !basicAuth.contains(":") { throw ValidationError("--basic-auth takes USER:PASSWORD") }
    }

    func run() async throws {
        let logger = self.logging.makeLogger("replay")
        let recorded = try loadSessions(self.captures)
        guard !recorded.isEmpty else { throw ValidationError("\(self.captures.joined(separator: " ")) holds no charger connection to replay") }
        let role: Replayer.Role
        switch self.side {
        case .charger:
            do {
                role = .charger(target: try WebSocketURL(parsing: self.to ?? ""))
            } catch {
                throw ValidationError("--to: \(error)")
            }
        case .csms:
            let address = try HostAndPort.parse(self.listen ?? "")
            role = .csms(listenHost: address.host, listenPort: address.port)
        }
        let stamp = Timestamp.now().fileNameStamp
        let capture = self.capture ?? "captures/replay-\(stamp)"
        var configuration = Replayer.Configuration(
            role: role, pace: self.pace == .fast ? .asFastAsAnswered : .recorded(speed: self.speed),
            responseTimeout: .nanoseconds(try BoundedDuration.option("--response-timeout", seconds: self.responseTimeout).nanoseconds),
            captureDirectory: capture,
            connectWait: .nanoseconds(try BoundedDuration.option("--connect-wait", seconds: self.connectWait).nanoseconds)
        )
        if let basicAuth, let colon = basicAuth.firstIndex(of: ":") {
            configuration.basicAuth = (String(basicAuth[..<colon]), String(basicAuth[basicAuth.index(after: colon)...]))
        }
        configuration.upstreamTLS.verifyCertificate = !self.upstreamInsecure
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let replayer = Replayer(recorded: recorded, configuration: configuration, group: group, logger: logger)
        let bar = ProgressBar(enabled: isatty(STDERR_FILENO) == 1)
        let outcome: Replayer.Outcome
        do {
            outcome = try await replayer.run(
                progress: { bar.show(done: $0.messagesDone, total: $0.messagesTotal) },
                listening: { address in logger.notice("playing the backend on \(address); waiting for chargers") }
            )
        } catch {
            bar.finish()
            try? await group.shutdownGracefully()
            throw ValidationError("\(error)")
        }
        bar.finish()
        try? await group.shutdownGracefully()
        for problem in outcome.problems { printError("problem: \(problem)") }
        printDiff(outcome.diff, format: self.format)
        print(
            "replayed \(outcome.sessions) session(s) as \(self.side.rawValue): \(outcome.callsSent) CALLs sent, "
                + "\(outcome.callsAnswered) answered; new run recorded in \(outcome.captureDirectory)/"
        )
        if !outcome.diff.isEmpty || !outcome.problems.isEmpty { throw ExitCode(1) }
    }
}

enum DiffFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare what the same chargers said in two captures, CALL by CALL.",
        discussion: """
            Matches connections by charge point id and CALLs per direction in order, then compares requests and answers
            field by field. Message ids never count; timestamps count as equal (clocks differ between runs) unless
            --compare-timestamps; transaction ids renumbered consistently are not a difference.
            Exit status 1 when the runs differ. Typical use: the same test before and after a firmware update.
            """
    )

    @Argument(help: ArgumentHelp("The first capture (file or folder).", valueName: "FIRST"))
    var first: String

    @Argument(help: ArgumentHelp("The second capture (file or folder).", valueName: "SECOND"))
    var second: String

    @Flag(help: "Count differing timestamps as differences.")
    var compareTimestamps = false

    @Option(help: "Print the comparison as text or json.")
    var format: DiffFormat = .text

    func run() throws {
        let report = CaptureDiff.compare(
            try loadSessions([self.first]), try loadSessions([self.second]),
            options: DiffOptions(ignoreTimestamps: !self.compareTimestamps)
        )
        printDiff(report, format: self.format)
        if !report.isEmpty { throw ExitCode(1) }
    }
}

/// The sessions of a capture; lines it could not read (or not wholly) are warnings on standard error.
private func loadSessions(_ paths: [String]) throws -> [RecordedSession] {
    var issues: [CaptureReadIssue] = []
    defer { for issue in issues { printError("warning: \(issue)") } }
    do {
        return try RecordedCapture.load(paths, issues: &issues)
    } catch {
        throw ValidationError("\(error)")
    }
}

private func printDiff(_ report: DiffReport, format: DiffFormat) {
    switch format {
    case .text: print(report.text)
    case .json: print(JSONWriter.string(report.json))
    }
}

/// A one-line progress bar on standard error, when it is a terminal.
final class ProgressBar: Sendable {
    private let enabled: Bool
    init(enabled: Bool) { self.enabled = enabled }

    func show(done: Int, total: Int) {
        guard self.enabled, total > 0 else { return }
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total) messages".utf8))
    }

    func finish() {
        guard self.enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
