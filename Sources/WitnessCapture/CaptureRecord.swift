import OCPPWire

/// One record of a capture file, with where it came from so a report can point at it.
public struct CaptureRecord: Sendable, Hashable {
    public var file: String
    /// 1-based line number within `file`.
    public var line: Int
    /// The record's members, in the order of its line. A frame record the writer hands its observer makes
    /// them only when asked: its consumers read the typed fields below.
    public var fields: JSONObject {
        get {
            switch self.storage {
            case .fields(let fields): return fields
            case .frame(let details): return details.fields(self.facts)
            }
        }
        set {
            self.storage = .fields(newValue)
            self.facts = Facts(newValue)
        }
    }
    private var storage: Storage
    /// The exact text of `payload` as it stands in the file, for `enc: "json"` frames, when the reader was
    /// asked to keep it (`CaptureReader.keepsMessageText`); parsing loses spacing between tokens.
    public var payloadText: [UInt8]?
    /// The record's line as the writer wrote it (with its line feed), when the writer hands the record to its
    /// observer: an observer that keeps records as text need not serialise them again. Nil from the reader;
    /// not part of equality, so the observer's records equal the reader's.
    public var text: [UInt8]?
    /// The fields every consumer reads for every record, typed once when the record is made.
    private(set) var facts: Facts

    public init(file: String, line: Int, fields: JSONObject, payloadText: [UInt8]? = nil) {
        self.file = file
        self.line = line
        self.storage = .fields(fields)
        self.payloadText = payloadText
        self.facts = Facts(fields)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.file == rhs.file && lhs.line == rhs.line && lhs.fields == rhs.fields && lhs.payloadText == rhs.payloadText
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.file)
        hasher.combine(self.line)
        hasher.combine(self.fields)
        hasher.combine(self.payloadText)
    }

    /// A frame record made from the event the writer wrote: `facts` and `details` must give what a reader
    /// finds in its line (the serializer's tests hold both equal).
    init(file: String, line: Int, facts: Facts, details: FrameDetails) {
        self.file = file
        self.line = line
        self.storage = .frame(details)
        self.payloadText = nil
        self.facts = facts
    }

    /// Adds the line's number and hash-chain link, which the writer puts last on the line.
    mutating func chained(number: Int, link: (UInt64, UInt64)) {
        switch self.storage {
        case .frame(var details):
            details.link = (number, link)
            self.storage = .frame(details)
        case .fields(var fields):
            fields.members.append(.init(key: "n", value: .number(String(number))))
            fields.members.append(.init(key: "chain", value: .string(CaptureChain.hex(link: link))))
            self.storage = .fields(fields)
        }
    }

    private enum Storage: Sendable {
        case fields(JSONObject)
        case frame(FrameDetails)
    }

    /// `kind` as written (also one this version does not know).
    public var kind: String? { self.facts.kind }
    /// `kind`, when it is one this version knows.
    public var recordKind: RecordKind? { self.facts.recordKind }
    public var ts: Timestamp? { self.facts.ts }
    /// `ts` as written in the record.
    public var timestamp: String? { self.stamp.text }
    /// `timestamp` before it is made into text: for consumers that keep the stamps of many records and
    /// show few of them.
    public var stamp: Stamp { Stamp(written: self.facts.timestamp, ts: self.facts.timestamp == nil ? self.facts.ts : nil) }

    /// A record's timestamp: the text a reader found, or the instant the writer wrote as RFC 3339.
    public struct Stamp: Sendable, Hashable {
        var written: String?
        var ts: Timestamp?
        public var text: String? { self.written ?? self.ts?.rfc3339 }
    }
    public var connection: UInt64? { self.facts.connection }
    public var chargePoint: String? { self.facts.chargePoint }
    public var direction: Direction? { self.facts.direction }
    public var opcode: FrameOpcode? { self.facts.opcode }
    public var action: String? { self.facts.action }
    public var messageId: String? { self.facts.messageId }
    public var messageType: MessageType? { self.facts.messageType }
    /// The recorded message as JSON, when it was valid JSON (`enc` is `json`).
    public var message: JSONValue? { self.facts.message }
    /// A response's `latencyMs`: how long after its CALL it passed the proxy.
    public var latencyMilliseconds: Double? { self.facts.latencyMilliseconds }
    /// A frame's `malformed` details: why its text is not an OCPP-J message.
    public var malformed: JSONObject? { self.facts.malformed }
    /// A frame OCPP Witness originated (`injected`).
    public var injected: Bool { self.facts.injected }
    /// The policy rule of a frame's `fault`, when a fault changed, delayed or dropped it.
    public var faultRule: String? { self.facts.faultRule }
    /// A frame's whole `fault` (rule, kind and the kind's details), read without building the record's other
    /// fields: a frame the recorder hands over live keeps it apart from them.
    public var fault: JSONObject? {
        guard self.facts.faultRule != nil else { return nil }
        switch self.storage {
        case .fields(let fields): return fields["fault"]?.objectValue
        case .frame(let details): return details.fault
        }
    }
    /// `file:line`, the reference reports use.
    public var reference: String { "\(self.file):\(self.line)" }

    /// The typed fields of a record, read in one pass over its members.
    struct Facts: Sendable, Hashable {
        var kind: String?
        var recordKind: RecordKind?
        var timestamp: String?
        var ts: Timestamp?
        var connection: UInt64?
        var chargePoint: String?
        var direction: Direction?
        var opcode: FrameOpcode?
        var action: String?
        var messageId: String?
        var messageType: MessageType?
        var message: JSONValue?
        var latencyMilliseconds: Double?
        var malformed: JSONObject?
        var injected = false
        var faultRule: String?
        /// A typed field whose value no writer makes (a latency of 1e308 ms, a negative connection number):
        /// the value is left out, and the reader lists the line with this text.
        var problem: String?
    }

    /// What in the record's typed fields could not be used, if anything (the reader lists it as a read issue).
    public var problem: String? { self.facts.problem }

    /// The longest latency a record can carry: 30 days, in milliseconds (any duration the proxy handles).
    static let maximumLatencyMilliseconds = 30.0 * 86_400_000

    /// The frame's payload bytes as the sender wrote them, as far as the record keeps them: the exact
    /// text of a JSON message (from `raw`, or `payloadText` when the reader kept it; otherwise the value
    /// written compactly), text as UTF-8, base64 decoded, and a close frame's code and reason.
    /// Redacted records give the redacted text.
    public var payloadBytes: [UInt8]? {
        if self.opcode == .close {
            guard let code = self.fields["code"]?.intValue, let codeValue = UInt16(exactly: code) else { return [] }
            return [UInt8(codeValue >> 8), UInt8(codeValue & 0xFF)] + Array((self.fields["reason"]?.stringValue ?? "").utf8)
        }
        switch self.fields["enc"]?.stringValue {
        case "json":
            if let raw = self.fields["raw"]?.stringValue { return Array(raw.utf8) }
            if let text = self.payloadText { return text }
            guard let payload = self.fields["payload"] else { return nil }
            var out: [UInt8] = []
            JSONWriter.write(payload, into: &out)
            return out
        case "text":
            return self.fields["payload"]?.stringValue.map { Array($0.utf8) }
        case "base64":
            return self.fields["payload"]?.stringValue.flatMap { Base64.decode($0) }
        default:
            return nil
        }
    }
}

