import ChildProcesses
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import OCPPWire
import Testing
import WitnessCapture
import WitnessSim
import WitnessTestSupport

/// Runs the built `ocpp-witness` binary as a user would.
struct WitnessBinary {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let path = root.appendingPathComponent(".build/debug/ocpp-witness").path

    typealias Result = Program.Result

    static func start(_ arguments: [String], executable: String = Self.path, directory: URL = Self.root) throws -> (ChildProcess, Pipe, Pipe) {
        let started = try Program.start(executable, arguments, directory: directory)
        return (started.process, started.output, started.errors)
    }

    /// Starts `proxy --listen 127.0.0.1:0 --log-format json` plus `arguments`.
    static func startProxy(_ arguments: [String]) throws -> (ChildProcess, Pipe, Pipe) {
        let (process, output, errors) = try self.start(["proxy", "--listen", "127.0.0.1:0", "--log-format", "json"] + arguments)
        return (process, errors, output)
    }

    static let proxyAnnouncement = ("OCPP Witness proxy on", #":(\d+), forwarding"#)
    static let adminAnnouncement = ("admin API on http://", #":(\d+) \("#)

    /// Reads the JSON log until every announcement (a marker and the pattern of its port) has been seen.
    static func announcedPorts(_ errors: Pipe, _ announcements: [(String, String)]) -> [Int]? {
        var logged = Data()
        let handle = errors.fileHandleForReading
        while true {
            let text = String(decoding: logged, as: UTF8.self)
            let ports = announcements.map { marker, pattern -> Int? in
                guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }),
                    let range = line.range(of: pattern, options: .regularExpression)
                else { return nil }
                return Int(line[range].dropFirst().prefix(while: { $0.isNumber }))
            }
            if ports.allSatisfy({ $0 != nil }) { return ports.compactMap { $0 } }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            logged.append(chunk)
        }
    }

    /// Reads the JSON log until the proxy announces its port.
    static func announcedPort(_ errors: Pipe) throws -> Int? {
        self.announcedPorts(errors, [self.proxyAnnouncement])?.first
    }

    /// Runs the binary to completion.
    static func run(_ arguments: [String], executable: String = Self.path, directory: URL = Self.root) async throws -> Result {
        try await Program.run(executable, arguments, directory: directory)
    }
}

@Suite("The ocpp-witness command line")
struct CLITests {
    @Test("every command has help a person can act on", arguments: [[], ["proxy"], ["demo"], ["simulate"], ["simulate", "charger"], ["simulate", "csms"], ["export"], ["import"], ["sniff"], ["replay"], ["diff"], ["view"], ["verify"]])
    func help(command: [String]) async throws {
        let result = try await WitnessBinary.run(command + ["--help"])
        #expect(result.status == 0)
        #expect(result.output.contains("USAGE: ocpp-witness"))
        #expect(result.output.contains("OVERVIEW:") || command.isEmpty == false)
    }

    @Test(
        "bad arguments say what was wrong",
        arguments: [
            (["proxy", "--listen", "abc", "--upstream", "ws://h:1"], "expected HOST:PORT"),
            (["proxy", "--listen", "127.0.0.1:0", "--upstream", "http://h:1"], "expected a ws:// or wss:// address"),
            (["proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://h:1", "--tls-cert", "a.pem"], "--tls-cert and --tls-key go together"),
            (["proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://h:1", "--fsync", "sometimes"], "--fsync expects never, batch"),
            // Durations are bounded before anything converts them: these used to trap (Int64 of an infinite or huge number).
            (["report", "captures/samples", "--response-timeout", "inf"], "--response-timeout: inf is not a finite number; a duration here is above 0 and at most 30 days"),
            (["report", "captures/samples", "--response-timeout", "1e300"], "--response-timeout: 1e+300 is longer than 30 days"),
            (["report", "captures/samples", "--clock-tolerance=-1"], "--clock-tolerance: -1 is negative; a duration here is from 0 to 30 days"),
            (["report", "captures/samples", "--interval-tolerance", "150%"], "--interval-tolerance must be a fraction from 0 to 1 (0.1) or a percentage (10%); got '150%'"),
            (["replay", "captures/samples", "--as", "charger", "--to", "ws://h:1", "--response-timeout", "1e19"], "--response-timeout: 1e+19 is longer than 30 days"),
            (["proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://h:1", "--handshake-timeout", "9223372036854775807"], "--handshake-timeout: 9.223372036854776e+18 is longer than 30 days"),
        ]
    )
    func badArguments(arguments: [String], message: String) async throws {
        let result = try await WitnessBinary.run(arguments)
        #expect(result.status != 0)
        #expect(result.errors.contains(message), "\(result.errors)")
    }

