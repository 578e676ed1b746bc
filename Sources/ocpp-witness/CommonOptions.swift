import ArgumentParser
import Foundation
import Logging
import OCPPSchema

/// `--log-level` and `--log-format`, shared by every command that runs for a while.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe log level shown: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format on standard error: human, or json (one object per line, for log shippers).")
    var logFormat: LogFormat = .human

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case human, json
    }

    /// Sets up swift-log once for the process and returns a logger for `label`.
    func makeLogger(_ label: String) -> Logger {
        let level = self.logLevel
        let format = self.logFormat
        LoggingBootstrap.once {
            LoggingSystem.bootstrap { label in
                var handler: any LogHandler =
                    format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(_ body: () -> Void) {
        guard !done else { return }
        done = true
        body()
    }
}

/// SIGINT and SIGTERM, caught from the moment `arm()` is called. Arm it first thing in a command, before
/// it announces itself: a signal that arrives before anyone waits is kept, so a stop request right after
/// start-up is honoured instead of lost (an ignored signal with no source registered yet is discarded).
final class TerminationSignal: @unchecked Sendable {
    // `received` and `continuation` are guarded by `lock`; the sources are only kept alive.
    private let lock = NSLock()
    private var received: Int32?
    private var continuation: CheckedContinuation<Int32, Never>?
    private var sources: [any DispatchSourceSignal] = []

    private init() {}

    static func arm() -> TerminationSignal {
        let termination = TerminationSignal()
        let queue = DispatchQueue(label: "signals")
        for signalNumber in [SIGINT, SIGTERM] {
            // The default action would end the process at once; the source takes over from here.
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { termination.deliver(signalNumber) }
            source.resume()
            termination.sources.append(source)
        }
        return termination
    }

    /// The first signal received, now or when it comes.
    func wait() async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            self.lock.lock()
            if let received = self.received {
                self.lock.unlock()
                continuation.resume(returning: received)
                return
            }
            self.continuation = continuation
            self.lock.unlock()
        }
    }

    private func deliver(_ signalNumber: Int32) {
        self.lock.lock()
        guard self.received == nil else {
            self.lock.unlock()
            return
        }
        self.received = signalNumber
        let continuation = self.continuation
        self.continuation = nil
        self.lock.unlock()
        continuation?.resume(returning: signalNumber)
    }
}
