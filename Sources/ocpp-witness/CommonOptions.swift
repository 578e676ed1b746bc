import ArgumentParser
import Foundation
import Logging
import OCPPSchema
import OCPPWire
import ServiceLifecycle
import UnixSignals

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
                    format == .json ? JSONLogHandler(label: label) : EscapingLogHandler(wrapped: StreamLogHandler.standardError(label: label))
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

/// SIGINT and SIGTERM, trapped (through swift-service-lifecycle's UnixSignals) from the moment `arm()`
/// returns. Arm it first thing in a command, before it announces itself: a signal that arrives before
/// anyone waits is kept, so a stop request right after start-up is honoured instead of lost.
struct TerminationSignal {
    private let signals: UnixSignalsSequence

    static func arm() async -> TerminationSignal {
        TerminationSignal(signals: await UnixSignalsSequence(trapping: .sigint, .sigterm))
    }

    /// The first signal received, now or when it comes; nil when the waiting task is cancelled first.
    func wait() async -> UnixSignal? {
        var iterator = self.signals.makeAsyncIterator()
        return await iterator.next()
    }
}

/// A service that starts (binds and announces) inside the service group, once the group traps its
/// signals, and then runs as `service` does.
struct Started: Service {
    let service: any Service
    let start: @Sendable () async throws -> Void

    init(_ service: any Service, start: @escaping @Sendable () async throws -> Void) {
        self.service = service
        self.start = start
    }

    func run() async throws {
        try await self.start()
        try await self.service.run()
    }
}

extension BoundedDuration {
    /// A command-line option's seconds as a duration, bounded as every duration is (finite, not negative, at most
    /// 30 days; above 0 unless `allowsZero`), or a usage error naming the option.
    static func option(_ name: String, seconds: Double, allowsZero: Bool = false) throws -> BoundedDuration {
        do {
            return try BoundedDuration(seconds: seconds, field: name, allowsZero: allowsZero)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
