import NIOCore

/// The routing part of an OCPP-J message: what kind of message it is, its id and its action.
///
/// Parsed straight from the frame bytes without building the payload, so the forwarding path can
/// afford it for every message. The payload is located by byte range for whoever needs it later.
public struct OCPPEnvelope: Sendable, Hashable {
    public var messageType: MessageType
    public var messageId: String
    /// The action of a CALL or SEND.
    public var action: String?
    /// The error code of a CALLERROR or CALLRESULTERROR.
    public var errorCode: String?
    /// The error description of a CALLERROR or CALLRESULTERROR.
    public var errorDescription: String?
    /// Byte range of the payload (CALL/SEND/CALLRESULT) or error details (errors) within the message;
    /// nil when the envelope was read from a message already parsed (`init?(parsed:)`).
    public var payloadRange: Range<Int>?

    public init(
        messageType: MessageType, messageId: String, action: String? = nil, errorCode: String? = nil,
        errorDescription: String? = nil, payloadRange: Range<Int>?
    ) {
        self.messageType = messageType
        self.messageId = messageId
        self.action = action
        self.errorCode = errorCode
        self.errorDescription = errorDescription
        self.payloadRange = payloadRange
    }
}

/// Why a text frame is not an OCPP-J message, precise enough to put in a report.
public struct MalformedMessage: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: String, Sendable, Hashable, Codable {
        /// The frame is not JSON at all (or is cut short).
        case notJSON
        /// The frame is JSON, but not an array.
        case notArray
        /// The first element is not an integer message type.
        case messageTypeNotInteger
        /// The message type is an integer outside 2...6.
        case unknownMessageType
        /// The array has the wrong number of elements for its message type.
        case wrongArity
        /// The message id is not a string.
        case messageIdNotString
        /// The action (CALL/SEND) or error code (errors) is not a string.
        case fieldNotString
        /// The payload is not a JSON object.
        case payloadNotObject
    }

    public var reason: Reason
    public var detail: String
    /// The message type, when it was readable.
    public var messageType: Int?
    /// The message id, when it was readable; lets a report tie the frame to a CALL.
    public var messageId: String?

    public var description: String { self.detail }
}

