import WitnessPolicy
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads a policy file on SIGHUP and when its modification time changes (checked every `interval`), as a
/// service of a swift-service-lifecycle `ServiceGroup`. An invalid file is refused with its errors and the
/// policy in force stays.
public struct PolicyFileWatcher: Service {
    public let path: String
    private let faults: FaultInjection
    private let logger: Logger
    private let interval: Duration

    public init(path: String, faults: FaultInjection, logger: Logger, interval: Duration = .seconds(2)) {
        self.path = path
        self.faults = faults
        self.logger = logger
        self.interval = interval
    }

    /// Watches until graceful shutdown or cancellation.
    public func run() async throws {
        let hangUps = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in hangUps { self.reload(reason: "SIGHUP") }
                }
                group.addTask {
                    var lastModified = Self.modified(self.path)
                    while (try? await Task.sleep(for: self.interval)) != nil {
                        let modified = Self.modified(self.path)
                        guard modified != lastModified else { continue }
                        lastModified = modified
                        self.reload(reason: "file changed")
                    }
                }
            }
        }
    }

    /// Puts the file's policy in force, or logs why not.
    public func reload(reason: String) {
        guard let data = FileManager.default.contents(atPath: self.path) else {
            self.logger.error("policy reload (\(reason)) refused: cannot read \(self.path); the previous policy stays")
            return
        }
        do {
            try self.faults.replace(yaml: String(decoding: data, as: UTF8.self), source: self.path)
            self.logger.notice("fault policy reloaded (\(reason)): \(self.path), seed \(self.faults.engine?.policy.seed ?? 0)")
        } catch {
            self.logger.error("policy reload (\(reason)) refused; the previous policy stays:\n\(error)")
        }
    }

    private static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}
