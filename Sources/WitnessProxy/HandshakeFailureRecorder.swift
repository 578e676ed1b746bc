import NIOCore
import NIOHTTP1
import NIOSSL
import NIOWebSocket

/// Records what goes wrong before a charger's upgrade completes: unparsable HTTP, TLS failures.
final class HandshakeFailureRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private let handshake: ChargerHandshake
    private let record: (ChargerHandshake, String, String) -> Void

    init(handshake: ChargerHandshake, record: @escaping (ChargerHandshake, String, String) -> Void) {
        self.handshake = handshake
        self.record = record
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        defer { context.fireErrorCaught(error) }
        guard self.handshake.phase.isUnsettled else { return }
        switch error {
        case let upgradeError as NIOWebSocketUpgradeError:
            // Fired by NIO before it gives up on the upgrade; the refusal responder answers it.
            self.handshake.upgradeAttempted = true
            guard self.handshake.target == nil else { break }
            let versions = self.handshake.head?.headers["Sec-WebSocket-Version"] ?? []
            if versions.count == 1, let version = versions.first, version != "13" {
                // RFC 6455 4.2.2 (4) and 4.4: the answer is 426 with the version the server speaks.
                let violation = WebSocketViolation(
                    rule: "websocket.handshake.version", clause: "RFC 6455 4.2.2 (4), 4.4",
                    detail: "the upgrade request asks for Sec-WebSocket-Version \(version.prefix(32)); the proxy speaks 13"
                )
                self.handshake.findings.append(violation)
                self.handshake.refuse(ChargerHandshake.Refusal(
                    status: .upgradeRequired,
                    headers: ["Sec-WebSocket-Version": "13", "Content-Type": "text/plain; charset=utf-8"],
                    body: ByteBuffer(string: "ocpp-witness: \(violation.detail)\n"), cause: "unsupportedVersion", detail: violation.detail
                ))
            } else {
                self.handshake.invalidUpgradeHeaders =
                    "invalid WebSocket upgrade request (\(upgradeError)): it needs one Sec-WebSocket-Key and Sec-WebSocket-Version: 13"
            }
        case is HTTPParserError:
            let action = self.handshake.phase.failed()
            self.handshake.apply(action)
            if action == .recordFailure { self.record(self.handshake, "badRequest", "charger sent something that is not HTTP: \(error)") }
        case is NIOSSLError, is BoringSSLError:
            let action = self.handshake.phase.failed()
            self.handshake.apply(action)
            if action == .recordFailure { self.record(self.handshake, "chargerTLS", "TLS handshake with the charger failed: \(error)") }
            context.close(promise: nil)
        default:
            break
        }
    }
}

@available(*, unavailable)
extension HandshakeFailureRecorder: Sendable {}

/// Keeps the charger's request head for the proxy's own answers, before NIO's upgrade handler judges it
/// (a refused version never reaches the handlers after it).
final class UpgradeRequestObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let handshake: ChargerHandshake

    init(handshake: ChargerHandshake) { self.handshake = handshake }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = Self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        self.handshake.head = head
        context.fireChannelRead(data)
        // Out of the way before the upgrade puts the relay, which reads bytes, behind it (the upgrade waits for
        // the backend, so it cannot have happened yet; a close in the meantime may have removed this handler).
        let sync = context.pipeline.syncOperations
        if (try? sync.context(handler: self)) != nil {
            sync.removeHandler(context: context, promise: nil)
        }
    }
}

@available(*, unavailable)
extension UpgradeRequestObserver: Sendable {}
