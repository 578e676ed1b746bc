import Foundation
import OCPPWire
import Testing
import WitnessCapture
import WitnessTestSupport

/// The DuckDB queries of docs/capture-format.md, run as written over two instances' capture folders.
@Suite("Capture queries with DuckDB")
struct DuckDBTests {
    static let python = WitnessBinary.root.appendingPathComponent(".tools/venv/bin/python").path
    static let documentation = WitnessBinary.root.appendingPathComponent("docs/capture-format.md").path

    /// The ```sql blocks of the documentation, in order.
    static func documentedQueries() throws -> [String] {
        let text = try String(contentsOfFile: Self.documentation, encoding: .utf8)
        return text.components(separatedBy: "```sql\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
    }

    /// Runs each query with DuckDB in `folder` (where `captures/` is) and returns its rows as JSON arrays.
    static func run(_ queries: [String], in folder: String) async throws -> [[[JSONValue]]] {
        let script = """
            import duckdb, json, sys
            con = duckdb.connect()
            print(json.dumps([con.sql(q).fetchall() for q in json.load(sys.stdin)], default=str))
            """
        let result = try await Program.run(
            Self.python, ["-c", script], directory: URL(fileURLWithPath: folder), input: try JSONSerialization.data(withJSONObject: queries)
        )
        try #require(result.status == 0, "duckdb failed: \(result.errors)")
        let parsed = try JSONParser.parse(result.output)
        return parsed.arrayValue?.map { $0.arrayValue?.map { $0.arrayValue ?? [] } ?? [] } ?? []
    }

    @Test("the documented queries give, over two instances' folders, what the capture reader counts")
    func documentedQueriesAgree() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python), "run `make setup`: \(Self.python) is missing")
        let queries = try Self.documentedQueries()
        #expect(queries.count == 3)
        // Two instances: the sample pilot, and the same pilot again under another name.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("duckdb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let sample = WitnessBinary.root.appendingPathComponent("captures/samples/demo-pilot.jsonl").path
        for (instance, file) in [("witness-1", "capture-1.jsonl"), ("witness-2", "capture-2.jsonl")] {
            try FileManager.default.createDirectory(atPath: "\(folder)/captures/\(instance)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: sample, toPath: "\(folder)/captures/\(instance)/\(file)")
        }
        let results = try await Self.run(queries, in: folder)
        try #require(results.count == 3)
        let records = Array(try CaptureReader(paths: ["\(folder)/captures/witness-1", "\(folder)/captures/witness-2"]))

        var calls: [String: Int] = [:]
        for record in records where record.kind == "frame" && record.messageType == .call {
            calls["\(record.chargePoint ?? "") \(record.action ?? "")", default: 0] += 1
        }
        let queried = Dictionary(uniqueKeysWithValues: results[0].map { ("\($0[0].stringValue ?? "") \($0[1].stringValue ?? "")", $0[2].intValue ?? -1) })
        #expect(queried == calls)
        #expect(calls.values.reduce(0, +) > 20)

        let latencies = records.compactMap { $0.fields["latencyMs"]?.doubleValue }
        #expect(results[1].count == 10)
        #expect(results[1].first?[2].doubleValue == latencies.max())

        let opens = records.filter { $0.kind == "open" }.count
        #expect(results[2].map { $0[0].stringValue } == ["capture-1.jsonl", "capture-2.jsonl"])
        #expect(results[2].map { $0[1].intValue } == [opens / 2, opens / 2])
        #expect(results[2].map { $0[2].intValue } == [0, 0])
    }
}
