import NIOCore
import OCPPWire

/// The WebSocket opcode of a recorded frame, by its name in capture files.
public enum FrameOpcode: String, Sendable, Hashable, Codable {
    case text, binary, ping, pong, close, continuation
}

/// One WebSocket message (reassembled from its fragments) or control frame seen by the proxy.
///
/// Built on the event loop with nothing but cheap facts; the writer thread turns it into JSON.
public struct FrameEvent: Sendable {
    public var ts: Timestamp
    public var connection: UInt64
    public var chargePoint: String
    public var direction: Direction
    public var opcode: FrameOpcode
    /// The unmasked message bytes, exactly as the sender wrote them.
    public var payload: ByteBuffer
    /// How many WebSocket frames carried this message.
    public var fragments: Int
    /// The message came compressed (permessage-deflate); `payload` is its inflated text.
    public var compressed = false
    /// The OCPP envelope, when the message is a well-formed OCPP-J message.
    public var envelope: OCPPEnvelope?
    /// Why a text message is not OCPP-J, when it is not.
    public var malformed: MalformedMessage?
    /// For a response, the action of the CALL it answers.
    public var correlatedAction: String?
    /// For a response, nanoseconds since its CALL passed the proxy.
    public var latencyNanos: UInt64?
    /// A response whose id matched no outstanding CALL.
    public var unmatchedResponse: Bool
    /// Set when the proxy itself originated the frame.
    public var injected: Bool
    /// Set when a fault changed, delayed or dropped the frame; names the policy rule.
    public var fault: JSONObject?
    /// Set by `leaveToRecorder(seenNanos:)`: the monotonic time the proxy saw a message whose envelope and
    /// call the recorder's thread reads and correlates. Who correlates a connection's calls is decided once
    /// per connection, in this package: the relay when a fault policy needs them on the event loop, the
    /// writer otherwise.
    package private(set) var seenNanos: UInt64?
    /// The connection's count of queued records, which the writer decrements once this one is written.
    public var share: RecorderShare?

    public init(
        ts: Timestamp, connection: UInt64, chargePoint: String, direction: Direction, opcode: FrameOpcode,
        payload: ByteBuffer, fragments: Int = 1, envelope: OCPPEnvelope? = nil, malformed: MalformedMessage? = nil,
        correlatedAction: String? = nil, latencyNanos: UInt64? = nil, unmatchedResponse: Bool = false,
        injected: Bool = false, fault: JSONObject? = nil
    ) {
        self.ts = ts
        self.connection = connection
        self.chargePoint = chargePoint
        self.direction = direction
        self.opcode = opcode
        self.payload = payload
        self.fragments = fragments
        self.envelope = envelope
        self.malformed = malformed
        self.correlatedAction = correlatedAction
        self.latencyNanos = latencyNanos
        self.unmatchedResponse = unmatchedResponse
        self.injected = injected
        self.fault = fault
    }

    /// Leaves reading the envelope and correlating the call to the recorder's thread, which does it for
    /// every message of the connection in the order they were recorded, off the forwarding path.
    /// `seenNanos`: the monotonic time the message was seen, for the call's latency.
    package mutating func leaveToRecorder(seenNanos: UInt64) {
        self.seenNanos = seenNanos
    }
}

extension FrameEvent {
    /// Notes what call correlation found for this message: the answered CALL's action and latency, or
    /// that it answers no outstanding CALL.
    public mutating func note<Context>(_ outcome: CallCorrelator<Context>.Outcome) {
        switch outcome {
        case .response(let call, let latency):
            self.correlatedAction = call.action
            self.latencyNanos = latency
        case .unmatchedResponse:
            self.unmatchedResponse = true
        case .call, .duplicateCall, .none:
            break
        }
    }
}