    @Test("a TLS file that cannot be read is a start-up error naming the file, and leaves no capture file")
    func unreadableCertificate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await WitnessBinary.run([
            "proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:9", "--tls-cert", "/nonexistent/cert.pem",
            "--tls-key", "/nonexistent/key.pem", "--capture", directory, "--no-validate",
        ])
        #expect(result.status != 0)
        #expect(result.errors.contains("/nonexistent/cert.pem"))
        #expect(Self.captureFiles(in: directory).isEmpty, "a failed start left a header-only capture")
    }

    @Test("a listen address in use is a start-up error, and leaves no capture file")
    func listenAddressInUse() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let holder = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inuse-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = holder.localAddress?.port ?? 0
        let result = try await WitnessBinary.run([
            "proxy", "--listen", "127.0.0.1:\(port)", "--upstream", "ws://127.0.0.1:9", "--capture", directory, "--no-validate",
        ])
        try await holder.close()
        try await group.shutdownGracefully()
        #expect(result.status != 0)
        #expect(result.errors.contains("in use"), "\(result.errors)")
        #expect(Self.captureFiles(in: directory).isEmpty, "a failed start left a header-only capture")
    }

    /// A charge point id comes from the charger's URL, percent-decoded: `%0A` in it must not start a line of the
    /// charger's choosing in the human log (CWE-117).
    @Test("a charge point id with an encoded newline cannot forge a line in the human log")
    func logInjection() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loginject-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (process, _, errors) = try WitnessBinary.start([
            "proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:9", "--capture", directory, "--no-validate", "--log-format", "human",
        ])
        let port = try #require(try WitnessBinary.announcedPort(errors))
        // The backend is unreachable: the proxy refuses the upgrade and logs it with the charge point id.
        let forged = "2026-01-01T00:00:00+0000 critical ocpp-witness.proxy: FORGED"
        let path = "/ocpp/CP-7%0A" + forged.replacingOccurrences(of: " ", with: "%20") + "%0D%1B[2J"
        let request = "GET \(path) HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\nSec-WebSocket-Protocol: ocpp1.6\\r\\n\\r\\n"
        let answer = try await Program.run("/usr/bin/env", ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port); printf '%b' '\(request)' >&3; timeout 10 head -c 12 <&3"])
        #expect(answer.output.hasPrefix("HTTP/1.1 5"), "\(answer.output) \(answer.errors)")
        process.terminate()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(log.contains("upgrade refused"), "\(log)")
        #expect(!log.split(separator: "\n").contains { $0.hasPrefix(forged) }, "\(log)")
        #expect(log.contains("CP-7\\n2026-01-01T00:00:00+0000 critical ocpp-witness.proxy: FORGED\\r\\u{1B}[2J"), "\(log)")
        #expect(!log.contains("\u{1B}"))
    }

    static func captureFiles(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".jsonl") }
    }

    @Test("the demo runs a pilot and leaves a capture that jq reads")
    func demo() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await WitnessBinary.run(["demo", "--capture", directory])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("Connections: 9 from 3 chargers, 0 refused"))
        #expect(result.output.contains("RemoteStartTransaction"))
        #expect(result.output.contains("RequestStartTransaction"))
        let files = try CaptureReader.captureFiles(at: directory)
        #expect(files.count == 1)
        let jq = try await Program.run("/usr/bin/env", ["jq", "-r", "select(.kind==\"frame\" and .msgType==2) | .action", files[0]])
        #expect(jq.status == 0, "\(jq.errors)")
        let actions = jq.output.split(separator: "\n")
        #expect(actions.filter { $0 == "BootNotification" }.count == 6)
        #expect(actions.contains("Reset"))
    }

    @Test("make install puts binary, schemas, policies and completions under a prefix; the binary works from any folder; make uninstall removes them")
    func installAnywhere() async throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("prefix-\(UUID().uuidString)").path
        let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent("elsewhere-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: prefix)
            try? FileManager.default.removeItem(atPath: elsewhere)
        }
        func make(_ arguments: [String]) async throws -> Int32 {
            try await Program.run("/usr/bin/env", ["make", "-s"] + arguments + ["PREFIX=\(prefix)", "CONFIG=debug"], directory: WitnessBinary.root).status
        }
        // The debug binary this suite runs is installed as it is (`make install` also builds it, in release).
        #expect(try await make(["install-files"]) == 0)
        for path in ["bin/ocpp-witness", "share/ocpp-witness/schemas/v201", "share/ocpp-witness/policies/data-handover.yaml",
                     "share/bash-completion/completions/ocpp-witness", "share/zsh/site-functions/_ocpp-witness"] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/" + path), "\(path)")
        }

        func installed(_ arguments: [String]) async throws -> WitnessBinary.Result {
            try await WitnessBinary.run(arguments, executable: prefix + "/bin/ocpp-witness", directory: URL(fileURLWithPath: elsewhere))
        }
        let demo = try await installed(["demo", "--capture", "pilot"])
        #expect(demo.status == 0, "\(demo.errors)")
        #expect(demo.output.contains("checks from \(prefix)/share/ocpp-witness/policies/"), "\(demo.output)")
        #expect(demo.output.contains("Report: pilot/report.html"))
        let report = try await installed(["report", "pilot", "--format", "md"])
        #expect(report.status == 0, "\(report.errors)")
        #expect(report.output.contains("## Witness test areas"))
        let missing = try await installed(["report", "pilot", "--schemas", "nowhere"])
        #expect(missing.status != 0 && missing.errors.contains("looked in:") && missing.errors.contains("nowhere (--schemas)"))

        #expect(try await make(["uninstall"]) == 0)
        #expect(!FileManager.default.fileExists(atPath: prefix + "/bin/ocpp-witness"))
        #expect(!FileManager.default.fileExists(atPath: prefix + "/share/ocpp-witness"))
    }

    @Test("SIGTERM closes live connections with 1001, flushes the capture and writes the final counts to --statistics-file")
    func gracefulShutdown() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let csms = CSMSSimulator(configuration: .init(), group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sigterm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let statistics = directory + "-statistics.json"
        defer { try? FileManager.default.removeItem(atPath: statistics) }
        let (process, errors, _) = try WitnessBinary.startProxy([
            "--upstream", "ws://127.0.0.1:\(csmsAddress.port ?? 0)", "--capture", directory, "--statistics-file", statistics,
        ])
        let port: Int? = try WitnessBinary.announcedPort(errors)
        let proxyPort = try #require(port)
        let charger = ChargerSimulator(
            profile: ChargerProfile(id: "CP-TERM"), baseURL: try WebSocketURL(parsing: "ws://127.0.0.1:\(proxyPort)"), group: group
        )
        try await charger.connect()
        try await charger.boot()
        process.terminate()  // SIGTERM
        let endpoint = try #require(charger.endpoint)
        await endpoint.waitClosed()
        #expect(endpoint.closeReceived?.code == 1001)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let records = Array(try CaptureReader(paths: [directory]))
        #expect(records.filter { $0.kind == "frame" && $0.opcode == .text }.count == 6)
        let close = try #require(records.first { $0.kind == "close" })
        #expect(close.fields["by"] == "proxy")
        #expect(close.fields["code"] == 1001)
        let counts = try JSONParser.parse(try String(contentsOfFile: statistics, encoding: .utf8))
        #expect(counts["connections"]?["accepted"] == 1 && counts["connections"]?["closed"] == 1)
        #expect(counts["messages"]?["toCSMS"] == 3 && counts["messages"]?["toCharger"] == 3)
        #expect(counts["recorder"]?["recordsWritten"]?.intValue == records.filter { $0.kind != "header" && $0.kind != "seal" }.count, "\(counts)")
        #expect(counts["recorder"]?["recordsLost"] == 0)
        await csms.stop()
        try await group.shutdownGracefully()
    }

    @Test("a proxy with --seal-key writes a capture that `verify --key` finds intact; an edited line is named, with exit status 1")
    func sealedCapture() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let csms = CSMSSimulator(configuration: .init(), group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sealed-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "-keys", withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + "-keys")
        }
        let key = SealKey.generate()
        let privatePath = directory + "-keys/seal.pem", publicPath = directory + "-keys/seal.pub.pem"
        try key.privatePEM!.write(toFile: privatePath, atomically: true, encoding: .utf8)
        try key.publicPEM.write(toFile: publicPath, atomically: true, encoding: .utf8)

        // A public key cannot seal: refused at start with the file's name.
        let refused = try await WitnessBinary.run(["proxy", "--listen", "127.0.0.1:0", "--upstream", "ws://127.0.0.1:1", "--capture", directory, "--seal-key", publicPath])
        #expect(refused.status != 0 && refused.errors.contains("--seal-key \(publicPath): a public key cannot sign"), "\(refused.errors)")

        let (process, errors, _) = try WitnessBinary.startProxy([
            "--upstream", "ws://127.0.0.1:\(csmsAddress.port ?? 0)", "--capture", directory, "--seal-key", privatePath,
        ])
        let port: Int? = try WitnessBinary.announcedPort(errors)
        let proxyPort = try #require(port)
        let charger = ChargerSimulator(
            profile: ChargerProfile(id: "CP-SEAL"), baseURL: try WebSocketURL(parsing: "ws://127.0.0.1:\(proxyPort)"), group: group
        )
        try await charger.connect()
        try await charger.boot()
        process.terminate()
        process.waitUntilExit()
        await csms.stop()
        try await group.shutdownGracefully()

        let intact = try await WitnessBinary.run(["verify", directory, "--key", publicPath])
        #expect(intact.status == 0, "\(intact.output) \(intact.errors)")
        #expect(intact.output.contains("intact: ") && intact.output.contains("signature valid (key \(key.id))"), "\(intact.output)")
        #expect(intact.output.hasSuffix("verdict: intact (1 files)\n"))

        // The BootNotification's answer, edited after the fact.
        let file = try #require(try CaptureReader.captureFiles(at: directory).first)
        var lines = try String(contentsOfFile: file, encoding: .utf8).components(separatedBy: "\n")
        let answer = try #require(lines.firstIndex { $0.contains(#""status":"Accepted""#) })
        lines[answer] = lines[answer].replacingOccurrences(of: #""status":"Accepted""#, with: #""status":"Rejected""#)
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let altered = try await WitnessBinary.run(["verify", directory, "--key", publicPath])
        #expect(altered.status == 1)
        #expect(altered.output.contains("ALTERED: line \(answer + 1) changed"), "\(altered.output)")
        let json = try await WitnessBinary.run(["verify", directory, "--json"])
        let parsed = try JSONParser.parse(json.output)
        #expect(parsed["files"]?[0]?["verdict"] == "altered" && parsed["files"]?[0]?["firstProblem"]?["line"]?.intValue == answer + 1)
    }

    @Test("started with a low open-file limit, the proxy raises it to the hard limit and says how many chargers fit")
    func openFileLimit() async throws {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let hard = Int(min(limit.rlim_max, rlim_t(1 << 30)))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nofile-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", #"ulimit -Sn 256 && exec "$0" "$@""#, WitnessBinary.path, "proxy", "--listen", "127.0.0.1:0", "--log-format", "json",
            "--upstream", "ws://127.0.0.1:9", "--capture", directory, "--no-validate",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        let announced = WitnessBinary.announcedPorts(errors, [("open-file limit", #" (\d+) chargers"#), WitnessBinary.proxyAnnouncement])
        // A stop right after the announcement: the proxy must honour it (graceful shutdown has its own test).
        process.terminate()
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let stopped = !process.isRunning
        if !stopped { kill(process.processIdentifier, SIGKILL) }
        #expect(stopped, "the proxy ignored SIGTERM sent right after it announced itself")
        #expect(announced?.first == (hard - 64) / 2, "hard limit \(hard)")
    }

    @Test("the proxy analyses live and logs deviations; the offline report of its capture finds the same")
    func liveAnalysisMatchesReport() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let csms = CSMSSimulator(configuration: .init(), group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (process, errors, _) = try WitnessBinary.startProxy([
            "--upstream", "ws://127.0.0.1:\(csmsAddress.port ?? 0)", "--capture", directory, "--backend-name", "Sim",
        ])
        let port = try #require(try WitnessBinary.announcedPort(errors))
        let charger = ChargerSimulator(
            profile: ChargerProfile(id: "CP-LIVE", quirks: [.registerGoesBackwards]),
            baseURL: try WebSocketURL(parsing: "ws://127.0.0.1:\(port)"), group: group
        )
        try await charger.connect()
        try await charger.boot()
        try await charger.chargingSession(meterSamples: 3)
        await charger.disconnect()
        try await Task.sleep(for: .milliseconds(200))
        process.terminate()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let deviationLines = log.split(separator: "\n").filter { $0.contains(#""rule":"tx.registerBackwards""#) }
        #expect(deviationLines.count == 1)
        #expect(deviationLines.first?.contains(#""chargePoint":"CP-LIVE""#) == true)
        #expect(log.contains("deviations seen live: tx.registerBackwards 1"))
        #expect(log.contains("deviations per charge point: CP-LIVE 1"))
        #expect(log.contains("pair fail: Witness Labs SimCharger 22 1.0.0 × Sim (tx.registerBackwards 1)"))

        let report = try await WitnessBinary.run(["report", directory, "--format", "json"])
        #expect(report.status == 0, "\(report.errors)")
        let json = try JSONParser.parse(report.output)
        #expect(json["summary"]?["byRule"] == ["tx.registerBackwards": 1])
        #expect(json["pairs"]?[0]?["verdict"] == "fail")
        #expect(json["pairs"]?[0]?["backend"] == "Sim")

        let failing = try await WitnessBinary.run(["report", directory, "--format", "junit", "--fail-on", "error", "-o", directory + "/report.xml"])
        #expect(failing.status == 1)
        #expect(failing.errors.contains("1 errors, 0 warnings across 1 pair(s)"))
        await csms.stop()
        try await group.shutdownGracefully()
    }

    @Test("report --policy judges by the policy's site declarations, and --interval-tolerance widens what meter.interval allows")
    func siteDeclarations() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("site-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A 1.6 charger without configuration on the wire, metering every 12 s.
        func frame(_ time: String, _ direction: String, _ type: Int, _ id: String, _ action: String, _ payload: String) -> String {
            #"{"ts":"2026-12-04T08:\#(time)Z","kind":"frame","conn":1,"chargePoint":"CP-SITE","dir":"\#(direction)","opcode":"text","msgType":\#(type),"msgId":"\#(id)","action":"\#(action)","enc":"json","payload":\#(payload)}"#
        }
        var lines = [
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"header","format":1,"started":"2026-12-04T08:00:00.000000Z","backend":"B"}"#,
            #"{"ts":"2026-12-04T08:00:00.000000Z","kind":"open","conn":1,"chargePoint":"CP-SITE","chosen":"ocpp1.6","version":"1.6"}"#,
            frame("00:00.000000", "toCSMS", 2, "s", "StartTransaction", #"[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":0,"timestamp":"2026-12-04T08:00:00Z"}]"#),
            frame("00:00.000000", "toCharger", 3, "s", "StartTransaction", #"[3,"s",{"transactionId":7,"idTagInfo":{"status":"Accepted"}}]"#),
        ]
        for reading in 1...4 {
            let time = String(format: "%02d:%02d", reading * 12 / 60, reading * 12 % 60)
            lines.append(frame("\(time).000000", "toCSMS", 2, "m\(reading)", "MeterValues", #"[2,"m\#(reading)","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-12-04T08:\#(time)Z","sampledValue":[{"value":"\#(reading * 10)"}]}]}]"#))
            lines.append(frame("\(time).000000", "toCharger", 3, "m\(reading)", "MeterValues", #"[3,"m\#(reading)",{}]"#))
        }
        lines.append(frame("01:00.000000", "toCSMS", 2, "e", "StopTransaction", #"[2,"e","StopTransaction",{"transactionId":7,"meterStop":50,"timestamp":"2026-12-04T08:01:00Z"}]"#))
        lines.append(frame("01:00.000000", "toCharger", 3, "e", "StopTransaction", #"[3,"e",{}]"#))
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/capture.jsonl", atomically: true, encoding: .utf8)
        try "site:\n  metering:\n    sampleInterval: 10s\n".write(toFile: directory + "/site.yaml", atomically: true, encoding: .utf8)

        let strict = try await WitnessBinary.run(["report", directory + "/capture.jsonl", "--policy", directory + "/site.yaml", "--format", "json"])
        #expect(strict.status == 0, "\(strict.errors)")
        #expect(try JSONParser.parse(strict.output)["summary"]?["byRule"] == ["meter.interval": 1], "\(strict.output.prefix(600))")
        let wide = try await WitnessBinary.run(
            ["report", directory + "/capture.jsonl", "--policy", directory + "/site.yaml", "--interval-tolerance", "25%", "--format", "json"]
        )
        #expect(try JSONParser.parse(wide.output)["summary"]?["byRule"] == [:], "\(wide.output.prefix(600))")
        // Without the policy nothing says what the interval should be.
        let plain = try await WitnessBinary.run(["report", directory + "/capture.jsonl", "--format", "json"])
        #expect(try JSONParser.parse(plain.output)["pairs"]?[0]?["cadence"]?["rows"]?[0]?["configuredIntervalS"] == .null)
    }

    @Test("report says clearly when the schemas are missing")
    func reportWithoutSchemas() async throws {
        let result = try await WitnessBinary.run(["report", "captures", "--schemas", "/nonexistent"])
        #expect(result.status != 0)
        #expect(result.errors.contains("/nonexistent/v16") && result.errors.contains("make setup"))
    }

    @Test("the validation benchmark runs briefly against its Python peer and prints the comparison")
    func validationBenchmark() async throws {
        let result = try await WitnessBinary.run([
            "benchmark", "validation", "--seconds", "0.05", "--peer-python", WitnessBinary.root.appendingPathComponent(".tools/venv/bin/python").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        let rows = result.output.split(separator: "\n").filter { $0.hasPrefix("1.6 ") || $0.hasPrefix("2.0.1 ") }
        #expect(rows.count == 8)
        #expect(rows.allSatisfy { $0.hasSuffix("x") })
    }
}
