import Foundation
import OCPPWire

/// Checks capture files against their hash chains and seals (`ocpp-witness verify`; docs/capture-format.md,
/// "Hash chain and seal"): whether each file is complete and unaltered, and if not, the first line that
/// changed, was removed or was added; which part of a run is missing; whether each seal's signature holds.
public struct CaptureVerifier {
    /// What a file is, all told.
    public enum Verdict: String, Sendable, Encodable {
        /// Sealed, every link holds (and the signature, when a key was given).
        case intact
        /// A line changed, was removed or added, or the seal's signature does not hold.
        case altered
        /// Every link holds, but the file has no seal: the proxy did not close it (a crash, or it is still
        /// being written). Lines removed from the end of such a file cannot be told from a crash.
        case unsealed
        /// A file written before captures were chained (format 1), or not a capture: nothing to check.
        case unchained
        case unreadable
    }

    public enum ProblemKind: String, Sendable, Encodable {
        /// The line's link does not follow from the line before it: the line was edited.
        case changed
        /// Lines the writer numbered are not there.
        case removed
        /// A line the writer did not write (no link, a number out of turn, or after the seal).
        case added
        /// The seal's signature does not hold for the key given, or the seal is not signed by it.
        case signature
    }

    public struct Problem: Sendable, Encodable, Equatable {
        public var kind: ProblemKind
        /// The line of the file where it shows.
        public var line: Int
        public var detail: String
    }

    /// Records the writer could not write (a full disk), as its `gap` record says: a gap, not an alteration.
    public struct Gap: Sendable, Encodable, Equatable {
        public var line: Int
        public var from: String
        public var to: String
        public var recordsLost: Int
    }

    public enum Signature: String, Sendable, Encodable {
        /// The seal is not signed.
        case unsigned
        /// Signed; no key was given to check it with.
        case notChecked
        case valid
        case invalid
    }

    public struct FileResult: Sendable, Encodable {
        public var file: String
        public var verdict: Verdict
        public var lines = 0
        /// The first problem, and how many there were in all.
        public var firstProblem: Problem?
        public var problems = 0
        public var gaps: [Gap] = []
        /// The last line, cut short (a crash while it was written): reported, not counted as an alteration.
        public var tornLastLine: Int?
        public var sealed = false
        /// From the seal: no part follows (the writer was closing), or one does (it rotated).
        public var last: Bool?
        public var signature: Signature?
        /// The id of the key that signed the seal.
        public var key: String?
        public var detail: String?

        // The run and part, from the header; the seal's digest and the previous one the header names.
        public var run: String?
        public var instance: String?
        public var part: Int?
        var previousSeal: String?
        var previousUnsealed = false
        var sealDigest: String?

        mutating func note(_ problem: Problem) {
            if self.firstProblem == nil { self.firstProblem = problem }
            self.problems += 1
        }
    }

    /// A part of a run that is not among the files, or that is not the one its successor was chained to.
    public struct SequenceProblem: Sendable, Encodable, Equatable {
        public var run: String
        public var instance: String?
        public var part: Int
        public var detail: String
    }

    public struct Result: Sendable, Encodable {
        public var files: [FileResult]
        public var sequences: [SequenceProblem]

        /// Nothing altered or missing, and every file sealed.
        public var intact: Bool { self.sequences.isEmpty && self.files.allSatisfy { $0.verdict == .intact } }
        /// Something was altered or is missing (beyond an unsealed end or an unchained file).
        public var tampered: Bool { !self.sequences.isEmpty || self.files.contains { $0.verdict == .altered } }
    }

    let key: SealKey?

    public init(key: SealKey? = nil) {
        self.key = key
    }

    /// Verifies `paths` (files, in any order) as one body of evidence.
    public func verify(_ paths: [String]) -> Result {
        let files = paths.map { self.verify(file: $0) }
        return Result(files: files, sequences: Self.sequenceProblems(files))
    }

