import ChildProcesses
import Foundation
import NIOCore
import NIOPosix
import OCPPWire
import Testing
import WitnessCapture
import WitnessSim
import WitnessTestSupport

/// A port on 127.0.0.1 that was free a moment ago (for programs that cannot announce the port they bound).
func freeLoopbackPort(group: any EventLoopGroup) async throws -> Int {
    let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    return port
}

/// A one-way signal between tasks.
final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { self.lock.withLock { self.value } }
    func set() { self.lock.withLock { self.value = true } }
}

private let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite("Scale-out behind HAProxy")
struct ScaleOutTests {
    /// The configuration docs/deploy.md shows, with the test's ports.
    static func configuration(listen: Int, instances: [Int]) -> String {
        """
        global
            # Two sockets per charger; keep within the open-file limit of a process on this machine.
            maxconn 4000
        defaults
            mode http
            timeout connect 2s
            timeout client 60s
            timeout server 60s
            timeout tunnel 1h
            retries 3
            option redispatch
        frontend chargers
            bind 127.0.0.1:\(listen)
            default_backend witness
        backend witness
            # The charge point id is the last path segment: the same charger always reaches the same instance.
            balance uri
            hash-type consistent
        \(instances.enumerated().map { "    server witness-\($0.offset + 1) 127.0.0.1:\($0.element) check inter 300ms fall 1 rise 2" }.joined(separator: "\n"))

        """
    }

    @Test(
        "chargers sharded by id over two instances; one is stopped, its chargers reconnect to the other; one report over both captures",
        .enabled(if: haproxy != nil, "needs haproxy (set-up installs it)")
    )
    func haproxyScaleOut() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let csms = CSMSSimulator(configuration: .init(), group: group)
        let csmsAddress = try await csms.start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scaleout-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var instances: [(process: ChildProcess, port: Int, capture: String)] = []
        for name in ["a", "b"] {
            let capture = directory + "/" + name
            let (process, errors, _) = try WitnessBinary.startProxy([
                "--upstream", "ws://127.0.0.1:\(csmsAddress.port ?? 0)", "--capture", capture, "--backend-name", "SimCSMS", "--no-validate",
            ])
            let port = try #require(try WitnessBinary.announcedPort(errors))
            _ = PipeReader(errors)
            instances.append((process, port, capture))
        }
        defer { for instance in instances where instance.process.isRunning { instance.process.terminate() } }

        let listen = try await freeLoopbackPort(group: group)
        let configFile = directory + "/haproxy.cfg"
        try Self.configuration(listen: listen, instances: instances.map(\.port)).write(toFile: configFile, atomically: true, encoding: .utf8)
        let balancer = ChildProcess()
        balancer.executableURL = URL(fileURLWithPath: try #require(haproxy))
        balancer.arguments = ["-f", configFile, "-db"]
        balancer.standardOutput = FileHandle.nullDevice
        balancer.standardError = FileHandle.nullDevice
        try balancer.run()
        defer { if balancer.isRunning { balancer.terminate() } }
        try await Task.sleep(for: .milliseconds(300))
        try #require(balancer.isRunning, "haproxy did not start with \(configFile)")

        // Eight chargers stay connected through the balancer like firmware: boot, heartbeat, reconnect when dropped.
        let base = try WebSocketURL(parsing: "ws://127.0.0.1:\(listen)/ocpp")
        let chargers = (1...8).map { ChargerSimulator(profile: ChargerProfile(id: "CP-SHARD-\($0)"), baseURL: base, group: group) }
        let stop = StopSignal()
        let outcomes = Task {
            await withTaskGroup(of: ChargerSimulator.KeepAliveOutcome.self) { tasks in
                for charger in chargers {
                    tasks.addTask {
                        await charger.keepAlive(until: ContinuousClock.now + .seconds(60), interval: .milliseconds(200), retry: .milliseconds(300)) { _ in
                            stop.isSet
                        }
                    }
                }
                var all: [ChargerSimulator.KeepAliveOutcome] = []
                for await outcome in tasks { all.append(outcome) }
                return all
            }
        }
        func chargePoints(_ capture: String) -> Set<String> {
            Set(((try? CaptureReader(paths: [capture]).filter { $0.kind == "open" }) ?? []).compactMap(\.chargePoint))
        }
        // Both instances carry some of the fleet.
        #expect(await eventually(seconds: 20) { chargePoints(instances[0].capture).count + chargePoints(instances[1].capture).count == 8 })
        let onA = chargePoints(instances[0].capture)
        #expect(!onA.isEmpty && onA.count < 8, "the balancer put \(onA.count) of 8 chargers on the first instance")

        // The first instance is taken out (SIGTERM: it closes its connections with 1001 and flushes its capture).
        instances[0].process.terminate()
        instances[0].process.waitUntilExit()
        #expect(await eventually(seconds: 20) { chargePoints(instances[1].capture).isSuperset(of: onA) }, "its chargers reconnect to the other")
        stop.set()
        let finished = await outcomes.value
        instances[1].process.terminate()
        instances[1].process.waitUntilExit()

        // One report over both instances' captures: every charger in one pair. A connection cut while an instance
        // shut down may have opened without a boot; it counts as the `unknown` charger, never as a second pair
        // of the same charger.
        let report = try await WitnessBinary.run(["report", instances[0].capture, instances[1].capture])
        #expect(report.status == 0, "\(report.errors)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.output.utf8)) as? [String: Any])
        let pairs = try #require(json["pairs"] as? [[String: Any]]).filter { ($0["charger"] as? [String: Any])?["vendor"] as? String != "unknown" }
        #expect(pairs.count == 1)
        #expect((pairs.first?["chargePoints"] as? [String])?.count == 8)
        let connections = finished.reduce(0) { $0 + $1.connections }
        let boots = try CaptureReader(paths: [instances[0].capture, instances[1].capture]).filter {
            $0.kind == "frame" && $0.action == "BootNotification" && $0.messageType == .call
        }
        // No doubled records: each boot once, at most one per connection the chargers made.
        let keys = boots.map { "\($0.file)|\($0.connection ?? 0)|\($0.messageId ?? "")" }
        #expect(Set(keys).count == boots.count)
        #expect(boots.count >= 8 && boots.count <= connections)
        // Every charger that was on the stopped instance booted again on the other.
        let rebooted = Set(boots.filter { $0.file.hasPrefix(instances[1].capture) }.compactMap(\.chargePoint))
        #expect(rebooted.isSuperset(of: onA))
        #expect((json["readIssues"] as? [Any])?.isEmpty == true)
        await csms.stop()
        try await group.shutdownGracefully()
    }
}
