#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OCPPWire

/// Something in a capture that could not be read as a record.
public struct CaptureReadIssue: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The last line of a file has no newline and does not parse: the writer was stopped mid-line.
        case tornLastLine
        /// A line in the middle of a file is not a JSON object.
        case corruptLine
        /// The file could not be opened or read.
        case unreadable
        /// The line is a record, but a field of it holds a value no writer makes; the value was left out.
        case invalidValue
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
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)
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
        if self.descriptor >= 0 { closeDescriptor(self.descriptor) }
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
                closeDescriptor(self.descriptor)
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
        // Read into a scratch buffer and append what came: one copy, where growing the buffer by 64 KiB of
        // zeros and cutting it back cost an element-wise loop per read.
        let count = self.scratch.withUnsafeMutableBytes { raw in
            read(self.descriptor, raw.baseAddress!, raw.count)
        }
        if count <= 0 {
            if count < 0 {
                self.issues.append(
                    CaptureReadIssue(kind: .unreadable, file: self.file ?? "", line: self.line, detail: String(cString: strerror(errno)))
                )
            }
            self.endOfFile = true
        } else {
            self.buffer.append(contentsOf: self.scratch[..<count])
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
            if let problem = record.problem {
                self.issues.append(CaptureReadIssue(kind: .invalidValue, file: file, line: self.line, detail: problem))
            }
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
