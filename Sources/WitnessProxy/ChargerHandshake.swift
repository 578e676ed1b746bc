import NIOCore
import NIOHTTP1
import NIOWebSocket
import OCPPWire
import WitnessCapture

/// What the proxy learned while a charger's upgrade was in progress. Lives on the charger's event loop.
final class ChargerHandshake {
    let connectionID: UInt64
    let remoteAddress: String
    let acceptedAt = Timestamp.now()
    var target: ChargerRequestTarget?
    var offered: [String] = []
    var requestHeaders = HTTPHeaders()
    /// What to tell the charger when the upgrade does not go through.
    var refusal: Refusal?
    var backendRelay: RelayHandler?
    var backendChannel: (any Channel)?
    var backendResponse: HTTPResponseHead?
    var session: RelaySession?
    var timeout: Scheduled<Void>?
    /// Where the connection is on its way to a relay or a refusal, with who owns which socket.
    var phase = PairHandshake()
    /// The request asked for a WebSocket upgrade. NIO's upgrade handler does not pass such a request on
    /// when the upgrade is refused, so the refusal is answered without waiting for it.
    var upgradeAttempted = false
    /// Why NIO refused the upgrade headers themselves (bad key, wrong version), if it did.
    var invalidUpgradeHeaders: String?
    /// The request as it arrived, seen before NIO's upgrade handler judges it.
    var head: HTTPRequestHead?
    /// What in the upgrade request breaks RFC 6455 but can be carried to the backend as it came.
    var findings: [WebSocketViolation] = []

    /// Carries out what the phase asks that needs no more than the handshake: the deadline and the backend's
    /// socket. Recording is the caller's.
    func apply(_ action: PairHandshake.Action) {
        switch action {
        case .cancelDeadline, .recordFailure, .timedOut: self.timeout?.cancel()
        case .closeBackend: self.backendChannel?.close(promise: nil)
        case .none: break
        }
    }

    /// The proxy refuses the charger for `refusal`; a backend that had already accepted is closed.
    func refuse(_ refusal: Refusal) {
        self.refusal = refusal
        self.apply(self.phase.refused())
    }

    /// The breaches of RFC 6455's opening handshake (4.1, 4.2.1) in `head` that NIO lets through.
    static func findings(in head: HTTPRequestHead) -> [WebSocketViolation] {
        var findings: [WebSocketViolation] = []
        if head.version.major < 1 || (head.version.major == 1 && head.version.minor < 1) {
            findings.append(
                WebSocketViolation(
                    rule: "websocket.handshake.httpVersion", clause: "RFC 6455 4.1 (2), 4.2.1 (1)",
                    detail: "the upgrade request is HTTP/\(head.version.major).\(head.version.minor); the opening handshake must be HTTP/1.1 or later"
                )
            )
        }
        let connection = head.headers[canonicalForm: "Connection"].map { $0.lowercased() }
        if !connection.contains("upgrade") {
            let sent = connection.isEmpty ? "none" : "'\(connection.joined(separator: ", "))'"
            findings.append(
                WebSocketViolation(
                    rule: "websocket.handshake.connectionHeader", clause: "RFC 6455 4.1 (6), 4.2.1 (4)",
                    detail: "the upgrade request has no 'Connection: Upgrade' (Connection: \(sent))"
                )
            )
        }
        if let key = head.headers.first(name: "Sec-WebSocket-Key"), Base64.decode(key.trimmingSpaces)?.count != 16 {
            findings.append(
                WebSocketViolation(
                    rule: "websocket.handshake.key", clause: "RFC 6455 4.1 (7), 4.2.1 (5)",
                    detail: "Sec-WebSocket-Key '\(key.prefix(64))' does not decode to 16 bytes"
                )
            )
        }
        return findings
    }

    /// The findings as the open or reject record lists them.
    var findingsJSON: JSONValue {
        .array(self.findings.map { ["rule": .string($0.rule), "clause": .string($0.clause), "detail": .string($0.detail)] })
    }

