import Foundation
import NIOCore
import OCPPWire
import WitnessCapture
import WitnessSim

/// N chargers in a closed loop: each boots, then alternates MeterValues and Heartbeat CALLs, timing each answer.
enum LoadRun {
    struct Result {
        var messages: Int
        var messagesIncludingBoot: Int
        var messagesPerSecond: Double
        var p50: Double
        var p99: Double
        var p999: Double
        var errors: Int
        /// Chargers that could not connect or boot, with why; the run goes on with the others.
        var connectFailures: [String] = []
    }

    static func run(url: String, chargers: Int, seconds: Double, ratePerCharger: Double?, prefix: String, group: any EventLoopGroup) async throws -> Result {
        let base = try WebSocketURL(parsing: url)
        var simulators: [ChargerSimulator] = []
        var connectFailures: [String] = []
        for index in 0..<chargers {
            let charger = ChargerSimulator(profile: ChargerProfile(id: "\(prefix)-\(index)", version: .v16), baseURL: base, group: group)
            do {
                _ = try await charger.connect()
                try await charger.boot()
                simulators.append(charger)
            } catch {
                connectFailures.append("\(prefix)-\(index): \(error)")
                await charger.endpoint?.close()
            }
        }
        let warmUp = ContinuousClock.now + .milliseconds(500)
        let end = warmUp + .milliseconds(Int64(seconds * 1000))
        let outcomes = await withTaskGroup(of: ([Double], Int, Int).self) { tasks in
            for (index, charger) in simulators.enumerated() {
                tasks.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(4096)
                    var errors = 0
                    var total = 0
                    let interval = ratePerCharger.map { Duration.nanoseconds(Int64(1e9 / max($0, 0.001))) }
                    var next = ContinuousClock.now + .microseconds(Int64(index * 997 % 50_000))
                    var meter = 10_000
                    while ContinuousClock.now < end {
                        if let interval {
                            try? await Task.sleep(until: next, clock: .continuous)
                            next += interval
                        }
                        let started = ContinuousClock.now
                        do {
                            if total % 5 == 4 {
                                _ = try await charger.call("Heartbeat", [:])
                            } else {
                                meter += 10
                                _ = try await charger.call("MeterValues", LoadRun.meterValues(meter))
                            }
                        } catch {
                            errors += 1
                        }
                        total += 1
                        let finished = ContinuousClock.now
                        if started >= warmUp && finished <= end {
                            let elapsed = finished - started
                            latencies.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                        }
                    }
                    return (latencies, errors, total)
                }
            }
            var all: [([Double], Int, Int)] = []
            for await outcome in tasks { all.append(outcome) }
            return all
        }
        for charger in simulators { await charger.endpoint?.close() }
        // Everything the chargers sent and got answered, boot sequence included, for the capture check.
        let exchanged = simulators.reduce(0) { $0 + $1.counts.completed + $1.counts.errors }
        var latencies = outcomes.flatMap(\.0)
        latencies.sort()
        let measured = latencies.count * 2
        return Result(
            messages: measured, messagesIncludingBoot: exchanged * 2, messagesPerSecond: Double(measured) / seconds,
            p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), p999: percentile(latencies, 0.999),
            errors: outcomes.reduce(0) { $0 + $1.1 },
            connectFailures: connectFailures
        )
    }

    static func meterValues(_ wh: Int) -> JSONValue {
        let ts = Timestamp.now().rfc3339
        return [
            "connectorId": 1,
            "meterValue": [[
                "timestamp": .string(ts),
                "sampledValue": [
                    ["value": .string(String(wh)), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"],
                    ["value": "7360", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"],
                    ["value": "32.1", "context": "Sample.Periodic", "measurand": "Current.Import", "phase": "L1", "unit": "A"],
                ],
            ]],
        ]
    }
}

/// The value below which fraction `p` of the ascending `sorted` latencies lie, as every benchmark here reports
/// percentiles; 0 when there are none.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Many chargers connecting as fast as they can, then holding their connections with heartbeats.
enum ScaleRun {
    struct Result {
        var connected: Int
        var upgradesPerSecond: Double
        var heartbeats: Int
        var failures: Int
        /// Why connections failed, with how many failed that way.
        var failureReasons: [String: Int]
    }

    static func run(url: String, chargers: Int, seconds: Double, prefix: String, group: any EventLoopGroup) async throws -> Result {
        let base = try WebSocketURL(parsing: url)
        let started = ContinuousClock.now
        let inFlight = 256
        var endpoints: [OCPPEndpoint] = []
        var failures = 0
        var failureReasons: [String: Int] = [:]
        await withTaskGroup(of: Swift.Result<OCPPEndpoint, any Error>.self) { tasks in
            var launched = 0
            func launch() {
                let index = launched
                launched += 1
                tasks.addTask {
                    do {
                        let url = try WebSocketURL(parsing: base.description + "/\(prefix)-\(index)")
                        return .success(
                            try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"], connectTimeout: .seconds(30)), group: group)
                        )
                    } catch {
                        return .failure(error)
                    }
                }
            }
            while launched < min(inFlight, chargers) { launch() }
            for await outcome in tasks {
                switch outcome {
                case .success(let endpoint): endpoints.append(endpoint)
                case .failure(let error):
                    failures += 1
                    failureReasons["\(error)", default: 0] += 1
                }
                if launched < chargers { launch() }
            }
        }
        let ramp = ContinuousClock.now - started
        let rampSeconds = Double(ramp.components.seconds) + Double(ramp.components.attoseconds) / 1e18
        // Hold: every charger heartbeats every 5 s, spread over the interval.
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let heartbeats = await withTaskGroup(of: Int.self) { tasks in
            for (index, endpoint) in endpoints.enumerated() {
                tasks.addTask {
                    var count = 0
                    var next = ContinuousClock.now + .milliseconds(Int64(index % 5000))
                    while next < end {
                        try? await Task.sleep(until: next, clock: .continuous)
                        if (try? await endpoint.call("Heartbeat", [:], timeout: .seconds(30))) != nil { count += 1 }
                        next += .seconds(5)
                    }
                    return count
                }
            }
            return await tasks.reduce(0, +)
        }
        for endpoint in endpoints { endpoint.channel.close(promise: nil) }
        return Result(
            connected: endpoints.count, upgradesPerSecond: Double(endpoints.count) / max(rampSeconds, 0.001), heartbeats: heartbeats,
            failures: failures, failureReasons: failureReasons
        )
    }
}

