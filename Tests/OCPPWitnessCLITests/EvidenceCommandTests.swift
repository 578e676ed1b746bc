import Foundation
import Testing
import WitnessTestSupport

/// `export`, `import`, `diff` and `sniff` through the built binary, as a user runs them.
@Suite("Evidence commands: export, import, diff, sniff")
struct EvidenceCommandTests {
    static let sample = WitnessBinary.root.appendingPathComponent("captures/samples/demo-pilot.jsonl").path

    @Test("export to pcapng, import it back, and diff finds the two captures equal")
    func exportImportDiff() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("evidence-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pcapng = directory + "/pilot.pcapng"

        let export = try await WitnessBinary.run(["export", Self.sample, "--pcapng", pcapng])
        #expect(export.status == 0, "\(export.errors)")
        #expect(export.output.contains("6 connections, 150 messages"), "\(export.output)")

        let imported = directory + "/imported"
        let importResult = try await WitnessBinary.run(["import", pcapng, "-o", imported, "--filter", "tcp port 80"])
        #expect(importResult.status == 0, "\(importResult.errors)")
        #expect(importResult.output.contains("6 WebSocket connections, 150 messages"), "\(importResult.output)")

        let same = try await WitnessBinary.run(["diff", Self.sample, imported])
        #expect(same.status == 0, "\(same.output)")
        #expect(same.output.contains("0 differences in"), "\(same.output)")
    }

