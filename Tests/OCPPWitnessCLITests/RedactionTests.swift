import ChildProcesses
import Foundation
import NIOCore
import NIOPosix
import OCPPWire
import Testing
import WitnessTestSupport
import WitnessSim

/// Secrets a backend sends inside OCPP messages, followed through every output a user gets.
@Suite("In-message secrets through the binary")
struct RedactionTests {
    static let authorizationKey = "0011AABBCCDDEEFF0011AABBCCDDEEFF"
    static let basicAuthPassword = "correct-horse-battery-staple-42"

    @Test("secrets in ChangeConfiguration and SetVariables reach the charger, and never the log, the capture, the reports or the pcapng export")
    func secretsStayOut() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let csms = CSMSSimulator(configuration: .init(versions: [.v16, .v201]), group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let capture = directory + "/capture"
        let (process, errors, _) = try WitnessBinary.startProxy([
            "--upstream", "ws://127.0.0.1:\(csmsAddress.port ?? 0)", "--capture", capture, "--log-level", "debug",
        ])
        let port = try #require(try WitnessBinary.announcedPort(errors))
        let base = try WebSocketURL(parsing: "ws://127.0.0.1:\(port)")

        let old = ChargerSimulator(profile: ChargerProfile(id: "CP-SECRET-16", version: .v16), baseURL: base, group: group)
        try await old.connect()
        try await old.boot()
        let oldAtBackend = await csms.connection("CP-SECRET-16")
        let changed = try await oldAtBackend.call("ChangeConfiguration", ["key": "AuthorizationKey", "value": .string(Self.authorizationKey)]).payload()
        #expect(changed["status"] == "Accepted")

        let new = ChargerSimulator(profile: ChargerProfile(id: "CP-SECRET-201", version: .v201), baseURL: base, group: group)
        try await new.connect()
        try await new.boot()
        let newAtBackend = await csms.connection("CP-SECRET-201")
        _ = try await newAtBackend.call(
            "SetVariables",
            [
                "setVariableData": [
                    [
                        "attributeValue": .string(Self.basicAuthPassword), "component": ["name": "SecurityCtrlr"],
                        "variable": ["name": "BasicAuthPassword"],
                    ]
                ]
            ]
        ).payload()
        // The proxy forwards the traffic unchanged: the chargers got the secrets.
        #expect(old.endpoint?.transcript.received.contains { $0.contains(Self.authorizationKey) } == true)
        #expect(new.endpoint?.transcript.received.contains { $0.contains(Self.basicAuthPassword) } == true)
        await old.disconnect()
        await new.disconnect()
        try await Task.sleep(for: .milliseconds(300))
        process.terminate()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        await csms.stop()
        try await group.shutdownGracefully()

        func leaks(_ text: String) -> Bool { text.contains(Self.authorizationKey) || text.contains(Self.basicAuthPassword) }
        #expect(log.contains("connection open") && !leaks(log))
        let files = try FileManager.default.contentsOfDirectory(atPath: capture).filter { $0.hasSuffix(".jsonl") }
        let captured = try files.map { try String(contentsOfFile: capture + "/" + $0, encoding: .utf8) }.joined()
        #expect(captured.contains("<redacted>") && captured.contains("SetVariables") && !leaks(captured))
        for format in ["json", "md", "html"] {
            let report = try await WitnessBinary.run(["report", capture, "--format", format])
            #expect(report.output.contains("Witness Labs") && !leaks(report.output + report.errors), "\(format)")
        }
        let pcapng = directory + "/secrets.pcapng"
        let export = try await WitnessBinary.run(["export", capture, "--pcapng", pcapng])
        #expect(export.status == 0, "\(export.errors)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: pcapng))
        #expect(bytes.range(of: Data("ChangeConfiguration".utf8)) != nil)
        #expect(bytes.range(of: Data(Self.authorizationKey.utf8)) == nil && bytes.range(of: Data(Self.basicAuthPassword.utf8)) == nil)
    }
}
