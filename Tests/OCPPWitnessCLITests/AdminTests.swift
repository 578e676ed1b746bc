import ChildProcesses
import Foundation
import NIOCore
import NIOPosix
import OCPPWire
import Testing
import WitnessCapture
import WitnessSim
import WitnessTestSupport

/// One HTTP/1.1 request over a real socket; returns the status code and body.
func http(
    _ method: String, port: Int, path: String, token: String? = nil, body: String = "", host: String = "127.0.0.1", origin: String? = nil
) async throws -> (Int, String) {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
    }
    var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n"
    if let token { request += "Authorization: Bearer \(token)\r\n" }
    if let origin { request += "Origin: \(origin)\r\n" }
    request += "\r\n" + body
    var response = ""
    try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(string: request))
        for try await chunk in inbound { response += String(buffer: chunk) }
    }
    let status = Int(response.split(separator: " ").dropFirst().first ?? "") ?? 0
    let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, body)
}

/// The built proxy with the admin API and a policy file, in front of a CSMS simulator of this process.
struct AdminRun {
    let group: MultiThreadedEventLoopGroup
    let csms: CSMSSimulator
    let directory: String
    let token = "test-token-0123456789abcdef"
    let policyFile: String
    let process: ChildProcess
    let errors: Pipe
    let proxyPort: Int
    let adminPort: Int