    @Test("diff exits 1 and names the CALL, field and values that changed")
    func diffFindsChange() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("diff-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let text = try String(contentsOfFile: Self.sample, encoding: .utf8)
        // The backend's first BootNotification answer says 600 instead of 300.
        let changed = text.replacingOccurrences(of: #""interval":300"#, with: #""interval":600"#, options: [], range: text.range(of: #""interval":300"#))
        try changed.write(toFile: directory + "/after.jsonl", atomically: true, encoding: .utf8)
        let result = try await WitnessBinary.run(["diff", Self.sample, directory + "/after.jsonl", "--format", "json"])
        #expect(result.status == 1)
        let report = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        let differences = report?["differences"] as? [[String: Any]] ?? []
        #expect(differences.count == 1)
        #expect(differences.first?["action"] as? String == "BootNotification")
        #expect(differences.first?["path"] as? String == "/interval")
        #expect(differences.first?["first"] as? String == "300")
        #expect(differences.first?["second"] as? String == "600")
    }

    @Test("import and sniff name the file or interface they cannot open, and leave no capture file behind")
    func clearErrors() async throws {
        let importFolder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let sniffFolder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        defer {
            try? FileManager.default.removeItem(atPath: importFolder)
            try? FileManager.default.removeItem(atPath: sniffFolder)
        }
        let missing = try await WitnessBinary.run(["import", "/nonexistent/site.pcap", "-o", importFolder])
        #expect(missing.status != 0)
        #expect(missing.errors.contains("/nonexistent/site.pcap"), "\(missing.errors)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: importFolder)) ?? [] == [])
        let sniff = try await WitnessBinary.run(["sniff", "--interface", "witness-nope0", "--no-validate", "--capture", sniffFolder])
        #expect(sniff.status != 0)
        #expect(sniff.errors.contains("witness-nope0"), "\(sniff.errors)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: sniffFolder)) ?? [] == [])
    }
}

/// The forwarding benchmark in miniature, so it keeps working; timings are printed, never asserted.
@Suite("Forwarding benchmark (reduced)")
struct ForwardingBenchmarkSmokeTests {
    @Test("a few seconds of load print the comparison table, and the capture holds exactly what was counted")
    func reducedBenchmark() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "forwarding", "--chargers", "4", "--seconds", "1", "--rounds", "2", "--setups", "direct,witness,witness-forward",
            "--scale-connections", "40", "--scale-seconds", "1",
            "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        for setup in ["| direct |", "| witness |", "| witness-forward |"] {
            #expect(result.output.contains(setup), "\(result.output)")
        }
        #expect(result.output.contains("(median round of 2 per set-up"), "\(result.output)")
        // The proxy's CPU per million messages, split into its own code and the kernel's work for it.
        let witnessRow = result.output.split(separator: "\n").first { $0.hasPrefix("| witness |") } ?? ""
        #expect(witnessRow.contains(#/\| \d+\.\d \(\d+\.\d \+ \d+\.\d\) \|/#), "\(result.output)")
        #expect(result.output.contains("(each set-up's median round by added p99, of 2"), "\(result.output)")
        #expect(result.output.contains("Capture check (witness run): ok:"), "\(result.output)")
        #expect(result.output.contains("witness: recorder queue peaked at"), "\(result.output)")
        #expect(result.output.contains("0 records lost"), "\(result.output)")
        #expect(result.output.contains("report: 0 deviations"), "\(result.output)")
        #expect(result.output.contains("connected 40/40"), "\(result.output)")
        #expect(!result.output.contains("CALLs failed"), "\(result.output)")
        #expect(!result.output.contains("could not connect or boot"), "\(result.output)")
        // Where the machine's CPU went: the load's share and the proxy's, per message.
        #expect(result.output.contains("CPU per message on the whole machine at saturation"), "\(result.output)")
        let budget = result.output.split(separator: "\n").first { $0.hasPrefix("  witness ") && $0.contains("busy") } ?? ""
        #expect(budget.contains(#/\d+\.\d \+ +\d+\.\d = +\d+\.\d; busy +\d+%/#), "\(result.output)")
    }

    @Test("--rate measures latency at that rate only, and captures go to --capture-directory and are removed")
    func fixedRate() async throws {
        let captures = FileManager.default.temporaryDirectory.appendingPathComponent("bench-captures-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: captures) }
        let result = try await WitnessBinary.run([
            "benchmark", "forwarding", "--chargers", "2", "--seconds", "1", "--rounds", "1", "--setups", "direct,witness", "--rate", "200",
            "--scale-connections", "0", "--capture-directory", captures, "--proxy-options=--fsync never",
            "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("At the given rate (200 messages/s, paced):"), "\(result.output)")
        #expect(!result.output.contains("| set-up |"), "no saturating runs: \(result.output)")
        #expect(result.output.contains("Capture check (witness run): ok:"), "\(result.output)")
        #expect(result.output.contains("report: 0 deviations"), "\(result.output)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: captures)) == [], "captures left behind")

        let tooSlow = try await WitnessBinary.run(["benchmark", "forwarding", "--chargers", "4", "--rate", "5"])
        #expect(tooSlow.status != 0)
        #expect(tooSlow.errors.contains("--rate 5"), "\(tooSlow.errors)")
    }
}

extension ForwardingBenchmarkSmokeTests {
    @Test("the byte relay carries the chargers' load as a peer; an unknown set-up is refused by name")
    func byteRelayPeer() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "forwarding", "--chargers", "2", "--seconds", "1", "--rounds", "1", "--setups", "direct,byte-relay", "--rate", "200",
            "--scale-connections", "0", "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        let relay = result.output.split(separator: "\n").first { $0.hasPrefix("  byte-relay ") } ?? ""
        #expect(relay.contains(#/p99 \d+\.\d+ ms .*added p99/#), "\(result.output)")
        #expect(!result.output.contains("CALLs failed"), "\(result.output)")
        #expect(!result.output.contains("could not connect or boot"), "\(result.output)")

        let unknown = try await WitnessBinary.run(["benchmark", "forwarding", "--setups", "direct,haproxy"])
        #expect(unknown.status != 0)
        #expect(unknown.errors.contains("unknown set-up 'haproxy'"), "\(unknown.errors)")
    }
}

extension ForwardingBenchmarkSmokeTests {
    @Test(
        "--proxy-cpus and --load-cpus keep the proxy and the load on their own CPUs, checked on the running proxy",
        .enabled(if: ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs")
    )
    func pinnedCPUs() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "forwarding", "--chargers", "2", "--seconds", "1", "--rounds", "1", "--setups", "direct,witness-forward", "--rate", "200",
            "--scale-connections", "0", "--proxy-cpus", "1", "--load-cpus", "0",
            "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        // The benchmark stops with an error when a proxy does not run on exactly the CPUs asked for.
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("CPUs: proxy under test on 1, load generator and CSMS on 0"), "\(result.output)")
        #expect(result.output.split(separator: "\n").contains { $0.hasPrefix("  witness-forward ") && $0.contains("added p99") }, "\(result.output)")

        let missing = try await WitnessBinary.run(["benchmark", "forwarding", "--proxy-cpus", "0-4096"])
        #expect(missing.status != 0)
        #expect(missing.errors.contains("--proxy-cpus '0-4096': CPU 4096 does not exist"), "\(missing.errors)")
        let garbled = try await WitnessBinary.run(["benchmark", "forwarding", "--load-cpus", "first"])
        #expect(garbled.status != 0)
        #expect(garbled.errors.contains("expected CPU numbers and ranges such as 0-3,6"), "\(garbled.errors)")
    }
}

