import ChildProcesses
import Foundation
import Logging
import NIOCore
import NIOPosix
import OCPPWire
import WitnessCapture
import WitnessProxy
import WitnessSim

/// A CSMS simulator behind a real proxy with a real capture, on loopback ports the OS picks.
final class RecordedBench: Sendable {
    let group: MultiThreadedEventLoopGroup
    let csms: CSMSSimulator
    let proxy: WitnessProxyServer
    let recorder: CaptureWriter
    let captureDirectory: String
    let proxyPort: Int
    let csmsURL: WebSocketURL

    init(csms configuration: CSMSSimulator.Configuration = .init()) async throws {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        self.csms = CSMSSimulator(configuration: configuration, group: self.group)
        let csmsAddress = try await self.csms.start()
        self.csmsURL = try WebSocketURL(parsing: "ws://127.0.0.1:\(csmsAddress.port ?? 0)/ocpp")
        self.captureDirectory = temporaryPath("bench-capture")
        self.recorder = try CaptureWriter(
            configuration: .init(directory: self.captureDirectory, fsync: .never),
            header: CaptureHeader(backendName: "SimCSMS")
        )
        var logger = Logger(label: "pcap-test")
        logger.logLevel = .critical
        self.proxy = try WitnessProxyServer(
            configuration: ProxyConfiguration(listenHost: "127.0.0.1", listenPort: 0, upstream: self.csmsURL, backendName: "SimCSMS"),
            recorder: self.recorder, logger: logger, group: self.group
        )
        self.proxyPort = try await self.proxy.start().port ?? 0
    }

    /// Runs a charger through boot, a charging session and a clean close; waits for the proxy to record the close.
    func runCharger(_ profile: ChargerProfile) async throws {
        let charger = ChargerSimulator(
            profile: profile, baseURL: try WebSocketURL(parsing: "ws://127.0.0.1:\(self.proxyPort)"), group: self.group
        )
        let closed = self.proxy.statistics.closed + 1
        let endpoint = try await charger.connect()
        try await charger.boot()
        try await charger.chargingSession(meterSamples: 2)
        await endpoint.close()
        let deadline = Date().addingTimeInterval(10)
        while self.proxy.statistics.closed < closed && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// Stops everything and removes the capture, unless the caller goes on reading it (and removes it itself).
    func stop(keepingCapture: Bool = false) async {
        await self.proxy.shutdown(grace: .seconds(1))
        await self.csms.stop()
        self.recorder.close()
        if !keepingCapture { try? FileManager.default.removeItem(atPath: self.captureDirectory) }
        try? await self.group.shutdownGracefully()
    }
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("witness-\(name)-\(UUID().uuidString)").path
}

/// The path of an executable on PATH, if installed.
func executable(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Runs a program to completion; returns its exit status, standard output and standard error.
@discardableResult
func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// What a user compares between two captures of the same traffic: per message, who sent what.
struct MessageFacts: Hashable, CustomStringConvertible {
    var chargePoint: String
    var direction: String
    var opcode: String
    var payload: [UInt8]
    var action: String?
    var messageType: Int?

    init(_ record: CaptureRecord) {
        self.chargePoint = record.chargePoint ?? ""
        self.direction = record.direction?.rawValue ?? ""
        self.opcode = record.fields["opcode"]?.stringValue ?? ""
        self.payload = record.payloadBytes ?? []
        self.action = record.action
        self.messageType = record.fields["msgType"]?.intValue
    }

    var description: String { "\(self.chargePoint) \(self.direction) \(self.opcode) \(String(decoding: self.payload, as: UTF8.self))" }
}

func readCapture(_ path: String) throws -> [CaptureRecord] {
    let reader = try CaptureReader(paths: [path])
    reader.keepsMessageText = true
    return Array(reader)
}

/// Data messages and close frames of a capture, per charge point and direction, in capture order
/// (the order of the two directions relative to each other depends on where the traffic was seen).
func messageFacts(_ records: [CaptureRecord]) -> [String: [MessageFacts]] {
    var result: [String: [MessageFacts]] = [:]
    for record in records where record.kind == "frame" && ["text", "binary", "close"].contains(record.fields["opcode"]?.stringValue ?? "") {
        result[(record.chargePoint ?? "") + " " + (record.direction?.rawValue ?? ""), default: []].append(MessageFacts(record))
    }
    return result
}
