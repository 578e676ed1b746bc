import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessDiff
import WitnessPcap
import WitnessTestSupport

/// Damaged captures, made by mutating a sample the way disks, editors and hostile hands damage files: every
/// reader must finish and say what it skipped, never stop the process.
@Suite("Readers of damaged captures")
struct CaptureFuzzTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sample = Self.root.appendingPathComponent("captures/samples/demo-pilot.jsonl").path

    /// The fixed seed makes every run mutate the same way; a failure names the shard and the capture's number.
    static let seed: UInt64 = 0x0C99_1E55
    /// 2,000 captures in four shards, which Swift Testing runs side by side.
    static let shards = 4
    static let capturesPerShard = 500
    /// Each capture: the header and the first connections' opens, then a window of this many consecutive lines
    /// from anywhere in the sample (frames, closes, later opens). Readers' cost grows with the lines, and what a
    /// mutation can break is in the lines around it.
    static let window = 24

    @Test("report, export, diff and handover finish on 2,000 mutated captures and list the lines they skipped", arguments: 0..<4)
    func mutatedCaptures(shard: Int) throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Self.sample))
        let sample = original.split(separator: UInt8(ascii: "\n")).map(Array.init)
        let registry = try SchemaRegistry(root: Self.root.appendingPathComponent("schemas").path)
        let baseline = try RecordedCapture.load([Self.sample])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("capture.jsonl").path
        let pcapng = directory.appendingPathComponent("capture.pcapng").path
        var generator = SplitMix64(seed: Self.seed &+ UInt64(shard))
        var damagedLinesListed = 0
        for index in 0..<Self.capturesPerShard {
            let start = 4 + Int(generator.next() % UInt64(sample.count - 4 - Self.window))
            var mutated = Array(sample[0..<4]) + Array(sample[start..<start + Self.window]) + [[]]
            let (changed, kinds) = Self.mutate(&mutated, using: &generator)
            try Data(mutated.joined(separator: [UInt8(ascii: "\n")])).write(to: URL(fileURLWithPath: file))
            let context = "shard \(shard), capture \(index) (sample lines \(start + 1)..., \(kinds.joined(separator: ", ")); lines \(changed.sorted()))"

            // report (and handover, from the same records)
            let reader = try CaptureReader(paths: [file])
            let records = Array(reader)
            let analyzer = Analyzer(schemas: registry)
            for record in records { analyzer.consume(record) }
            let report = analyzer.finish(readIssues: reader.issues)
            for format in ReportFormat.allCases { _ = report.render(format) }
            #expect(report.json["readIssues"] != nil, "\(context)")

            // export
            let summary = try PcapngExporter.export(capture: [file], to: pcapng)
            #expect(summary.readIssues == reader.issues, "\(context)")

            // diff
            var diffIssues: [CaptureReadIssue] = []
            let sessions = try RecordedCapture.load([file], issues: &diffIssues)
            _ = CaptureDiff.compare(baseline, sessions)
            #expect(diffIssues == reader.issues, "\(context)")

            // handover
            let handover = HandoverExport.read(records, readIssues: reader.issues)
            for (columns, rows) in [
                (HandoverExport.chargerColumns, handover.chargerRows), (HandoverExport.configurationColumns, handover.configurationRows),
                (HandoverExport.transactionColumns, handover.transactionRows),
            ] {
                _ = HandoverExport.csv(columns, rows)
                _ = HandoverExport.jsonLines(columns, rows)
            }

            // A line made unreadable is named in the read issues, by its number.
            for issue in reader.issues { #expect(issue.line >= 1 && issue.line <= mutated.count, "\(context): \(issue)") }
            damagedLinesListed += reader.issues.count
        }
        // The mutations are not all harmless: many lines were skipped and said so.
        #expect(damagedLinesListed > Self.capturesPerShard / 4)
    }

    @Test("the damage that stopped report and export: a latency of 1e308 ms and a 70,000-character charge point")
    func knownTraps() throws {
        let sample = try String(contentsOfFile: Self.sample, encoding: .utf8).split(separator: "\n").map(String.init)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("traps-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var lines = Array(sample.prefix(60))
        // The first answer with a latency gets one of 1e308 ms; the first open a charge point id of 70,000 characters.
        let answer = try #require(lines.firstIndex { $0.contains(#""latencyMs":"#) })
        lines[answer] = lines[answer].replacingOccurrences(of: #""latencyMs":[0-9.]+"#, with: #""latencyMs":1e308"#, options: .regularExpression)
        let open = try #require(lines.firstIndex { $0.contains(#""kind":"open""#) })
        lines[open] = lines[open].replacingOccurrences(of: #""chargePoint":"CP-ALPHA-01""#, with: "\"chargePoint\":\"\(String(repeating: "A", count: 70_000))\"")
        let file = directory.appendingPathComponent("damaged.jsonl").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)

        let reader = try CaptureReader(paths: [file])
        let analyzer = Analyzer(schemas: try SchemaRegistry(root: Self.root.appendingPathComponent("schemas").path))
        for record in reader { analyzer.consume(record) }
        let report = analyzer.finish(readIssues: reader.issues)
        let listed = report.json["readIssues"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(listed == ["\(file):\(answer + 1): invalidValue: latencyMs 1e308 is not a latency from 0 to 30 days; left out"])
        let summary = try PcapngExporter.export(capture: [file], to: directory.appendingPathComponent("damaged.pcapng").path)
        #expect(summary.connections >= 3)
        #expect(summary.readIssues.map(\.line) == [answer + 1])
    }

    /// Mutates one to three lines of `lines` in place; returns their numbers (1-based) and what was done.
    static func mutate(_ lines: inout [[UInt8]], using generator: inout SplitMix64) -> (Set<Int>, [String]) {
        var changed = Set<Int>()
        var kinds: [String] = []
        for _ in 0..<(1 + Int(generator.next() % 3)) {
            // The last element is the empty text after the final newline; leave it.
            let index = Int(generator.next() % UInt64(lines.count - 1))
            changed.insert(index + 1)
            switch generator.next() % 10 {
            case 0, 1, 2:
                kinds.append("value")
                lines[index] = Self.replaceValue(in: lines[index], using: &generator)
            case 3:
                kinds.append("truncate")
                lines[index] = Array(lines[index].prefix(Int(generator.next() % UInt64(max(1, lines[index].count)))))
            case 4:
                kinds.append("bytes")
                let position = Int(generator.next() % UInt64(max(1, lines[index].count)))
                let junk: [[UInt8]] = [[0xC0, 0xAF], [0xFF], [0xED, 0xA0, 0x80], [0x00], [0x22], [0x5C], [0x7B, 0x7B]]
                lines[index].insert(contentsOf: junk[Int(generator.next() % UInt64(junk.count))], at: position)
            case 5:
                kinds.append("delete")
                lines[index] = []
            case 6:
                kinds.append("duplicate")
                let other = Int(generator.next() % UInt64(lines.count - 1))
                lines[index] = lines[other]
            case 7:
                kinds.append("flip")
                let position = Int(generator.next() % UInt64(max(1, lines[index].count)))
                if position < lines[index].count { lines[index][position] ^= UInt8(1 << (generator.next() % 8)) }
            default:
                kinds.append("type")
                lines[index] = Self.replaceValue(in: lines[index], using: &generator, typeOnly: true)
            }
        }
        return (changed, kinds)
    }

    /// Values that broke readers, or may: extremes of each number type, huge and empty strings, other types.
    static let extremes: [JSONValue] = [
        .number("1e308"), .number("-1e308"), .number("1e400"), .number("-1"), .number("0"), .number("9223372036854775807"),
        .number("9223372036854775808"), .number("18446744073709551616"), .number("-9223372036854775808"), .number("1.5"),
        .number("4294967296"), .number("65536"), .string(String(repeating: "x", count: 70_000)), .string(""),
        .string("\u{0}\u{1F}\u{2028}"), .string("1e308"), .string("9999-99-99T99:99:99Z"), .string("-0001-01-01T00:00:00Z"),
    ]
    static let others: [JSONValue] = [.null, .bool(true), .array([]), .object(JSONObject()), .array([.number("1e308")]), .number("3")]

    /// Parses the line and replaces one value somewhere in it (a top-level member, or one inside its payload).
    static func replaceValue(in line: [UInt8], using generator: inout SplitMix64, typeOnly: Bool = false) -> [UInt8] {
        guard case .object(var object)? = try? JSONParser.parse(line), !object.members.isEmpty else { return line }
        let pool = typeOnly ? Self.others : Self.extremes + Self.others
        let replacement = pool[Int(generator.next() % UInt64(pool.count))]
        let memberIndex = Int(generator.next() % UInt64(object.members.count))
        var member = object.members[memberIndex]
        member.value = Self.replaceSomewhere(in: member.value, with: replacement, using: &generator)
        object.members[memberIndex] = member
        var out: [UInt8] = []
        JSONWriter.write(.object(object), into: &out)
        return out
    }

    static func replaceSomewhere(in value: JSONValue, with replacement: JSONValue, using generator: inout SplitMix64) -> JSONValue {
        // Half the time here; otherwise one level deeper, where there is one.
        if generator.next() % 2 == 0 { return replacement }
        switch value {
        case .array(var items) where !items.isEmpty:
            let index = Int(generator.next() % UInt64(items.count))
            items[index] = Self.replaceSomewhere(in: items[index], with: replacement, using: &generator)
            return .array(items)
        case .object(var object) where !object.members.isEmpty:
            let index = Int(generator.next() % UInt64(object.members.count))
            object.members[index].value = Self.replaceSomewhere(in: object.members[index].value, with: replacement, using: &generator)
            return .object(object)
        default:
            return replacement
        }
    }
}