/// The recorder's thread on its own, in miniature.
@Suite("Recorder benchmark (reduced)")
struct RecorderBenchmarkSmokeTests {
    @Test("records and analyses the benchmark's messages, printing CPU per message, with nothing lost or flagged")
    func reducedRecorderBenchmark() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "recorder", "--messages", "4000", "--connections", "4", "--repeats", "1",
            "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        for row in ["| recording (complete, serialise, write) |", "| recording and live analysis |", "| of which live analysis |"] {
            #expect(result.output.contains(row), "\(result.output)")
        }
        #expect(result.output.contains("deviations found by live analysis: 0, records lost: 0"), "\(result.output)")

        let tooFew = try await WitnessBinary.run(["benchmark", "recorder", "--messages", "3", "--connections", "4"])
        #expect(tooFew.status != 0)
        #expect(tooFew.errors.contains("--messages 3"), "\(tooFew.errors)")
    }
}

/// The fleet's day in miniature, so it keeps working; time and memory are printed, never asserted.
@Suite("Analysis benchmark (reduced)")
struct AnalysisBenchmarkSmokeTests {
    @Test("a day of a small fleet is analysed with every record read and no deviation, and the figures are printed")
    func reducedFleetDay() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "analysis", "--chargers", "30", "--hours", "24", "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("| hour | records read | resident memory |"), "\(result.output)")
        #expect(result.output.contains("(0 unreadable)"), "\(result.output)")
        // The made-up traffic is clean: sessions across connectors, an outage, resumed heartbeats.
        #expect(result.output.contains("deviations: 0 "), "\(result.output)")
        let bad = try await WitnessBinary.run(["benchmark", "analysis", "--hours", "25"])
        #expect(bad.status != 0)
    }
}

