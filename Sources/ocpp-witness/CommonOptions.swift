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

/// `HOST:PORT`, with IPv6 hosts in brackets.
struct HostAndPort: CustomStringConvertible {
    var host: String
    var port: Int

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    static func parse(_ text: String) throws -> HostAndPort {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("expected [IPv6]:PORT, got '\(text)'")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ValidationError("expected HOST:PORT, got '\(text)'") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("invalid port '\(portText)' in '\(text)'")
        }
        return HostAndPort(host: String(host), port: port)
    }

    var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
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

/// Where the binary finds the data it ships with (the OCA schemas, the sample policies), wherever it runs:
/// the option, an environment variable, `share/ocpp-witness/` beside the installed binary, the checkout it
/// was built from, and the current folder, in that order.
enum DataFolder {
    /// The checkout this binary was built from (three levels above this source file).
    static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Each place to look for `name` (`schemas`, `policies`), with why it is a candidate.
    static func candidates(_ name: String, option: String?, variable: String) -> [(path: String, source: String)] {
        if let option { return [(option, "--\(name)")] }
        var places: [(String, String)] = []
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { places.append((value, "$\(variable)")) }
        if let binary = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            let share = binary.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("share/ocpp-witness/\(name)").path
            places.append((share, "beside the installed binary"))
        }
        places.append((checkout + "/" + name, "the checkout the binary was built from"))
        places.append((name, "the current folder"))
        return places
    }

    /// The first candidate that `accept`s, or an error naming every place tried.
    static func locate<Value>(
        _ name: String, option: String?, variable: String, accept: (String) throws -> Value
    ) throws -> Value {
        var tried: [String] = []
        for (path, source) in self.candidates(name, option: option, variable: variable) {
            do {
                return try accept(path)
            } catch {
                tried.append("\(path) (\(source)): \(error)")
            }
        }
        throw DataFolderMissing(name: name, tried: tried)
    }

    struct DataFolderMissing: Error, CustomStringConvertible {
        var name: String
        var tried: [String]
        var description: String { "no usable \(name) folder; looked in:\n  " + self.tried.joined(separator: "\n  ") }
    }
}

extension SchemaRegistry {
    /// Loads the schemas for a command from `--schemas`, or from where the binary finds them (see
    /// `DataFolder`), turning a miss into an error that names every place tried and what to do.
    static func load(forCommand root: String?, hint: String = "") throws -> SchemaRegistry {
        do {
            return try DataFolder.locate("schemas", option: root, variable: "OCPP_WITNESS_SCHEMAS") { try SchemaRegistry(root: $0) }
        } catch {
            throw ValidationError("\(error)\nrun `make setup` in the checkout, `make install`, or pass --schemas DIR\(hint)")
        }
    }
}