    static func start(policy: String, extra: [String] = []) async throws -> AdminRun {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let csms = CSMSSimulator(configuration: .init(), group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let policyFile = directory + "/policy.yaml"
        try policy.write(toFile: policyFile, atomically: true, encoding: .utf8)
        try "test-token-0123456789abcdef".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        let (process, errors, _) = try WitnessBinary.startProxy([
            "--upstream", "ws://127.0.0.1:\(csmsAddress.port ?? 0)", "--capture", directory + "/cap", "--policy", policyFile,
            "--admin", "127.0.0.1:0", "--admin-token-file", directory + "/token",
        ] + extra)
        let ports = try #require(WitnessBinary.announcedPorts(errors, [WitnessBinary.proxyAnnouncement, WitnessBinary.adminAnnouncement]))
        return AdminRun(
            group: group, csms: csms, directory: directory, policyFile: policyFile, process: process, errors: errors, proxyPort: ports[0],
            adminPort: ports[1]
        )
    }

    func removeFiles() {
        if self.process.isRunning { self.process.terminate() }
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

@Suite("Live control of a running proxy")
struct AdminTests {
    @Test("the admin API and SIGHUP change the policy and disconnect chargers; changes need the token")
    func adminAndReload() async throws {
        let run = try await AdminRun.start(policy: "seed: 5\nrules:\n  - name: none\n    match: {action: NoSuchAction}\n    fault: drop\n")
        defer { run.removeFiles() }
        let (group, csms, process, errors, token, policyFile) = (run.group, run.csms, run.process, run.errors, run.token, run.policyFile)
        let (proxyPort, adminPort) = (run.proxyPort, run.adminPort)

        let (metricsStatus, metrics) = try await http("GET", port: adminPort, path: "/metrics")
        #expect(metricsStatus == 200)
        #expect(metrics.contains("ocpp_witness_connections_active 0"))
        #expect(try await http("PUT", port: adminPort, path: "/policy", body: "rules: []").0 == 401)
        #expect(try await http("PUT", port: adminPort, path: "/policy", token: "wrong-token-0123456789", body: "rules: []").0 == 401)
        let (badStatus, badBody) = try await http("PUT", port: adminPort, path: "/policy", token: token, body: "rules:\n  - fault: explode\n")
        #expect(badStatus == 400)
        #expect(badBody.contains("admin API:2:12: unknown fault 'explode'"))
        #expect(try await http("GET", port: adminPort, path: "/policy").1.contains(#""seed":5"#))
        let (goodStatus, _) = try await http(
            "PUT", port: adminPort, path: "/policy", token: token,
            body: "seed: 77\nrules:\n  - name: lose-status\n    match: {action: StatusNotification}\n    fault: drop\n"
        )
        #expect(goodStatus == 200)
        #expect(try await http("GET", port: adminPort, path: "/policy").1.contains(#""seed":77"#))

        var url = try WebSocketURL(parsing: "ws://127.0.0.1:\(proxyPort)")
        url.pathPrefix = "/CP-ADMIN"
        let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: group)
        let atCSMS = await csms.connection("CP-ADMIN")
        charger.sendText(#"[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]"#)
        _ = try await charger.call("Heartbeat", [:])
        #expect(atCSMS.transcript.received.count == 1)
        let (_, connections) = try await http("GET", port: adminPort, path: "/connections")
        #expect(connections.contains(#""chargePoint":"CP-ADMIN""#))
        let (_, liveMetrics) = try await http("GET", port: adminPort, path: "/metrics")
        #expect(liveMetrics.contains(#"ocpp_witness_faults_total{rule="lose-status"} 1"#))
        #expect(liveMetrics.contains(#"ocpp_witness_frames_total{dir="toCSMS",action="Heartbeat"} 1"#))
        #expect(liveMetrics.contains(#"ocpp_witness_frames_total{dir="toCSMS",action="StatusNotification"} 1"#))
        #expect(liveMetrics.contains("ocpp_witness_recorder_latency_seconds_count"))
        // A CALL of the operator's own reaches the charger; its answer does not reach the backend.
        #expect(try await http("POST", port: adminPort, path: "/chargers/CP-ADMIN/inject", body: #"{"action":"Reset"}"#).0 == 401)
        let (injectStatus, _) = try await http(
            "POST", port: adminPort, path: "/chargers/CP-ADMIN/inject", token: token, body: #"{"action":"Reset","payload":{"type":"Hard"}}"#
        )
        #expect(injectStatus == 200)
        #expect(await eventually { charger.transcript.received.contains { $0.contains(#""Reset",{"type":"Hard"}"#) } })
        try await Task.sleep(for: .milliseconds(200))
        #expect(atCSMS.transcript.received.count == 1)
        #expect(try await http("POST", port: adminPort, path: "/chargers/CP-ADMIN/disconnect?code=4002").0 == 401)
        #expect(try await http("POST", port: adminPort, path: "/chargers/CP-ADMIN/disconnect?code=4002", token: token).0 == 200)
        await charger.waitClosed()
        #expect(charger.closeReceived?.code == 4002)
        #expect(try await http("POST", port: adminPort, path: "/chargers/CP-NONE/disconnect", token: token).0 == 404)

        // SIGHUP reloads the file; an invalid file is refused and the policy in force stays.
        try "seed: 99\nrules: []\n".write(toFile: policyFile, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        #expect(await eventually { (try? await http("GET", port: adminPort, path: "/policy").1.contains(#""seed":99"#)) == true })
        // Faults are counted per rule of the policy in force: the old policy's rule is gone from /metrics.
        #expect(try await !http("GET", port: adminPort, path: "/metrics").1.contains("lose-status"))
        try "seed: [\n".write(toFile: policyFile, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await http("GET", port: adminPort, path: "/policy").1.contains(#""seed":99"#))

        // Without a signal, a change of the file is picked up too.
        try "seed: 123\nrules: []\n".write(toFile: policyFile, atomically: true, encoding: .utf8)
        #expect(await eventually(seconds: 10) { (try? await http("GET", port: adminPort, path: "/policy").1.contains(#""seed":123"#)) == true })
        // One-off outages need the token and a duration.
        #expect(try await http("POST", port: adminPort, path: "/outage?seconds=1").0 == 401)
        #expect(try await http("POST", port: adminPort, path: "/outage", token: token).0 == 400)
        // A duration that cannot be scheduled is refused with the range; it used to trap the proxy.
        for bad in ["inf", "1e300", "-5", "nan", "0"] {
            let (status, body) = try await http("POST", port: adminPort, path: "/outage?seconds=\(bad)", token: token)
            #expect(status == 400, "seconds=\(bad)")
            #expect(body.contains("above 0 and at most 30 days"), "\(body)")
        }
        #expect(try await http("POST", port: adminPort, path: "/outage?seconds=1&mode=blackhole", token: token).0 == 200)

        process.terminate()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(log.contains("policy reload (SIGHUP) refused; the previous policy stays"))
        #expect(log.contains("fault policy reloaded (file changed)"))
        #expect(!log.contains(token))
        await csms.stop()
        try await group.shutdownGracefully()
    }

    /// Any web page the operator opens can reach 127.0.0.1 through a name of its own (DNS rebinding): the admin
    /// port answered it, with charger ids, addresses and frames, and carried out a mutating request.
    @Test("requests that name another host or come from another site's page are refused; --admin-allow-host lets a name in")
    func hostAndOrigin() async throws {
        let run = try await AdminRun.start(policy: "seed: 5\nrules: []\n", extra: ["--admin-allow-host", "witness.lab"])
        defer { run.removeFiles() }
        _ = PipeReader(run.errors)
        let port = run.adminPort
        for path in ["/", "/api/state", "/connections", "/metrics"] {
            let (status, body) = try await http("GET", port: port, path: path, host: "evil.example")
            #expect(status == 403, "\(path)")
            #expect(body.contains("DNS rebinding"), "\(body)")
        }
        #expect(try await http("POST", port: port, path: "/outage?seconds=5", token: run.token, host: "evil.example:9100").0 == 403)
        #expect(try await http("GET", port: port, path: "/connections", origin: "http://evil.example").0 == 403)
        #expect(try await http("GET", port: port, path: "/connections", origin: "null").0 == 403)
        // Loopback, localhost and the allowed name, with or without a port, and their pages, are answered.
        for (host, origin) in [("127.0.0.1:\(port)", "http://127.0.0.1:\(port)"), ("localhost", "http://localhost:\(port)"), ("[::1]:\(port)", nil), ("Witness.Lab:\(port)", "http://witness.lab:\(port)")] {
            #expect(try await http("GET", port: port, path: "/connections", host: host, origin: origin).0 == 200, "\(host)")
        }
        run.process.terminate()
        run.process.waitUntilExit()
        await run.csms.stop()
        try await run.group.shutdownGracefully()
    }

    @Test("metrics escape charger-chosen action names and bound their number, and name the instance; an oversized policy is refused with 413")
    func metricsLabelsAndBodyLimit() async throws {
        let run = try await AdminRun.start(policy: "seed: 5\nrules: []\n", extra: ["--instance", "witness-2"])
        defer { run.removeFiles() }
        let (group, csms, process, errors, token) = (run.group, run.csms, run.process, run.errors, run.token)
        let (proxyPort, adminPort) = (run.proxyPort, run.adminPort)
        // Live analysis logs a finding per unknown action; a full stderr pipe would stall the proxy.
        _ = PipeReader(errors)

        // A body over the limit is refused whole; cut at the limit, this one would still parse and replace the policy.
        let oversized = "seed: 99\nrules: []\n#" + String(repeating: "x", count: (1 << 20) + 16) + "\n"
        let (tooLarge, tooLargeBody) = try await http("PUT", port: adminPort, path: "/policy", token: token, body: oversized)
        #expect(tooLarge == 413)
        #expect(tooLargeBody.contains("limit"))
        #expect(try await http("GET", port: adminPort, path: "/policy").1.contains(#""seed":5"#))

        var url = try WebSocketURL(parsing: "ws://127.0.0.1:\(proxyPort)")
        url.pathPrefix = "/CP-LABELS"
        let charger = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: group)
        // Names seen before the bound keep their own series (replies are counted under their CALL's action).
        _ = try await charger.call("Heartbeat", [:])
        charger.sendText(#"[2,"q1","Evil\"Action\nwith\\slash",{}]"#)
        let names = CaptureStatistics.maximumMessageKeys + 50
        for index in 0..<names { charger.sendText(#"[2,"v\#(index)","Vendor\#(index)",{}]"#) }
        var metrics = ""
        #expect(
            await eventually(seconds: 10) {
                metrics = (try? await http("GET", port: adminPort, path: "/metrics").1) ?? ""
                return metrics.contains(#"dir="toCharger",action="(other)""#) && metrics.contains(#"action="Heartbeat""#)
            }, "metrics: \(metrics.split(separator: "\n").filter { !$0.contains("Vendor") }.joined(separator: "\n"))"
        )
        #expect(metrics.contains(#"ocpp_witness_frames_total{witness_instance="witness-2",dir="toCSMS",action="Evil\"Action\nwith\\slash"} 1"#))
        #expect(metrics.contains(#"ocpp_witness_connections_active{witness_instance="witness-2"} 1"#))
        #expect(metrics.contains(#"ocpp_witness_recorder_latency_seconds_count{witness_instance="witness-2"} "#))
        // Every line is a comment or one whole sample: no label value broke a line.
        let broken = metrics.split(separator: "\n").filter { !$0.hasPrefix("# ") && !$0.hasPrefix("ocpp_witness_") }
        #expect(broken.isEmpty, "lines that are neither a comment nor a sample: \(broken.prefix(3))")
        let series = metrics.split(separator: "\n").filter { $0.hasPrefix("ocpp_witness_frames_total{") }
        #expect(series.count <= CaptureStatistics.maximumMessageKeys + 2)

        // Prometheus's own text parser (prometheus_client's) reads the whole exposition, the escaped label
        // back as the charger wrote it, and every metric docs/admin-api.md lists.
        let samples = try await prometheusSamples(metrics)
        #expect(samples.contains { $0.name == "ocpp_witness_frames_total" && $0.labels["action"] == "Evil\"Action\nwith\\slash" && $0.value == 1 })
        #expect(samples.allSatisfy { $0.labels["witness_instance"] == "witness-2" })
        let exposed = Set(samples.map(\.name))
        let documented = try documentedMetrics()
        #expect(documented.count >= 15)
        // Faults are counted per rule of the policy in force; this one has none. A histogram's samples are
        // its `_bucket`s, `_count` and `_sum`.
        let missing = documented.filter { !exposed.contains($0) && !exposed.contains($0 + "_count") && $0 != "ocpp_witness_faults_total" }
        #expect(missing.isEmpty, "documented but not exposed: \(missing.sorted())")
        let undocumented = exposed.filter { name in
            !documented.contains(name) && !documented.contains(samples.first { $0.name == name }?.family ?? name)
        }
        #expect(undocumented.isEmpty, "exposed but not documented: \(undocumented.sorted())")
        // Every family says what it counts, and the recorder's latency is a histogram with its buckets.
        let silent = Set(samples.filter { $0.help.isEmpty }.map(\.family))
        #expect(silent.isEmpty, "families without HELP: \(silent.sorted())")
        #expect(samples.contains { $0.family == "ocpp_witness_recorder_latency_seconds" && $0.type == "histogram" && $0.labels["le"] == "+Inf" && $0.value >= 1 })

        await charger.close()
        process.terminate()
        process.waitUntilExit()
        await csms.stop()
        try await group.shutdownGracefully()
    }
}

/// One sample of a `/metrics` exposition, as Prometheus's text parser reads it.
private struct PrometheusSample: Decodable {
    var family: String
    var type: String
    var help: String
    var name: String
    var labels: [String: String]
    var value: Double
}

/// Parses `exposition` with prometheus_client's parser (Tests/Interop/parse_metrics.py, in the set-up's venv).
private func prometheusSamples(_ exposition: String) async throws -> [PrometheusSample] {
    let python = WitnessBinary.root.appendingPathComponent(".tools/venv/bin/python").path
    let script = WitnessBinary.root.appendingPathComponent("Tests/Interop/parse_metrics.py").path
    let result = try await Program.run(python, [script], input: Data(exposition.utf8))
    #expect(result.status == 0, "prometheus_client: \(result.errors)")
    return try result.output.split(separator: "\n").map { try JSONDecoder().decode(PrometheusSample.self, from: Data($0.utf8)) }
}

/// The sample names docs/admin-api.md's metrics table lists (`..._max` after a name stands for it with `_max`).
private func documentedMetrics() throws -> Set<String> {
    let docs = try String(contentsOf: WitnessBinary.root.appendingPathComponent("docs/admin-api.md"), encoding: .utf8)
    var names = Set<String>()
    for line in docs.split(separator: "\n") where line.hasPrefix("| `ocpp_witness_") {
        let cell = line.split(separator: "|")[0]
        var last = ""
        let parts = cell.split(separator: "`", omittingEmptySubsequences: false)
        for index in stride(from: 1, to: parts.count, by: 2) {
            let token = String(parts[index])
            let bare = String(token.prefix { $0 != "{" })
            let name = bare.hasPrefix("...") ? last + bare.dropFirst(3) : bare
            names.insert(name)
            last = name
        }
    }
    return names
}