    /// An answer for a charger whose upgrade is not forwarded.
    struct Refusal {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: ByteBuffer
        /// Stable cause for the capture (`upstreamStatus`, `upstreamUnreachable`, `noSubprotocolAgreed`...).
        var cause: String
        var detail: String
        /// False when the connection is closed without an HTTP answer (TLS failure, timeout).
        var statusSent = true

        /// The proxy's own refusal: `status` with the detail as a plain-text body, "ocpp-witness: " first so
        /// the charger's log tells it from the backend's answers.
        static func proxy(_ status: HTTPResponseStatus, cause: String, detail: String) -> Refusal {
            Refusal(
                status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: ByteBuffer(string: "ocpp-witness: \(detail)\n"),
                cause: cause, detail: detail
            )
        }
    }

    init(connectionID: UInt64, remoteAddress: String) {
        self.connectionID = connectionID
        self.remoteAddress = remoteAddress
    }

    /// The chosen subprotocol, from the backend's 101.
    var chosenSubprotocol: String? {
        self.backendResponse?.headers.first(name: "Sec-WebSocket-Protocol")?.trimmingSpaces
    }

    static func subprotocols(in headers: HTTPHeaders) -> [String] {
        headers[canonicalForm: "Sec-WebSocket-Protocol"].map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
    }
}

extension String {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

/// Answers a charger whose request was not upgraded: with the backend's own status when the backend
/// refused, 502/504 when it could not be reached, 426 when the request was not a WebSocket upgrade.
final class RefusalResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handshake: ChargerHandshake
    private let record: (ChargerHandshake, ChargerHandshake.Refusal, HTTPRequestHead?) -> Void
    private var head: HTTPRequestHead?
    private var responded = false

    init(handshake: ChargerHandshake, record: @escaping (ChargerHandshake, ChargerHandshake.Refusal, HTTPRequestHead?) -> Void) {
        self.handshake = handshake
        self.record = record
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if self.handshake.upgradeAttempted {
            self.respond(context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            self.respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        guard !self.responded else { return }
        self.responded = true
        let refusal = self.handshake.refusal
            ?? self.handshake.invalidUpgradeHeaders.map(Self.invalidUpgrade)
            ?? Self.notWebSocket(self.head)
        self.handshake.apply(self.handshake.phase.refusalAnswered())
        self.record(self.handshake, refusal, self.head)
        var headers = HTTPHeaders()
        for (name, value) in refusal.headers
        where !["content-length", "connection", "transfer-encoding"].contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(refusal.body.readableBytes))
        headers.replaceOrAdd(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: refusal.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(refusal.body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    static func invalidUpgrade(_ detail: String) -> ChargerHandshake.Refusal {
        ChargerHandshake.Refusal(
            status: .badRequest, headers: ["Content-Type": "text/plain; charset=utf-8"],
            body: ByteBuffer(string: detail + "\n"), cause: "invalidUpgrade", detail: detail
        )
    }

    static func notWebSocket(_ head: HTTPRequestHead?) -> ChargerHandshake.Refusal {
        let detail: String
        if let head {
            let upgrade = head.headers.first(name: "Upgrade") ?? "none"
            detail = "\(head.method) \(head.uri) is not a WebSocket upgrade (Upgrade: \(upgrade)); OCPP-J needs `Upgrade: websocket` with Sec-WebSocket-Key and Sec-WebSocket-Version 13"
        } else {
            detail = "request is not a WebSocket upgrade"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Upgrade", value: "websocket")
        return ChargerHandshake.Refusal(
            status: .upgradeRequired, headers: headers, body: ByteBuffer(string: detail + "\n"), cause: "notWebSocket",
            detail: detail
        )
    }
}

@available(*, unavailable)
extension RefusalResponder: Sendable {}
