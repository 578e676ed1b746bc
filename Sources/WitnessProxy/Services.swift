import Logging
import ServiceLifecycle

extension WitnessProxyServer: Service {
    /// Runs the proxy as a service of a swift-service-lifecycle `ServiceGroup`: listens (unless `start()` has
    /// already), relays until the group shuts down gracefully or the task is cancelled, then closes every
    /// pair as `shutdown()` does.
    public func run() async throws {
        if self.localAddress == nil { try await self.start() }
        try? await gracefulShutdown()
        let flushed = self.recorder == nil ? "" : "; the capture is flushed after them"
        self.logger.notice("stopping: closing \(self.statistics.active) connection pair(s)\(flushed)")
        await self.shutdown()
    }
}
