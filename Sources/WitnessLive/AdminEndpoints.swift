import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// What answers the HTTP requests of an admin connection: the running proxy's admin server, or the view of
/// a recorded capture.
protocol AdminEndpoints: AnyObject, Sendable {
    /// The live page's data; nil: no page.
    var board: LiveBoard? { get }
    /// Host names besides loopback addresses and `localhost` that requests may name in `Host` and `Origin`.
    var allowedHosts: [String] { get }
    func handle(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: String) -> AdminServer.Reply
}

extension AdminEndpoints {
    /// Listens on `host:port` (loopback only) with one `AdminHandler` per connection.
    func bind(host: String, port: Int, group: any EventLoopGroup) async throws -> any Channel {
        try RequestOrigin.requireLoopback(host)
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(server: self))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// Holds the listening channel once bound.
final class NIOLockedValueBoxChannel: Sendable {
    private let box = NIOLockedValueBox<(any Channel)?>(nil)
    func set(_ channel: any Channel) { self.box.withLockedValue { $0 = channel } }
    func get() -> (any Channel)? { self.box.withLockedValue { $0 } }
}
