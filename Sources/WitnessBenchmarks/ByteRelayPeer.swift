import ArgumentParser
import NIOCore
import NIOPosix
import WitnessCLISupport

/// A measuring peer for the forwarding benchmark (`--setups ...,byte-relay`): a TCP relay on the same
/// framework, event loops and socket options as OCPP Witness that passes bytes between each client and the
/// upstream without reading them — no HTTP, no WebSocket framing, no recording. What it spends per message is
/// the framework's floor on the machine; what OCPP Witness's forwarding spends above it is its own.
struct ByteRelayPeer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "byte-relay",
        abstract: "The forwarding benchmark's byte relay: TCP in, TCP out, on the proxy's event loops.",
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "HOST:PORT"), transform: HostAndPort.parse)
    var listen: HostAndPort

    @Option(help: ArgumentHelp("Upstream to relay every connection to.", valueName: "HOST:PORT"), transform: HostAndPort.parse)
    var upstream: HostAndPort

    func run() async throws {
        let listenAddress = try SocketAddress(ipAddress: self.listen.host, port: self.listen.port)
        let upstreamAddress = try SocketAddress(ipAddress: self.upstream.host, port: self.upstream.port)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { client in
                ClientBootstrap(group: client.eventLoop)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .channelOption(.autoRead, value: false)
                    .connect(to: upstreamAddress)
                    .flatMapThrowing { upstream in
                        let (toUpstream, toClient) = ByteRelayHandler.pair()
                        try client.pipeline.syncOperations.addHandler(toUpstream)
                        try upstream.pipeline.syncOperations.addHandler(toClient)
                        // Nothing is read before both ends are linked; from then on, as the proxy does.
                        try client.syncOptions?.setOption(.autoRead, value: true)
                        try upstream.syncOptions?.setOption(.autoRead, value: true)
                    }
            }
            .bind(to: listenAddress).get()
        try await server.closeFuture.get()
    }
}

/// One side of a byte relay: what its channel reads is written to the partner's channel, flushed once per
/// read batch; reading pauses while the partner cannot take more, and closing one side closes the other.
final class ByteRelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: ByteRelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var partnerWritable = true

    static func pair() -> (ByteRelayHandler, ByteRelayHandler) {
        let first = ByteRelayHandler()
        let second = ByteRelayHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.context?.flush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.partner?.partnerWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if self.partnerWritable {
            context.read()
        } else {
            self.pendingRead = true
        }
    }

    private func partnerWritabilityChanged(_ writable: Bool) {
        self.partnerWritable = writable
        if writable, self.pendingRead, let context = self.context {
            self.pendingRead = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension ByteRelayHandler: Sendable {}
