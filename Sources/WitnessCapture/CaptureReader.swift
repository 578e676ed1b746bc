#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OCPPWire

/// One record of a capture file, with where it came from so a report can point at it.
public struct CaptureRecord: Sendable, Hashable {
    public var file: String
    /// 1-based line number within `file`.
    public var line: Int
    public var fields: JSONObject {
        didSet { self.facts = Facts(self.fields) }
    }
    /// The exact text of `payload` as it stands in the file, for `enc: "json"` frames, when the reader was
    /// asked to keep it (`CaptureReader.keepsMessageText`); parsing loses spacing between tokens.
    public var payloadText: [UInt8]?
    /// The record's line as the writer wrote it (with its line feed), when the writer hands the record to its
    /// observer: an observer that keeps records as text need not serialise them again. Nil from the reader;
    /// not part of equality, so the observer's records equal the reader's.
    public var text: [UInt8]?
    /// The fields every consumer reads for every record, typed once when the record is made.
    private var facts: Facts

    public init(file: String, line: Int, fields: JSONObject, payloadText: [UInt8]? = nil) {
        self.file = file
        self.line = line
        self.fields = fields
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

    /// A record whose typed fields the writer knows from the event it wrote; `facts` must be what
    /// `Facts(fields)` finds (the serializer's tests hold both equal).
    init(file: String, line: Int, fields: JSONObject, facts: Facts) {
        self.file = file
        self.line = line
        self.fields = fields
        self.payloadText = nil
        self.facts = facts
    }

    public var kind: String? { self.facts.kind }
    public var ts: CaptureTimestamp? { self.facts.ts }
    /// `ts` as written in the record.
    public var timestamp: String? { self.facts.timestamp }
    public var connection: UInt64? { self.facts.connection }
    public var chargePoint: String? { self.facts.chargePoint }
    public var direction: Direction? { self.facts.direction }
    public var opcode: FrameOpcode? { self.facts.opcode }
    public var action: String? { self.facts.action }
    public var messageId: String? { self.facts.messageId }
    public var messageType: MessageType? { self.facts.messageType }
    /// The recorded message as JSON, when it was valid JSON (`enc` is `json`).
    public var message: JSONValue? { self.facts.message }
    /// `file:line`, the reference reports use.
    public var reference: String { "\(self.file):\(self.line)" }

    /// The typed fields of a record, read in one pass over its members.
    struct Facts: Sendable, Hashable {
        var kind: String?
        var timestamp: String?
        var ts: CaptureTimestamp?
        var connection: UInt64?
        var chargePoint: String?
        var direction: Direction?
        var opcode: FrameOpcode?
        var action: String?
        var messageId: String?
        var messageType: MessageType?
        var message: JSONValue?
    }

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
            case "kind" where first(1 << 0): self.kind = value.stringValue
            case "ts" where first(1 << 1):
                self.timestamp = value.stringValue
                self.ts = value.stringValue.flatMap(CaptureTimestamp.init(rfc3339:))
            case "conn" where first(1 << 2): self.connection = value.intValue.flatMap { UInt64(exactly: $0) }
            case "chargePoint" where first(1 << 3): self.chargePoint = value.stringValue
            case "dir" where first(1 << 4): self.direction = value.stringValue.flatMap(Direction.init(rawValue:))
            case "opcode" where first(1 << 5): self.opcode = value.stringValue.flatMap(FrameOpcode.init(rawValue:))
            case "action" where first(1 << 6): self.action = value.stringValue
            case "msgId" where first(1 << 7): self.messageId = value.stringValue
            case "msgType" where first(1 << 8): self.messageType = value.intValue.flatMap(MessageType.init(rawValue:))
            case "enc" where first(1 << 9): isJSON = value.stringValue == "json"
            case "payload" where first(1 << 10): payload = value
            default: break
            }
        }
        self.message = isJSON ? payload : nil
    }
}

/// Something in a capture that could not be read as a record.
public struct CaptureReadIssue: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The last line of a file has no newline and does not parse: the writer was stopped mid-line.
        case tornLastLine
        /// A line in the middle of a file is not a JSON object.
        case corruptLine
        /// The file could not be opened or read.
        case unreadable
    }

    public var kind: Kind
    public var file: String
    public var line: Int
    public var detail: String

    public var description: String { "\(self.file):\(self.line): \(self.kind.rawValue): \(self.detail)" }
}

