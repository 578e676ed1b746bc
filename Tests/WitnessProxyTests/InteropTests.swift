import ChildProcesses
import Foundation
import OCPPWire
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

/// Peers written by others: the `ocpp` library from PyPI, installed into .tools/venv by `make setup`.
struct PythonPeers {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let python = root.appendingPathComponent(".tools/venv/bin/python").path
    static let scripts = root.appendingPathComponent("Tests/Interop").path

    struct Missing: Error, CustomStringConvertible {
        var description: String { "Python interop peers not installed at \(PythonPeers.python); run `make setup`" }
    }

    static func requireInstalled() throws {
        guard FileManager.default.isExecutableFile(atPath: python) else { throw Missing() }
    }

    /// Starts the Python central system; returns the process and its port.
    /// `askConfiguration`: after each boot it asks the charger for its metering configuration (GetConfiguration, GetVariables).
    static func startCentralSystem(seconds: Int = 60, askConfiguration: Bool = false) async throws -> (ChildProcess, Int) {
        try await self.startServer(
            ["central_system.py"], seconds: seconds, name: "the Python central system",
            environment: askConfiguration ? ProcessInfo.processInfo.environment.merging(["OCPP_CS_ASK_CONFIGURATION": "1"]) { _, new in new } : nil
        )
    }

    /// Starts a Python server of Tests/Interop: the script and its mode (`arguments`), then a file for its
    /// port and how many seconds to run, then `extra`. Returns the process and the port it wrote.
    static func startServer(
        _ arguments: [String], seconds: Int, extra: [String] = [], name: String, quiet: Bool = false, environment: [String: String]? = nil
    ) async throws -> (ChildProcess, Int) {
        try requireInstalled()
        let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("py-port-\(UUID().uuidString)").path
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: python)
        process.environment = environment
        process.arguments = [scripts + "/" + arguments[0]] + arguments.dropFirst() + [portFile, String(seconds)] + extra
        if quiet { process.standardError = nil }
        try process.run()
        for _ in 0..<500 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text) {
                try? FileManager.default.removeItem(atPath: portFile)
                return (process, port)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.terminate()
        throw PythonFailure(description: "\(name) did not start within 10 s")
    }

    /// The Python charge point of each OCPP version.
    static func chargePointScript(_ version: OCPPVersion) -> String {
        version == .v16 ? "charge_point.py" : "charge_point_v201.py"
    }

    /// Runs the Python charge point of `version` against `url` and returns its one-line JSON summary.
    static func runChargePoint(url: String, id: String, version: OCPPVersion = .v16) async throws -> String {
        try await self.run(chargePointScript(version), [url, id])
    }

    /// Runs a script of Tests/Interop with `arguments` and returns its one-line JSON summary. Through `Program.run`,
    /// which drains the pipes on threads of its own: a blocking read on the concurrency pool (two threads here)
    /// would stall every other test for as long as the peer runs.
    static func run(_ script: String, _ arguments: [String]) async throws -> String {
        try requireInstalled()
        let result = try await Program.run(python, [scripts + "/" + script] + arguments)
        guard result.status == 0 else {
            throw PythonFailure(description: "\(script) failed (\(result.status)): \(result.errors)")
        }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct PythonFailure: Error, CustomStringConvertible {
        var description: String
    }
}

@Suite("Interoperability with the Python ocpp library")
struct InteropTests {
    @Test("a Python charge point and central system interoperate through the proxy as they do directly")
    func pythonPairThroughProxy() async throws {
        let (centralSystem, port) = try await PythonPeers.startCentralSystem()
        defer { centralSystem.terminate() }
        let direct = try await PythonPeers.runChargePoint(url: "ws://127.0.0.1:\(port)", id: "PY-direct")
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)/ocpp").run { harness in
            let proxied = try await PythonPeers.runChargePoint(url: "ws://127.0.0.1:\(harness.proxyURL.port)", id: "PY-proxied")
            #expect(proxied == direct)
            #expect(proxied.contains(#""stop": "Accepted""#))
            await harness.waitForClosedPairs(1)
            let frames = try await harness.frames("PY-proxied").filter { $0.opcode == .text }
            let calls = frames.filter { $0.messageType == .call }.compactMap(\.action)
            #expect(calls == ["BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction", "MeterValues", "MeterValues", "StopTransaction"])
            #expect(frames.filter { $0.messageType == .callResult }.count == calls.count)
        }
    }

    @Test("the Swift charger simulator completes a session with the Python central system through the proxy")
    func swiftChargerPythonCentralSystem() async throws {
        let (centralSystem, port) = try await PythonPeers.startCentralSystem()
        defer { centralSystem.terminate() }
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(port)").run { harness in
            let charger = harness.charger(ChargerProfile(id: "SWIFT-1", version: .v16))
            try await charger.connect()
            try await charger.boot()
            try await charger.chargingSession(meterSamples: 2)
            #expect(charger.counts.errors == 0)
            // Boot, status, heartbeat; authorize, three status changes, start, two meter values, stop.
            #expect(charger.counts.completed == 11)
            await charger.disconnect()
        }
    }

    @Test("the Python charge point completes a session with the Swift CSMS simulator through the proxy")
    func pythonChargePointSwiftCSMS() async throws {
        try await ProxyHarness.start(csms: .init(versions: [.v16])).run { harness in
            let summary = try await PythonPeers.runChargePoint(url: "ws://127.0.0.1:\(harness.proxyURL.port)", id: "PY-2")
            #expect(summary.contains(#""boot": "Accepted""#))
            #expect(summary.contains(#""stop": "Accepted""#))
        }
    }
}