/// The reconnect storm in miniature, so it keeps working; timings are printed, never asserted.
@Suite("Reconnect benchmark (reduced)")
struct ReconnectBenchmarkSmokeTests {
    @Test("a small storm over ws:// and wss:// brings every charger back through OCPP Witness and prints the figures")
    func reducedStorm() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "reconnect", "--chargers", "30", "--tls-chargers", "10", "--setups", "witness",
            "--schemas", WitnessBinary.root.appendingPathComponent("schemas").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        let plain = result.output.split(separator: "\n").first { $0.hasPrefix("ws  witness") } ?? ""
        let tls = result.output.split(separator: "\n").first { $0.hasPrefix("wss witness") } ?? ""
        #expect(plain.contains("(30/30)") && plain.contains("upgrades/s") && plain.contains("KiB per charger"), "\(result.output)")
        #expect(tls.contains("(10/10)") && tls.contains("TLS handshakes/s"), "\(result.output)")
        #expect(!result.output.contains("could not connect before the storm"), "\(result.output)")
        // The live page's first load, measured with the chargers connected.
        #expect(result.output.contains("live page with 30 chargers connected: GET / "), "\(result.output)")
        #expect(result.output.contains("(first 200 rows, "), "\(result.output)")
        // The recorder kept up with each storm's connection records and frames, from the proxy's own statistics.
        let recorder = result.output.split(separator: "\n").filter { $0.contains("recorder queue peaked at") }
        #expect(recorder.count == 2 && recorder.allSatisfy { $0.hasSuffix(", 0 records lost") }, "\(result.output)")
    }

    @Test("a proxy that cannot start ends the run with the proxy's own error instead of waiting for its port")
    func proxyThatCannotStart() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "reconnect", "--chargers", "5", "--tls-chargers", "0", "--setups", "witness", "--schemas", "/nonexistent/schemas",
        ])
        #expect(result.status != 0)
        #expect(result.errors.contains("ended (status 64) before listening on 127.0.0.1:"), "\(result.errors)")
        #expect(result.errors.contains("/nonexistent/schemas (--schemas)"), "\(result.errors)")
    }

    @Test("an unknown set-up is refused")
    func unknownSetup() async throws {
        let result = try await WitnessBinary.run(["benchmark", "reconnect", "--setups", "haproxy"])
        #expect(result.status != 0)
        #expect(result.errors.contains("unknown set-up 'haproxy'"), "\(result.errors)")
    }
}

/// `ocpp-witness billing` through the built binary (docs/billing.md).
@Suite("Billing sheet from the command line")
struct BillingCommandTests {
    @Test("the sample capture's transactions as CSV (numbers unquoted) and JSON, priced by the sample tariff where their figures are known; a missing capture is an error")
    func sheet() async throws {
        let csv = try await WitnessBinary.run(["billing", EvidenceCommandTests.sample, "--policy", "policies/metering-billing.yaml"])
        #expect(csv.status == 0, "\(csv.errors)")
        let lines = csv.output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("chargePoint,connector,transaction,idToken,version,start,stop,registerWh,") == true, "\(lines.first ?? "")")
        #expect(lines.count >= 2, "\(csv.output)")
        // Each row: quoted text first, then the register's energy as a bare number, and the tariff's price.
        let columns = BillingColumns(header: String(lines[0]))
        for line in lines.dropFirst() {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            #expect(cells.count == columns.count, "\(line)")
            #expect(cells[0].hasPrefix("\"") && !cells[columns.index("registerWh")].hasPrefix("\""), "\(line)")
            // The sample tariff charges for parking: a transaction is priced where the capture shows its energy and its states.
            let known = !cells[columns.index("registerWh")].isEmpty && !cells[columns.index("parkingS")].isEmpty
            #expect((Double(cells[columns.index("expected")]) != nil) == known, "\(line)")
        }
        let json = try await WitnessBinary.run(["billing", EvidenceCommandTests.sample, "--format", "json"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
        #expect((object?["transactions"] as? [[String: Any]])?.count == lines.count - 1)
        let missing = try await WitnessBinary.run(["billing", "/nonexistent/capture"])
        #expect(missing.status != 0 && missing.errors.contains("cannot read captures"), "\(missing.errors)")
        // A meter key file that cannot be read is named, in `billing` and `report` alike.
        for command in ["billing", "report"] {
            let noKey = try await WitnessBinary.run([command, EvidenceCommandTests.sample, "--meter-key", "CP-1=/nonexistent/key.pem"])
            #expect(noKey.status != 0 && noKey.errors.contains("--meter-key CP-1=/nonexistent/key.pem: cannot read a key from /nonexistent/key.pem"), "\(command): \(noKey.errors)")
        }
    }

    struct BillingColumns {
        let names: [String]
        init(header: String) { self.names = header.split(separator: ",").map(String.init) }
        var count: Int { self.names.count }
        func index(_ name: String) -> Int { self.names.firstIndex(of: name) ?? 0 }
    }
}
