import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import OCPPWire

/// What a CALL got back.
public enum CallResponse: Sendable, Hashable {
    case result(JSONValue)
    case error(code: String, description: String, details: JSONValue)

    /// The CALLRESULT payload, or an error for a CALLERROR.
    public func payload() throws -> JSONValue {
        switch self {
        case .result(let payload): return payload
        case .error(let code, let description, _): throw OCPPEndpointError("CALLERROR \(code): \(description)")
        }
    }
}

public struct OCPPEndpointError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Answers CALLs the other side sends: return a CALLRESULT payload, or throw `CallErrorReply`.
public typealias CallHandler = @Sendable (_ action: String, _ payload: JSONValue) async throws -> JSONValue

/// Thrown by a `CallHandler` to answer with a CALLERROR.
/// Thrown by a CALL handler that leaves the CALL unanswered, as firmware that drops it does.
public struct NoReply: Error, Sendable {
    public init() {}
}

public struct CallErrorReply: Error, Sendable {
    public var code: String
    public var description: String
    public init(code: String, description: String = "") {
        self.code = code
        self.description = description
    }
}

/// One end of an OCPP-J WebSocket connection, used by both simulators.
///
/// Sends CALLs and awaits their results, answers the peer's CALLs through a handler, answers pings,
/// completes the close handshake, and keeps a transcript of the exact text it sent and received.
public final class OCPPEndpoint: Sendable {
    public let channel: any Channel
    public let version: OCPPVersion
    /// Whether this end is the WebSocket client (it must mask what it sends).
    public let isClient: Bool

    private struct State {
        var pending: [String: CheckedContinuation<CallResponse, any Error>] = [:]
        var handler: CallHandler?
        var onMalformed: (@Sendable (String) -> Void)?
        var sent: [String] = []
        var received: [String] = []
        var receivedPings: [ByteBuffer] = []
        var receivedPongs: [ByteBuffer] = []
        var closeReceived: (code: UInt16?, reason: String)?
        /// Set once this end has sent a close frame; the peer's close then completes the handshake.
        var closeSent = false
        var nextId = 1
        var receivedFragments: [Int] = []
        var assembling: (opcode: WebSocketOpcode, data: ByteBuffer, fragments: Int)?
    }

    private let state = NIOLockedValueBox(State())
    private let idPrefix: String

    /// Whether `transcript` keeps the messages; a long-running simulator keeps none, or it grows for ever.
    private let keepsTranscript: Bool

    init(channel: any Channel, version: OCPPVersion, isClient: Bool, idPrefix: String, keepsTranscript: Bool = true) {
        self.keepsTranscript = keepsTranscript
        self.channel = channel
        self.version = version
        self.isClient = isClient
        self.idPrefix = idPrefix
        channel.closeFuture.whenComplete { _ in
            let pending = self.state.withLockedValue { state in
                defer { state.pending.removeAll() }
                return state.pending
            }
            for continuation in pending.values {
                continuation.resume(throwing: OCPPEndpointError("connection closed before the CALL was answered"))
            }
        }
    }

    /// Sets the handler for CALLs from the peer; without one, they get `NotImplemented`.
    public func onCall(_ handler: @escaping CallHandler) {
        self.state.withLockedValue { $0.handler = handler }
    }

    /// Called with the text of every received message that is not an OCPP message at all (not JSON, not an
    /// OCPP array), after the specification's answer (if any) went out.
    public func onMalformed(_ handler: @escaping @Sendable (String) -> Void) {
        self.state.withLockedValue { $0.onMalformed = handler }
    }

    /// Text messages sent and received, exactly as on the wire, in order.
    public var transcript: (sent: [String], received: [String]) {
        self.state.withLockedValue { ($0.sent, $0.received) }
    }

    /// How many WebSocket frames carried each received text message.
    public var receivedFragments: [Int] { self.state.withLockedValue { $0.receivedFragments } }
    public var receivedPongs: [ByteBuffer] { self.state.withLockedValue { $0.receivedPongs } }
    public var receivedPings: [ByteBuffer] { self.state.withLockedValue { $0.receivedPings } }
    public var closeReceived: (code: UInt16?, reason: String)? { self.state.withLockedValue { $0.closeReceived } }
    public var isActive: Bool { self.channel.isActive }

    /// CALLs of this side still waiting for their answers.
    public var pendingCalls: Int { self.state.withLockedValue { $0.pending.count } }

