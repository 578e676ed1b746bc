import NIOCore
import NIOHTTP1

/// Reads one request, asks the server, writes the reply.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: any AdminEndpoints
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    /// The body went past `maximumBodyBytes`; the rest is not kept and the request is refused with 413,
    /// since a cut policy could still parse and replace the one in force.
    private var bodyTooLarge = false
    /// The largest request body the admin API reads (a policy file, an injected CALL).
    static let maximumBodyBytes = 1 << 20

    init(server: any AdminEndpoints) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.clear()
            self.bodyTooLarge = false
        case .body(var part):
            if self.body.readableBytes + part.readableBytes > Self.maximumBodyBytes {
                self.bodyTooLarge = true
                self.body.clear()
            } else if !self.bodyTooLarge {
                self.body.writeBuffer(&part)
            }
        case .end:
            guard let head else { return }
            let refusal = RequestOrigin.refusal(
                host: head.headers.first(name: "Host"), origin: head.headers.first(name: "Origin"), allowed: self.server.allowedHosts
            )
            let reply =
                if let refusal {
                    AdminServer.error(.forbidden, refusal)
                } else if self.bodyTooLarge {
                    AdminServer.error(
                        .payloadTooLarge, "request body is over the admin API's limit of \(Self.maximumBodyBytes) bytes; nothing was changed"
                    )
                } else {
                    self.server.handle(method: head.method, uri: head.uri, headers: head.headers, body: String(buffer: self.body))
                }
            if reply.stream, let board = self.server.board {
                self.startStream(context: context, version: head.version, board: board)
                return
            }
            let headers: HTTPHeaders = [
                "Content-Type": reply.contentType, "Content-Length": String(reply.body.utf8.count), "Connection": "close",
            ]
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: reply.body)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

extension AdminHandler {
    /// What an event-stream client may leave unread: past it the client is dropped. One slow browser tab
    /// made the proxy buffer every event for it without bound.
    static let maximumStreamBacklog = 1 << 20

    /// Answers with the event stream and keeps the connection: each event the board publishes is written as
    /// it comes, on this channel's event loop; a comment every 15 s keeps proxies and browsers from timing
    /// it out. The subscription ends when the connection does. While the client does not read (the channel
    /// is not writable), what is written for it counts towards `maximumStreamBacklog`; past it the connection
    /// is closed and the drop logged by the board's subscriber count going down.
    private func startStream(context: ChannelHandlerContext, version: HTTPVersion, board: LiveBoard) {
        let headers: HTTPHeaders = ["Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"]
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: ": OCPP Witness live events\n\n")))), promise: nil)
        let channel = context.channel
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let backlog = NIOLoopBoundBox(0, eventLoop: context.eventLoop)
        let id = board.subscribe { text in
            channel.eventLoop.execute {
                guard channel.isActive else { return }
                if channel.isWritable {
                    backlog.value = 0
                } else {
                    backlog.value += text.utf8.count
                    guard backlog.value <= Self.maximumStreamBacklog else {
                        channel.close(promise: nil)
                        return
                    }
                }
                loopBound.value.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            }
        }
        let keepAlive = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(15), delay: .seconds(15)) { _ in
            loopBound.value.writeAndFlush(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: ": keep-alive\n\n")))), promise: nil)
        }
        channel.closeFuture.whenComplete { _ in
            board.unsubscribe(id)
            keepAlive.cancel()
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