    public func verify(file path: String) -> FileResult {
        var result = FileResult(file: path, verdict: .intact)
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            result.verdict = .unreadable
            result.detail = "cannot be read"
            return result
        }
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            self.walk(bytes, into: &result)
        }
        if result.verdict == .intact, result.lines == 0, result.tornLastLine == nil || result.tornLastLine == 1 {
            result.verdict = .unchained
            result.detail = "no whole line: an empty file, or not a capture"
        }
        if result.verdict == .intact {
            if result.firstProblem != nil {
                result.verdict = .altered
            } else if !result.sealed {
                result.verdict = .unsealed
            }
        }
        return result
    }

    private func walk(_ bytes: UnsafeRawBufferPointer, into result: inout FileResult) {
        var previous = [UInt8](repeating: 0, count: CaptureChain.linkBytes)
        var expected = 1
        var position = 0
        var start = 0
        var sealedAt: Int?
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A)
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<(end ?? bytes.count)])
            start = (end ?? bytes.count) + 1
            position += 1
            result.lines = position
            // The writer writes nothing after a seal, not even half a line.
            if let sealedAt {
                result.note(Problem(kind: .added, line: position, detail: "a line after the seal of line \(sealedAt)"))
                continue
            }
            guard end != nil else {
                // The writer ends every line it writes: a last line without one was cut short.
                result.tornLastLine = position
                result.lines = position - 1
                return
            }
            guard let link = Self.link(of: line) else {
                if position == 1 {
                    // A header that names format 2 or later had its link taken off: the chain was stripped.
                    if let format = Self.object(line)?["format"]?.intValue, format >= 2 {
                        result.note(Problem(kind: .changed, line: 1, detail: "the header says format \(format), whose lines carry links, but has none: the chain was taken off"))
                        continue
                    }
                    result.verdict = .unchained
                    result.detail = "the first line has no chain link: written before captures were chained (format 1), or not a capture"
                    return
                }
                result.note(Problem(kind: .added, line: position, detail: "the writer did not write this line: it has no chain link"))
                continue
            }
            let kind = Self.kind(of: line)
            // Nothing may follow the link but the end of the object (and, on a seal, its signature): bytes there
            // are not covered by the link.
            guard link.tailIsClean || (kind == "seal" && link.tailIsSignature) else {
                result.note(Problem(kind: .changed, line: position, detail: "it has bytes after its link, which the link does not cover"))
                previous = Array(link.stored.prefix(CaptureChain.linkBytes))
                expected = link.number + 1
                continue
            }
            if position == 1 {
                guard kind == "header" else {
                    result.note(Problem(kind: .removed, line: 1, detail: "the file does not begin with its header"))
                    previous = link.stored.prefix(CaptureChain.linkBytes).map { $0 }
                    expected = link.number + 1
                    continue
                }
                self.readHeader(line, into: &result)
            }
            if link.number > expected {
                let missing = link.number - expected
                result.note(
                    Problem(
                        kind: .removed, line: position,
                        detail: missing == 1 ? "line \(expected) of the file as written is missing before this line" : "lines \(expected)-\(link.number - 1) of the file as written (\(missing)) are missing before this line"
                    )
                )
            } else if link.number < expected {
                result.note(Problem(kind: .added, line: position, detail: "numbered \(link.number), a number the file has used already: a copied line"))
                continue
            } else {
                let digest = CaptureChain.digest(previous: previous, content: link.content)
                let wanted = kind == "seal" ? digest : Array(digest.prefix(CaptureChain.linkBytes))
                if wanted != link.stored {
                    result.note(Problem(kind: .changed, line: position, detail: "its link does not follow from the line before it and its own bytes: the line was edited"))
                }
            }
            previous = Array(link.stored.prefix(CaptureChain.linkBytes))
            expected = link.number + 1
            switch kind {
            case "gap":
                if let fields = Self.object(line) {
                    result.gaps.append(
                        Gap(
                            line: position, from: fields["from"]?.stringValue ?? "", to: fields["to"]?.stringValue ?? "",
                            recordsLost: fields["recordsLost"]?.intValue ?? 0
                        )
                    )
                }
            case "seal":
                sealedAt = position
                self.readSeal(line, stored: link.stored, into: &result)
            default:
                break
            }
        }
    }

    private func readHeader(_ line: UnsafeRawBufferPointer, into result: inout FileResult) {
        guard let fields = Self.object(line) else { return }
        result.run = fields["started"]?.stringValue
        result.instance = fields["instance"]?.stringValue
        result.part = fields["part"]?.intValue
        result.previousSeal = fields["previousSeal"]?.stringValue
        result.previousUnsealed = fields["previousUnsealed"]?.boolValue ?? false
    }

    private func readSeal(_ line: UnsafeRawBufferPointer, stored: [UInt8], into result: inout FileResult) {
        result.sealed = true
        result.sealDigest = CaptureChain.hex(stored)
        guard let fields = Self.object(line) else { return }
        result.last = fields["last"]?.boolValue
        result.key = fields["key"]?.stringValue
        guard let text = fields["signature"]?.stringValue, let signature = Data(base64Encoded: text) else {
            result.signature = .unsigned
            if let key = self.key {
                result.signature = .invalid
                result.note(Problem(kind: .signature, line: result.lines, detail: "the seal is not signed; the key given (\(key.id)) signs every seal"))
            }
            return
        }
        guard let key = self.key else {
            result.signature = .notChecked
            return
        }
        if result.key != key.id || !key.isValid(signature: Array(signature), for: stored) {
            result.signature = .invalid
            let whose = result.key == key.id ? "" : " (the seal names key \(result.key ?? "none"))"
            result.note(
                Problem(
                    kind: .signature, line: result.lines,
                    detail: "the seal's signature does not hold for the key given (\(key.id))\(whose): the file was sealed again by someone without that key"
                )
            )
        } else {
            result.signature = .valid
        }
    }

    struct Link {
        var number: Int
        var stored: [UInt8]
        /// The bytes the link covers.
        var content: UnsafeRawBufferPointer
        /// The line ends right after the link (`"}`).
        var tailIsClean: Bool
        /// The line ends with a signature after the link (`","signature":"<base64>"}`), as a seal may.
        var tailIsSignature: Bool
    }

    /// A line's number, stored link and the bytes its link covers; nil when it has none.
    static func link(of line: UnsafeRawBufferPointer) -> Link? {
        guard let at = Self.lastRange(of: CaptureChain.chainKey, in: line) else { return nil }
        let content = UnsafeRawBufferPointer(rebasing: line[..<at])
        var hex = at + CaptureChain.chainKey.count
        var stored: [UInt8] = []
        while stored.count < 32, hex + 1 < line.count, let high = Self.nibble(line[hex]), let low = Self.nibble(line[hex + 1]) {
            stored.append(high << 4 | low)
            hex += 2
        }
        guard stored.count == CaptureChain.linkBytes || stored.count == 32, hex < line.count, line[hex] == UInt8(ascii: "\"") else { return nil }
        // `,"n":<digits>` ends the content; a number no file reaches is no number.
        var digits = content.count
        while digits > 0, content[digits - 1] >= UInt8(ascii: "0"), content[digits - 1] <= UInt8(ascii: "9") { digits -= 1 }
        guard digits < content.count, content.count - digits <= 15, digits >= CaptureChain.numberKey.count,
            Array(content[(digits - CaptureChain.numberKey.count)..<digits]) == CaptureChain.numberKey,
            let number = Int(String(decoding: content[digits...], as: UTF8.self))
        else { return nil }
        let tail = UnsafeRawBufferPointer(rebasing: line[(hex + 1)...])
        let clean = tail.count == 1 && tail[0] == UInt8(ascii: "}")
        var signature = false
        let signatureKey = Array(#","signature":""#.utf8)
        if !clean, tail.count > signatureKey.count + 2, tail.starts(with: signatureKey), tail[tail.count - 1] == UInt8(ascii: "}"),
            tail[tail.count - 2] == UInt8(ascii: "\"")
        {
            let body = tail[(tail.startIndex + signatureKey.count)..<(tail.endIndex - 2)]
            signature = body.allSatisfy { byte in
                (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=")
            }
        }
        return Link(number: number, stored: stored, content: content, tailIsClean: clean, tailIsSignature: signature)
    }

    /// The record's kind, from the start of the line where the writer puts it (`{"ts":"…","kind":"…"`).
    static func kind(of line: UnsafeRawBufferPointer) -> String? {
        let key = Array(#","kind":""#.utf8)
        let head = UnsafeRawBufferPointer(rebasing: line[..<min(line.count, 96)])
        guard let at = Self.firstRange(of: key, in: head) else { return nil }
        let from = at + key.count
        guard let close = head[from...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return String(decoding: head[from..<close], as: UTF8.self)
    }

    static func object(_ line: UnsafeRawBufferPointer) -> JSONObject? {
        guard case .object(let object) = try? JSONParser.parse(line) else { return nil }
        return object
    }

    static func firstRange(of pattern: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        for at in 0...(bytes.count - pattern.count) where bytes[at] == pattern[0] && bytes[at..<(at + pattern.count)].elementsEqual(pattern) {
            return at
        }
        return nil
    }

    static func lastRange(of pattern: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        var at = bytes.count - pattern.count
        while at >= 0 {
            if bytes[at] == pattern[0] && bytes[at..<(at + pattern.count)].elementsEqual(pattern) { return at }
            at -= 1
        }
        return nil
    }

    static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// The highest part number taken from a header; a writer rotating every MiB for years stays far below.
    static let maximumPart = 1_000_000

    /// Parts missing from a run, and parts that are not the ones their successors were chained to.
    static func sequenceProblems(_ files: [FileResult]) -> [SequenceProblem] {
        var runs: [String: [FileResult]] = [:]
        for file in files where file.verdict != .unchained && file.verdict != .unreadable {
            guard let run = file.run, let part = file.part, (1...Self.maximumPart).contains(part) else { continue }
            runs[(file.instance ?? "") + "\u{0}" + run, default: []].append(file)
        }
        var problems: [SequenceProblem] = []
        for key in runs.keys.sorted() {
            let parts = runs[key]!.sorted { $0.part! < $1.part! }
            let run = parts[0].run!
            let instance = parts[0].instance
            let byPart = Dictionary(parts.map { ($0.part!, $0) }, uniquingKeysWith: { first, _ in first })
            let highest = parts.last!.part!
            // Two files claiming one part: one of them is not what the writer wrote.
            for (part, given) in Dictionary(grouping: parts, by: { $0.part! }) where given.count > 1 {
                let names = given.map { ($0.file as NSString).lastPathComponent }.sorted().joined(separator: ", ")
                problems.append(SequenceProblem(run: run, instance: instance, part: part, detail: "part \(part) of the run started \(run) is given twice (\(names))"))
            }
            var missingFrom: Int?
            for part in 1...(highest + 1) {
                if part <= highest, byPart[part] == nil {
                    if missingFrom == nil { missingFrom = part }
                    continue
                }
                if let from = missingFrom {
                    let detail = from == part - 1 ? "part \(from) of the run started \(run) is missing" : "parts \(from)-\(part - 1) of the run started \(run) are missing"
                    problems.append(SequenceProblem(run: run, instance: instance, part: from, detail: detail))
                    missingFrom = nil
                }
                guard part <= highest, let file = byPart[part] else { continue }
                guard part > 1, let before = byPart[part - 1] else { continue }
                if file.previousUnsealed {
                    continue
                }
                if let named = file.previousSeal, named != before.sealDigest {
                    problems.append(
                        SequenceProblem(
                            run: run, instance: instance, part: part - 1,
                            detail: "part \(part)'s header names a seal that \((before.file as NSString).lastPathComponent) does not end with: part \(part - 1) was replaced or sealed again"
                        )
                    )
                }
            }
            if let last = byPart[highest], last.sealed, last.last == false {
                problems.append(
                    SequenceProblem(
                        run: run, instance: instance, part: highest + 1,
                        detail: "part \(highest) was sealed for a rotation, so part \(highest + 1) (and any after it) should follow and is missing"
                    )
                )
            }
        }
        return problems
    }
}