    /// Sends a CALL and waits for its CALLRESULT or CALLERROR.
    public func call(_ action: String, _ payload: JSONValue, timeout: Duration = .seconds(30)) async throws -> CallResponse {
        let id = self.state.withLockedValue { state -> String in
            defer { state.nextId += 1 }
            return "\(self.idPrefix)\(state.nextId)"
        }
        let text = JSONWriter.string(.array([.int(MessageType.call.rawValue), .string(id), .string(action), payload]))
        let wait = Self.timeAmount(timeout)
        let timer = NIOLockedValueBox<Scheduled<Void>?>(nil)
        defer { timer.withLockedValue { $0?.cancel() } }
        return try await withCheckedThrowingContinuation { continuation in
            self.state.withLockedValue { $0.pending[id] = continuation }
            // Started once the CALL waits for its answer, so even a timeout of zero finds it and ends it.
            timer.withLockedValue { timer in
                timer = self.channel.eventLoop.scheduleTask(in: wait) {
                    let continuation = self.state.withLockedValue { $0.pending.removeValue(forKey: id) }
                    continuation?.resume(throwing: OCPPEndpointError("no answer to \(action) (\(id)) within \(timeout)"))
                }
            }
            self.sendText(text).whenFailure { error in
                let continuation = self.state.withLockedValue { $0.pending.removeValue(forKey: id) }
                continuation?.resume(throwing: error)
            }
        }
    }

