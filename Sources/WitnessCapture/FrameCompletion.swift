import NIOCore
import OCPPWire

/// Reads the envelope of the frames the proxy recorded without reading it (`FrameEvent.leaveToRecorder`) and
/// correlates their calls, on the writer thread, in the order they were recorded. One correlator per
/// open connection; the connection's `close` record releases it.
struct FrameCompletion {
    /// Whether messages are parsed whole on the way, because someone reads them next (live analysis),
    /// or only their envelope is scanned.
    let parsesMessages: Bool
    private var correlators: [UInt64: CallCorrelator<Void>] = [:]

    init(parsesMessages: Bool) {
        self.parsesMessages = parsesMessages
    }

    /// Completes `frame` when the proxy left its envelope to the writer, and returns the message when it
    /// was parsed whole on the way, so that the next reader need not parse it again.
    mutating func complete(_ frame: inout FrameEvent) -> JSONValue? {
        guard let seen = frame.seenNanos, frame.opcode == .text, frame.envelope == nil, frame.malformed == nil else {
            return nil
        }
        let message = self.parsesMessages ? frame.payload.withUnsafeReadableBytes { try? JSONParser.parse($0) } : nil
        if let message, let envelope = OCPPEnvelope(parsed: message) {
            frame.envelope = envelope
        } else {
            // Not parsed, or not a well-formed message: the scan says precisely what is wrong.
            switch OCPPEnvelope.parse(frame.payload) {
            case .success(let envelope): frame.envelope = envelope
            case .failure(let malformed): frame.malformed = malformed
            }
        }
        if let envelope = frame.envelope {
            frame.note(
                self.correlators[frame.connection, default: CallCorrelator()].observe(envelope, direction: frame.direction, atNanos: seen)
            )
        }
        return message
    }

    /// A connection's `close` record: its calls are done with.
    mutating func closed(_ connection: UInt64) {
        self.correlators.removeValue(forKey: connection)
    }
}
