import ServiceLifecycle

extension CaptureWriter: Service {
    /// Runs the recorder as a service of a swift-service-lifecycle `ServiceGroup`: it writes from its own
    /// thread from the start, and at graceful shutdown (or cancellation) writes what is queued, syncs and
    /// closes its file. List it before the services that record into it, so that the group, which shuts
    /// its services down in reverse order, closes it after them.
    public func run() async throws {
        try? await gracefulShutdown()
        // The queue is written out while this task waits rather than blocks a thread of the pool; what
        // `close()` then has left to do is the last sync.
        await self.flush()
        self.close()
    }
}