    /// `duration` as an event-loop delay, to the nanosecond (fractions of a second included); negative
    /// durations are no delay.
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return .zero }
        let capped = min(seconds, Int64.max / 1_000_000_000 - 1)
        return .nanoseconds(capped * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Sends a text frame exactly as given (tests use this for malformed messages).
    @discardableResult
    public func sendText(_ text: String, fragments: Int = 1) -> EventLoopFuture<Void> {
        // An answer computed after the connection (or its event loop group) went away has nowhere to go;
        // writing it would hand a task to a loop that may no longer run it.
        guard self.channel.isActive else {
            return self.channel.eventLoop.makeFailedFuture(OCPPEndpointError("connection closed before \(text.prefix(40)) could be sent"))
        }
        if self.keepsTranscript { self.state.withLockedValue { $0.sent.append(text) } }
        let bytes = Array(text.utf8)
        let count = max(1, min(fragments, bytes.count))
        let size = (bytes.count + count - 1) / max(count, 1)
        var futures: [EventLoopFuture<Void>] = []
        var index = 0
        var first = true
        repeat {
            let end = min(bytes.count, index + max(size, 1))
            let frame = WebSocketFrame(
                fin: end >= bytes.count, opcode: first ? .text : .continuation, maskKey: self.maskKey(),
                data: ByteBuffer(bytes: bytes[index..<end])
            )
            futures.append(self.channel.writeAndFlush(frame))
            index = end
            first = false
        } while index < bytes.count
        return EventLoopFuture.andAllSucceed(futures, on: self.channel.eventLoop)
    }

    /// Sends a raw frame of any kind.
    @discardableResult
    public func send(opcode: WebSocketOpcode, data: ByteBuffer) -> EventLoopFuture<Void> {
        self.channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, maskKey: self.maskKey(), data: data))
    }

    /// Starts the closing handshake and waits for the connection to go away.
    public func close(code: WebSocketErrorCode = .normalClosure, reason: String = "") async {
        var data = ByteBuffer()
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        self.state.withLockedValue { $0.closeSent = true }
        _ = try? await self.send(opcode: .connectionClose, data: data).get()
        let timer = self.channel.eventLoop.scheduleTask(in: .seconds(5)) { self.channel.close(promise: nil) }
        try? await self.channel.closeFuture.get()
        timer.cancel()
    }

    /// Waits until the connection is closed.
    public func waitClosed() async {
        try? await self.channel.closeFuture.get()
    }

    private func maskKey() -> WebSocketMaskingKey? {
        self.isClient ? .random() : nil
    }

    private func deliverIfComplete(_ fin: Bool) {
        guard fin, let message = self.assembling else { return }
        self.assembling = nil
        if message.opcode == .text {
            self.receivedText(String(buffer: message.data), fragments: message.fragments)
        }
    }

    /// The message being reassembled from fragments; only touched on the channel's event loop.
    private var assembling: (opcode: WebSocketOpcode, data: ByteBuffer, fragments: Int)? {
        get { self.state.withLockedValue { $0.assembling } }
        set { self.state.withLockedValue { $0.assembling = newValue } }
    }

    // Called on the event loop by `OCPPEndpointHandler`.
    func received(_ frame: WebSocketFrame) {
        switch frame.opcode {
        case .text, .binary:
            self.assembling = (frame.opcode, frame.unmaskedData, 1)
            self.deliverIfComplete(frame.fin)
        case .continuation:
            // Taken out while it grows: a copy left in the state would make every append copy the whole message.
            guard var message = self.state.withLockedValue({ state in
                defer { state.assembling = nil }
                return state.assembling
            }) else { return }
            var part = frame.unmaskedData
            message.data.writeBuffer(&part)
            message.fragments += 1
            self.assembling = message
            self.deliverIfComplete(frame.fin)
        case .ping:
            self.state.withLockedValue { $0.receivedPings.append(frame.unmaskedData) }
            self.channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, maskKey: self.maskKey(), data: frame.unmaskedData), promise: nil)
        case .pong:
            self.state.withLockedValue { $0.receivedPongs.append(frame.unmaskedData) }
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self)
            let reason = data.readString(length: data.readableBytes) ?? ""
            let (first, alreadySent) = self.state.withLockedValue { state -> (Bool, Bool) in
                defer { if state.closeReceived == nil { state.closeReceived = (code, reason) } }
                return (state.closeReceived == nil, state.closeSent)
            }
            guard first else { return }
            if alreadySent {
                // The peer answered our close: the handshake is complete, nothing more to send.
                if !self.isClient { self.channel.close(promise: nil) }
                return
            }
            var echo = ByteBuffer()
            if let code { echo.writeInteger(code) }
            let channel = self.channel
            let isClient = self.isClient
            // Echo the close; the server end then closes TCP, the client waits for the server to do so.
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: self.maskKey(), data: echo))
                .whenComplete { _ in
                    if !isClient { channel.close(promise: nil) }
                }
        default:
            break
        }
    }

    private func receivedText(_ text: String, fragments: Int) {
        if self.keepsTranscript {
            self.state.withLockedValue {
                $0.received.append(text)
                $0.receivedFragments.append(fragments)
            }
        }
        let envelope: OCPPEnvelope
        switch OCPPEnvelope.parse(ByteBuffer(string: text)) {
        case .success(let parsed):
            envelope = parsed
        case .failure(let malformed):
            // A CALL we cannot read is answered with the version's format error, as the specification asks.
            if malformed.reason != .notJSON, malformed.messageType == MessageType.call.rawValue, let id = malformed.messageId {
                self.sendText(
                    JSONWriter.string([
                        .int(MessageType.callError.rawValue), .string(id), .string(RPCErrorCode.formatViolation(for: self.version)),
                        .string(malformed.detail), [:],
                    ])
                )
            }
            self.state.withLockedValue { $0.onMalformed }?(text)
            return
        }
        guard let message = try? JSONParser.parse(text), case .array(let items) = message else { return }
        let type = envelope.messageType
        let id = envelope.messageId
        switch type {
        case .callResult:
            let continuation = self.state.withLockedValue { $0.pending.removeValue(forKey: id) }
            continuation?.resume(returning: CallResponse.result(items[safe: 2] ?? .null))
        case .callError, .callResultError:
            let continuation = self.state.withLockedValue { $0.pending.removeValue(forKey: id) }
            continuation?.resume(
                returning: CallResponse.error(
                    code: items[safe: 2]?.stringValue ?? "", description: items[safe: 3]?.stringValue ?? "",
                    details: items[safe: 4] ?? .object(JSONObject())
                )
            )
        case .call:
            guard let action = items[safe: 2]?.stringValue else { return }
            let payload = items[safe: 3] ?? .object(JSONObject())
            let handler = self.state.withLockedValue { $0.handler }
            Task {
                let reply: JSONValue
                do {
                    guard let handler else { throw CallErrorReply(code: "NotImplemented", description: "no handler for \(action)") }
                    let result = try await handler(action, payload)
                    reply = .array([.int(MessageType.callResult.rawValue), .string(id), result])
                } catch is NoReply {
                    return
                } catch let error as CallErrorReply {
                    reply = .array([
                        .int(MessageType.callError.rawValue), .string(id), .string(error.code), .string(error.description),
                        .object(JSONObject()),
                    ])
                } catch {
                    reply = .array([
                        .int(MessageType.callError.rawValue), .string(id), "InternalError", .string("\(error)"), .object(JSONObject()),
                    ])
                }
                self.sendText(JSONWriter.string(reply))
            }
        case .send:
            break
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { self.indices.contains(index) ? self[index] : nil }
}

/// Delivers frames from the pipeline to an `OCPPEndpoint`.
final class OCPPEndpointHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    private let endpoint: NIOLockedValueBox<OCPPEndpoint?>
    private var early: [WebSocketFrame] = []

    init(endpoint: NIOLockedValueBox<OCPPEndpoint?>) { self.endpoint = endpoint }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        guard let endpoint = self.endpoint.withLockedValue({ $0 }) else {
            self.early.append(frame)
            return
        }
        for early in self.early { endpoint.received(early) }
        self.early.removeAll()
        endpoint.received(frame)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is EndpointReady, let endpoint = self.endpoint.withLockedValue({ $0 }) else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        for early in self.early { endpoint.received(early) }
        self.early.removeAll()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Tells an `OCPPEndpointHandler` that its endpoint exists, so frames that came first are delivered.
struct EndpointReady: Sendable {}

@available(*, unavailable)
extension OCPPEndpointHandler: Sendable {}