extension CaptureRecord.Facts {
    /// Reads the typed fields from a record's members (an extension, so the memberwise initializer the
    /// serializer uses stays).
    init(_ fields: JSONObject) {
        var isJSON = false
        var payload: JSONValue?
        // The first member of a name counts, as with `JSONObject`'s subscript: a bit per name seen.
        var seen: UInt16 = 0
        func first(_ bit: UInt16) -> Bool {
            defer { seen |= bit }
            return seen & bit == 0
        }
        for member in fields.members {
            let value = member.value
            switch member.key {
            case "kind" where first(1 << 0):
                self.kind = value.stringValue
                self.recordKind = value.stringValue.flatMap(RecordKind.init(rawValue:))
            case "ts" where first(1 << 1):
                self.timestamp = value.stringValue
                self.ts = value.stringValue.flatMap(Timestamp.init(rfc3339:))
            case "conn" where first(1 << 2):
                self.connection = value.intValue.flatMap { UInt64(exactly: $0) }
                if self.connection == nil && value != .null { self.note("conn \(Self.excerpt(value)) is not a connection number") }
            case "chargePoint" where first(1 << 3): self.chargePoint = value.stringValue
            case "dir" where first(1 << 4): self.direction = value.stringValue.flatMap(Direction.init(rawValue:))
            case "opcode" where first(1 << 5): self.opcode = value.stringValue.flatMap(FrameOpcode.init(rawValue:))
            case "action" where first(1 << 6): self.action = value.stringValue
            case "msgId" where first(1 << 7): self.messageId = value.stringValue
            case "msgType" where first(1 << 8): self.messageType = value.intValue.flatMap(MessageType.init(rawValue:))
            case "enc" where first(1 << 9): isJSON = value.stringValue == "json"
            case "payload" where first(1 << 10): payload = value
            case "latencyMs" where first(1 << 11):
                if let milliseconds = value.doubleValue, milliseconds.isFinite, (0...CaptureRecord.maximumLatencyMilliseconds).contains(milliseconds) {
                    self.latencyMilliseconds = milliseconds
                } else if value != .null {
                    self.note("latencyMs \(Self.excerpt(value)) is not a latency from 0 to 30 days; left out")
                }
            case "malformed" where first(1 << 12): self.malformed = value.objectValue
            case "injected" where first(1 << 13): self.injected = value.boolValue ?? false
            case "fault" where first(1 << 14): self.faultRule = value["rule"]?.stringValue
            default: break
            }
        }
        self.message = isJSON ? payload : nil
    }