/// Streams the records of capture files without loading them into memory.
///
/// Give it files or folders (all `*.jsonl` files inside, in name order, which is time order for files
/// this tool wrote). Lines that cannot be read are collected in `issues` and skipped.
public final class CaptureReader: Sequence, IteratorProtocol {
    public private(set) var issues: [CaptureReadIssue] = []
    /// Keep each JSON message's exact text in `CaptureRecord.payloadText` (export and replay need it).
    public var keepsMessageText = false
    private var pending: [String]
    private var file: String?
    private var descriptor: CInt = -1
    private var buffer: [UInt8] = []
    private var start = 0
    private var line = 0
    private var endOfFile = false

    /// Expands `paths` into capture files; throws when a path does not exist.
    public init(paths: [String]) throws {
        var files: [String] = []
        for path in paths {
            files.append(contentsOf: try Self.captureFiles(at: path))
        }
        self.pending = files
    }

    deinit {
        if self.descriptor >= 0 { Glibc.close(self.descriptor) }
    }

    /// The capture files under `path` (or `path` itself if it is a file), sorted by name.
    public static func captureFiles(at path: String) throws -> [String] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CaptureReadIssue(kind: .unreadable, file: path, line: 0, detail: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return [path] }
        guard let directory = opendir(path) else {
            throw CaptureReadIssue(kind: .unreadable, file: path, line: 0, detail: String(cString: strerror(errno)))
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasSuffix(".jsonl") { names.append(name) }
        }
        return names.sorted().map { path.hasSuffix("/") ? path + $0 : path + "/" + $0 }
    }

    public func next() -> CaptureRecord? {
        while true {
            if self.file == nil {
                guard !self.pending.isEmpty else { return nil }
                self.openNext()
                continue
            }
            guard let file = self.file else { return nil }
            if let newline = self.buffer[self.start...].firstIndex(of: 0x0A) {
                let range = self.start..<newline
                self.start = newline + 1
                self.line += 1
                if let record = self.parse(range, file: file, torn: false) { return record }
                continue
            }
            if self.endOfFile {
                if self.start < self.buffer.count {
                    self.line += 1
                    let range = self.start..<self.buffer.count
                    self.start = self.buffer.count
                    if let record = self.parse(range, file: file, torn: true) { return record }
                }
                Glibc.close(self.descriptor)
                self.descriptor = -1
                self.file = nil
                continue
            }
            self.fill()
        }
    }

    private func openNext() {
        let path = self.pending.removeFirst()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            self.issues.append(CaptureReadIssue(kind: .unreadable, file: path, line: 0, detail: String(cString: strerror(errno))))
            return
        }
        self.descriptor = fd
        self.file = path
        self.buffer.removeAll(keepingCapacity: true)
        self.start = 0
        self.line = 0
        self.endOfFile = false
    }

    private func fill() {
        if self.start > 0 {
            self.buffer.removeFirst(self.start)
            self.start = 0
        }
        let chunk = 1 << 16
        let oldCount = self.buffer.count
        self.buffer.append(contentsOf: repeatElement(0, count: chunk))
        let count = self.buffer.withUnsafeMutableBytes { raw in
            read(self.descriptor, raw.baseAddress! + oldCount, chunk)
        }
        if count <= 0 {
            if count < 0 {
                self.issues.append(
                    CaptureReadIssue(kind: .unreadable, file: self.file ?? "", line: self.line, detail: String(cString: strerror(errno)))
                )
            }
            self.buffer.removeLast(chunk)
            self.endOfFile = true
        } else {
            self.buffer.removeLast(chunk - count)
        }
    }

    private func parse(_ range: Range<Int>, file: String, torn: Bool) -> CaptureRecord? {
        if range.isEmpty { return nil }
        do {
            let value = try self.buffer.withUnsafeBytes { raw in
                try JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[range]))
            }
            guard case .object(let object) = value else {
                self.issues.append(CaptureReadIssue(kind: .corruptLine, file: file, line: self.line, detail: "line is not a JSON object"))
                return nil
            }
            var record = CaptureRecord(file: file, line: self.line, fields: object)
            if self.keepsMessageText, record.fields["enc"]?.stringValue == "json", record.fields["raw"] == nil {
                record.payloadText = self.buffer.withUnsafeBytes { raw in
                    let line = UnsafeRawBufferPointer(rebasing: raw[range])
                    return JSONParser.rangeOfMember("payload", in: line).map { Array(line[$0]) }
                }
            }
            return record
        } catch {
            self.issues.append(
                CaptureReadIssue(kind: torn ? .tornLastLine : .corruptLine, file: file, line: self.line, detail: "\(error)")
            )
            return nil
        }
    }
}

extension CaptureReadIssue: Error {}
