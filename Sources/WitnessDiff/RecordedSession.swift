import OCPPWire
import WitnessCapture

/// One CALL and what answered it, as recorded.
public struct RecordedExchange: Sendable, Hashable {
    public enum Answer: Sendable, Hashable {
        case result(JSONValue)
        case error(code: String, description: String)
        /// No answer is in the capture (the connection ended, or the answer was dropped).
        case none
    }

    /// Which way the CALL went: `toCSMS` for a charger's CALL, `toCharger` for the backend's.
    public var direction: Direction
    public var action: String
    public var request: JSONValue
    public var answer: Answer
    /// When the CALL was recorded, microseconds since the epoch.
    public var time: Int64
    /// `file:line` of the CALL and of its answer.
    public var reference: String
    public var answerReference: String?
}

/// What a capture holds about one charger connection, reduced to what replay and diff need.
public struct RecordedSession: Sendable {
    public var connection: UInt64
    public var chargePoint: String
    public var version: OCPPVersion?
    /// The subprotocol the backend chose, as recorded.
    public var subprotocol: String?
    public var path: String
    public var query: String?
    public var opened: Int64
    public var closed: Int64?
    public var closeCode: Int?
    /// CALLs of both sides in the order they were recorded, each with its answer.
    public var exchanges: [RecordedExchange]
    /// Data messages that were not OCPP-J CALLs or answers to them (malformed text, binary, SEND).
    public var otherMessages: Int

    public func exchanges(_ direction: Direction) -> [RecordedExchange] { self.exchanges.filter { $0.direction == direction } }
}

/// Reads the sessions of a capture.
public enum RecordedCapture {
    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Every connection that reached `open` in the capture at `paths`, in the order they opened.
    public static func load(_ paths: [String]) throws -> [RecordedSession] {
        var issues: [CaptureReadIssue] = []
        return try self.load(paths, issues: &issues)
    }

    /// `load(_:)`, adding the lines of the capture that could not be read (or not wholly) to `issues`.
    public static func load(_ paths: [String], issues: inout [CaptureReadIssue]) throws -> [RecordedSession] {
        let reader: CaptureReader
        do {
            reader = try CaptureReader(paths: paths)
        } catch {
            throw LoadError(description: "cannot read capture \(paths.joined(separator: " ")): \(error)")
        }
        var sessions: [UInt64: RecordedSession] = [:]
        var order: [UInt64] = []
        // Outstanding CALLs per connection, each with its index into `exchanges`; unbounded, as a capture
        // is read whole.
        var correlators: [UInt64: CallCorrelator<Int>] = [:]
        for record in reader {
            guard let connection = record.connection, let time = record.ts?.microseconds else { continue }
            switch record.recordKind {
            case .open:
                let version = record.fields["version"]?.stringValue.flatMap(OCPPVersion.init(rawValue:))
                sessions[connection] = RecordedSession(
                    connection: connection, chargePoint: record.chargePoint ?? "", version: version,
                    subprotocol: record.fields["chosen"]?.stringValue, path: record.fields["path"]?.stringValue ?? "/",
                    query: record.fields["query"]?.stringValue, opened: time, closed: nil, closeCode: nil, exchanges: [],
                    otherMessages: 0
                )
                if !order.contains(connection) { order.append(connection) }
                correlators[connection] = nil
            case .close:
                sessions[connection]?.closed = time
                sessions[connection]?.closeCode = record.fields["code"]?.intValue
                correlators[connection] = nil
            case .frame:
                guard var session = sessions[connection], let direction = record.direction,
                    record.opcode == .text || record.opcode == .binary
                else { continue }
                // Frames the proxy made itself are not the peers' behaviour; answers to its injected CALLs neither.
                if record.fields["injected"]?.boolValue == true { continue }
                if case .object(let fault) = record.fields["fault"], fault["answer"]?.boolValue == true { continue }
                guard let message = record.message, let type = record.messageType, let id = record.messageId else {
                    session.otherMessages += 1
                    sessions[connection] = session
                    continue
                }
                switch type {
                case .call:
                    let exchange = RecordedExchange(
                        direction: direction, action: record.action ?? "", request: message[3] ?? .object(JSONObject()),
                        answer: .none, time: time, reference: record.reference, answerReference: nil
                    )
                    _ = correlators[connection, default: CallCorrelator(maximumOutstanding: .max)].observe(
                        type, messageId: id, action: exchange.action, direction: direction, atNanos: Timestamp(microseconds: time).nanosecondsSince1970, context: session.exchanges.count
                    )
                    session.exchanges.append(exchange)
                case .callResult, .callError, .callResultError:
                    // A damaged capture may open a connection twice: an answer then settles a CALL of the first.
                    guard let index = correlators[connection]?.settle(id, answerTravelling: direction)?.context,
                        session.exchanges.indices.contains(index)
                    else {
                        session.otherMessages += 1
                        break
                    }
                    if type == .callResult {
                        session.exchanges[index].answer = .result(message[2] ?? .object(JSONObject()))
                    } else {
                        session.exchanges[index].answer = .error(
                            code: message[2]?.stringValue ?? "", description: message[3]?.stringValue ?? ""
                        )
                    }
                    session.exchanges[index].answerReference = record.reference
                case .send:
                    session.otherMessages += 1
                }
                sessions[connection] = session
            default:
                continue
            }
        }
        issues += reader.issues
        return order.compactMap { sessions[$0] }
    }
}