    /// Adds a problem with a field to the record's; a line may have several.
    mutating func note(_ problem: String) {
        self.problem = self.problem.map { $0 + "; " + problem } ?? problem
    }

    /// A value as a read issue quotes it: its JSON, at most 40 characters.
    static func excerpt(_ value: JSONValue) -> String {
        let text = JSONWriter.string(value)
        return text.count > 40 ? String(text.prefix(40)) + "…" : text
    }
}


/// What a frame record's line holds beyond its typed fields, kept by the writer so that the record's members
/// are made only when someone reads them.
struct FrameDetails: Sendable {
    var size: Int
    var fragments: Int
    var compressed: Bool
    var errorCode: String?
    var latencyNanos: UInt64?
    var unmatched: Bool
    var fault: JSONObject?
    /// The line's number and link in the file's hash chain (format 2), as the writer ended the line.
    var link: (number: Int, chain: (UInt64, UInt64))?

    /// The members in the order `CaptureSerializer.append` writes them.
    func fields(_ facts: CaptureRecord.Facts) -> JSONObject {
        var members: [JSONObject.Member] = []
        members.reserveCapacity(18)
        members.append(.init(key: "ts", value: (facts.timestamp ?? facts.ts?.rfc3339).map(JSONValue.string) ?? .null))
        members.append(.init(key: "kind", value: "frame"))
        members.append(.init(key: "conn", value: facts.connection.map { .number(String($0)) } ?? .null))
        members.append(.init(key: "chargePoint", value: facts.chargePoint.map(JSONValue.string) ?? .null))
        members.append(.init(key: "dir", value: facts.direction.map { .string($0.rawValue) } ?? .null))
        members.append(.init(key: "opcode", value: facts.opcode.map { .string($0.rawValue) } ?? .null))
        members.append(.init(key: "size", value: .number(String(self.size))))
        if self.fragments != 1 { members.append(.init(key: "fragments", value: .number(String(self.fragments)))) }
        if self.compressed { members.append(.init(key: "compressed", value: .bool(true))) }
        if let type = facts.messageType { members.append(.init(key: "msgType", value: .number(String(type.rawValue)))) }
        if let id = facts.messageId { members.append(.init(key: "msgId", value: .string(id))) }
        if let action = facts.action { members.append(.init(key: "action", value: .string(action))) }
        if let code = self.errorCode { members.append(.init(key: "errorCode", value: .string(code))) }
        if let latency = self.latencyNanos { members.append(.init(key: "latencyMs", value: .number(CaptureSerializer.milliseconds(latency)))) }
        if self.unmatched { members.append(.init(key: "unmatched", value: .bool(true))) }
        if facts.injected { members.append(.init(key: "injected", value: .bool(true))) }
        if let fault = self.fault { members.append(.init(key: "fault", value: .object(fault))) }
        members.append(.init(key: "enc", value: "json"))
        members.append(.init(key: "payload", value: facts.message ?? .null))
        if let link = self.link {
            members.append(.init(key: "n", value: .number(String(link.number))))
            members.append(.init(key: "chain", value: .string(CaptureChain.hex(link: link.chain))))
        }
        return JSONObject(members)
    }
}
