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
        guard !self.handshake.completed else { return }
        switch error {
        case let upgradeError as NIOWebSocketUpgradeError:
            // Fired by NIO before it gives up on the upgrade; the refusal responder answers it.
            self.handshake.upgradeAttempted = true
            if self.handshake.target == nil {
                self.handshake.invalidUpgradeHeaders =
                    "invalid WebSocket upgrade request (\(upgradeError)): it needs one Sec-WebSocket-Key and Sec-WebSocket-Version: 13"
            }
        case is HTTPParserError:
            self.handshake.completed = true
            self.handshake.timeout?.cancel()
            self.record(self.handshake, "badRequest", "charger sent something that is not HTTP: \(error)")
        case is NIOSSLError, is BoringSSLError:
            self.handshake.completed = true
            self.handshake.timeout?.cancel()
            self.record(self.handshake, "chargerTLS", "TLS handshake with the charger failed: \(error)")
            context.close(promise: nil)
        default:
            break
        }
    }
}

@available(*, unavailable)
extension HandshakeFailureRecorder: Sendable {}