extension OCPPEnvelope {
    /// Parses the envelope of a text frame's bytes.
    public static func parse(_ buffer: ByteBuffer) -> Result<OCPPEnvelope, MalformedMessage> {
        buffer.withUnsafeReadableBytes { parse($0) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<OCPPEnvelope, MalformedMessage> {
        var scanner = JSONScanner(bytes: bytes)
        var found = Found()
        do {
            try Self.scan(&scanner, into: &found)
        } catch let error as MalformedMessage {
            return .failure(error)
        } catch let error as JSONParseError {
            return .failure(
                MalformedMessage(
                    reason: .notJSON, detail: error.description, messageType: found.type, messageId: found.messageId
                )
            )
        } catch {
            return .failure(MalformedMessage(reason: .notJSON, detail: "\(error)"))
        }
        return found.envelope
    }

    /// The envelope of a message someone has already parsed whole, when it is a well-formed OCPP-J message:
    /// what `parse` finds in the message's bytes, without the payload's byte range. Nil when it is not
    /// well-formed; `parse` on the bytes then says precisely why. Saves scanning a message twice where it
    /// is parsed anyway.
    public init?(parsed message: JSONValue) {
        guard case .array(let items) = message, case .number(let text)? = items.first, let number = Int(text),
            let type = MessageType(rawValue: number), items.count == type.arity, case .string(let id) = items[1]
        else { return nil }
        switch type {
        case .call, .send:
            guard case .string(let action) = items[2], case .object = items[3] else { return nil }
            self.init(messageType: type, messageId: id, action: action, payloadRange: nil)
        case .callResult:
            guard case .object = items[2] else { return nil }
            self.init(messageType: type, messageId: id, payloadRange: nil)
        case .callError, .callResultError:
            guard case .string(let code) = items[2], case .string(let description) = items[3], case .object = items[4]
            else { return nil }
            self.init(messageType: type, messageId: id, errorCode: code, errorDescription: description, payloadRange: nil)
        }
    }

    private struct Found {
        var type: Int?
        var messageType: MessageType?
        var messageId: String?
        var third: String?
        var errorDescription: String?
        var payloadRange: Range<Int>?
        var count = 0

        var envelope: Result<OCPPEnvelope, MalformedMessage> {
            guard let messageType, let messageId, let payloadRange else {
                return .failure(MalformedMessage(reason: .wrongArity, detail: "incomplete message", messageType: type))
            }
            var envelope = OCPPEnvelope(messageType: messageType, messageId: messageId, payloadRange: payloadRange)
            switch messageType {
            case .call, .send: envelope.action = self.third
            case .callError, .callResultError:
                envelope.errorCode = self.third
                envelope.errorDescription = self.errorDescription
            case .callResult: break
            }
            return .success(envelope)
        }

        func failure(_ reason: MalformedMessage.Reason, _ detail: String) -> MalformedMessage {
            MalformedMessage(reason: reason, detail: detail, messageType: self.type, messageId: self.messageId)
        }
    }

    private static func scan(_ scanner: inout JSONScanner, into found: inout Found) throws {
        scanner.skipWhitespace()
        guard let first = scanner.current else {
            throw found.failure(.notJSON, "empty frame")
        }
        guard first == UInt8(ascii: "[") else {
            // Tell "valid JSON, wrong shape" apart from "not JSON".
            var probe = scanner
            try probe.skipValue(depth: 0)
            probe.skipWhitespace()
            guard probe.isAtEnd else { throw probe.error("unexpected data after the JSON value") }
            throw found.failure(.notArray, "message is a JSON \(Self.typeName(first)), not an array")
        }
        scanner.offset += 1
        scanner.skipWhitespace()
        if scanner.current == UInt8(ascii: "]") {
            scanner.offset += 1
            try Self.finish(&scanner)
            throw found.failure(.wrongArity, "message is an empty array")
        }
        while true {
            scanner.skipWhitespace()
            try Self.element(&scanner, index: found.count, into: &found)
            found.count += 1
            scanner.skipWhitespace()
            if scanner.current == UInt8(ascii: ",") {
                scanner.offset += 1
                continue
            }
            try scanner.expect(UInt8(ascii: "]"), "',' or ']' in message array")
            break
        }
        try Self.finish(&scanner)
        guard let messageType = found.messageType else {
            throw found.failure(.wrongArity, "message array has no message type")
        }
        guard found.count == messageType.arity else {
            throw found.failure(
                .wrongArity,
                "\(messageType.name) must have \(messageType.arity) elements, found \(found.count)"
            )
        }
    }

    private static func finish(_ scanner: inout JSONScanner) throws {
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { throw scanner.error("unexpected data after the message array") }
    }

    private static func element(_ scanner: inout JSONScanner, index: Int, into found: inout Found) throws {
        let start = scanner.offset
        switch index {
        case 0:
            guard let byte = scanner.current, byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte) else {
                try scanner.skipValue(depth: 1)
                throw found.failure(.messageTypeNotInteger, "message type must be an integer")
            }
            let range = try scanner.scanNumber()
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self)
            guard let number = Int(text) else {
                throw found.failure(.messageTypeNotInteger, "message type must be an integer, found \(text)")
            }
            found.type = number
            guard let type = MessageType(rawValue: number) else {
                throw found.failure(.unknownMessageType, "unknown message type \(number)")
            }
            found.messageType = type
        case 1:
            guard scanner.current == UInt8(ascii: "\"") else {
                try scanner.skipValue(depth: 1)
                throw found.failure(.messageIdNotString, "message id must be a string")
            }
            found.messageId = try scanner.parseString()
        default:
            guard let type = found.messageType else { return }
            let isPayload: Bool
            switch type {
            case .call, .send: isPayload = index == 3
            case .callResult: isPayload = index == 2
            case .callError, .callResultError: isPayload = index == 4
            }
            let isText = (type == .call || type == .send) ? index == 2 : (type.arity == 5 && index <= 3)
            if isText {
                guard scanner.current == UInt8(ascii: "\"") else {
                    try scanner.skipValue(depth: 1)
                    let field = index == 2 ? (type.isResponse ? "error code" : "action") : "error description"
                    throw found.failure(.fieldNotString, "\(field) must be a string")
                }
                let text = try scanner.parseString()
                if index == 2 { found.third = text } else { found.errorDescription = text }
            } else {
                let isObject = scanner.current == UInt8(ascii: "{")
                try scanner.skipValue(depth: 1)
                if isPayload {
                    found.payloadRange = start..<scanner.offset
                    if !isObject {
                        // Keep scanning: a wrong arity is the more fundamental fault to report.
                        var rest = scanner
                        rest.skipWhitespace()
                        if rest.current == UInt8(ascii: "]") {
                            throw found.failure(
                                .payloadNotObject,
                                "\(type.isResponse && type != .callResult ? "error details" : "payload") must be a JSON object"
                            )
                        }
                    }
                }
            }
        }
    }

    private static func typeName(_ first: UInt8) -> String {
        switch first {
        case UInt8(ascii: "{"): return "object"
        case UInt8(ascii: "\""): return "string"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "boolean"
        case UInt8(ascii: "n"): return "null"
        default: return "number"
        }
    }
}
