import ArgumentParser
import CoreMetrics
import Foundation
import Logging
import NIOCore
import OCPPSchema
import OCPPWire
import WitnessAnalysis
import WitnessCapture
import WitnessCLISupport
import WitnessMetrics

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The recorder's thread on its own: the forwarding benchmark's messages, as the relay hands them over,
/// completed, serialised, written and analysed, with the CPU time of that one thread per message.
struct RecorderBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recorder",
        abstract: "CPU per message of the recorder's thread: the forwarding benchmark's messages recorded, and recorded and analysed.",
        discussion: """
            The messages of `benchmark forwarding` (chargers booting, then MeterValues and Heartbeat CALLs, 4:1, each with its
            CALLRESULT) are made up front, as the proxy's relay hands them to the recorder, and queued all at once. The recorder's
            thread then completes them (envelope, call correlation), writes them to a capture, and with live analysis parses and
            validates each message and applies the deviation rules. Printed: that thread's CPU time (user + kernel) per message,
            recording alone and with live analysis, the difference being the analysis. Nothing else competes with the thread, so
            runs repeat to within a few percent on a quiet machine, and `perf record -e cpu-clock -g` of this command profiles the
            recorder without the event loops. Use a release build (`make bench-recorder`).
            """
    )

    @Option(help: "Messages (CALLs and CALLRESULTs) per measurement.")
    var messages: Int = 400_000

    @Option(help: "Connections the messages are spread over, in turn.")
    var connections: Int = 64

    @Option(help: "Measurements of each kind; the median is printed.")
    var repeats: Int = 3

    @Option(help: ArgumentHelp("Folder with the OCA schemas.", valueName: "DIR"))
    var schemas: String?

    /// Which measurements run: both, or one of them alone (to profile it with `perf record`).
    enum Stage: String, ExpressibleByArgument, CaseIterable {
        case both, recording, analysis
    }

    @Option(help: "Which measurements run: both, or only recording, or only recording with analysis (for profiling one).")
    var stage: Stage = .both

    @Flag(help: "Without the recorder's Prometheus metrics (a proxy without --admin), to see what they cost.")
    var noMetrics = false

    @Option(
        help: ArgumentHelp(
            "Where the captures are written (default: a temporary folder); each is removed after its measurement.", valueName: "DIR"
        )
    )
    var directory: String?

    func validate() throws {
        guard self.messages >= 2 * self.connections else {
            throw ValidationError("--messages \(self.messages) is too few for \(self.connections) connections; use at least \(2 * self.connections)")
        }
        guard self.connections >= 1, self.repeats >= 1 else { throw ValidationError("--connections and --repeats expect at least 1") }
    }

    func run() async throws {
        let registry = try SchemaRegistry.load(forCommand: self.schemas)
        // The recorder's metrics as a proxy with --admin keeps them: swift-metrics on the Prometheus backend.
        if !self.noMetrics {
            MetricsSystem.bootstrap(PrometheusExposition(help: CaptureWriter.metricHelp, timerBuckets: CaptureWriter.metricTimerBuckets))
        }
        let base = self.directory ?? FileManager.default.temporaryDirectory.path
        print("OCPP Witness recorder benchmark — \(machineDescription())")
        print("\(self.messages) messages over \(self.connections) connections, \(self.repeats) measurement(s) each; CPU of the recorder's thread")
        print(self.noMetrics ? "(without metrics, as a proxy without --admin)\n" : "(with the recorder's Prometheus metrics, as a proxy serving /metrics counts them)\n")
        var recording: [Measurement] = []
        var analysing: [Measurement] = []
        for round in 0..<self.repeats {
            for analyse in [false, true] where self.stage == .both || (self.stage == .analysis) == analyse {
                let folder = base + "/witness-recorder-bench-\(getpid())-\(round)-\(analyse ? "analyse" : "record")"
                defer { try? FileManager.default.removeItem(atPath: folder) }
                let measurement = try await self.measure(in: folder, schemas: analyse ? registry : nil)
                if analyse { analysing.append(measurement) } else { recording.append(measurement) }
            }
        }
        print("| stage | CPU µs / message (user + kernel) | capture bytes / message |")
        print("|---|---:|---:|")
        let record = recording.isEmpty ? nil : Measurement.median(recording)
        let full = analysing.isEmpty ? nil : Measurement.median(analysing)
        if let record { print("| recording (complete, serialise, write) | \(record.perMessage) | \(record.bytesPerMessage) |") }
        if let full { print("| recording and live analysis | \(full.perMessage) | \(full.bytesPerMessage) |") }
        if let record, let full {
            print(String(format: "| of which live analysis | %.2f | |", full.microsPerMessage - record.microsPerMessage))
        }
        let lost = (record?.lost ?? 0) + (full?.lost ?? 0)
        let deviations = full.map { "deviations found by live analysis: \($0.deviations), " } ?? ""
        print("  (median of \(self.repeats); \(deviations)records lost: \(lost))")
    }

    struct Measurement {
        var user: Double
        var kernel: Double
        var messages: Int
        var bytes: Int
        var deviations: Int
        var lost: Int

        var microsPerMessage: Double { (self.user + self.kernel) / Double(max(1, self.messages)) * 1e6 }
        var perMessage: String {
            String(format: "%.2f (%.2f + %.2f)", self.microsPerMessage, self.user / Double(max(1, self.messages)) * 1e6, self.kernel / Double(max(1, self.messages)) * 1e6)
        }
        var bytesPerMessage: String { String(self.bytes / max(1, self.messages)) }

        static func median(_ all: [Measurement]) -> Measurement {
            let sorted = all.sorted { $0.microsPerMessage < $1.microsPerMessage }
            return sorted[sorted.count / 2]
        }
    }

    private func measure(in folder: String, schemas: SchemaRegistry?) async throws -> Measurement {
        var logger = Logger(label: "ocpp-witness.bench")
        logger.logLevel = .error
        let live = schemas.map { LiveAnalysis(schemas: $0, profile: .strict, logger: logger) }
        let events = RecorderLoad.events(messages: self.messages, connections: self.connections)
        var observer: (@Sendable (CaptureRecord) -> Void)?
        if let live { observer = { record in live.consume(record) } }
        let writer = try CaptureWriter(
            configuration: .init(directory: folder, highWatermark: Int.max, lowWatermark: Int.max),
            header: CaptureHeader(backendName: "Recorder benchmark"), observer: observer
        )
        // The writer thread exists once the writer does; its CPU is read from /proc before and after.
        let thread = try WriterThread.find()
        let before = thread.cpuTime
        for event in events { writer.record(event) }
        await writer.flush()
        let after = thread.cpuTime
        writer.close()
        let statistics = writer.statistics
        let used = after - before
        return Measurement(
            user: used.user, kernel: used.kernel, messages: self.messages, bytes: statistics.bytesWritten,
            deviations: live?.countsByRule.values.reduce(0, +) ?? 0, lost: statistics.recordsLost
        )
    }
}

/// The recorder's thread, found by its name among this process's threads.
struct WriterThread {
    var path: String

    static func find() throws -> WriterThread {
        for _ in 0..<200 {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            for task in tasks {
                let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
                if comm.trimmingCharacters(in: .whitespacesAndNewlines) == "capture-writer" {
                    return WriterThread(path: "/proc/self/task/\(task)/stat")
                }
            }
            usleep(5_000)
        }
        throw ValidationError("the recorder's thread (capture-writer) did not show up in /proc/self/task")
    }

    /// The thread's CPU time, from `utime` and `stime` in its stat file.
    var cpuTime: CPUTime {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard let stat = try? String(contentsOfFile: self.path, encoding: .utf8), let close = stat.range(of: ")") else { return CPUTime() }
        let fields = stat[close.upperBound...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return CPUTime() }
        return CPUTime(user: user / ticks, kernel: system / ticks)
    }
}

/// The forwarding benchmark's traffic as capture events: per connection an `open` record, a boot, then
/// MeterValues and Heartbeat CALLs (4:1) to the CSMS, each followed by its CALLRESULT, connections in turn.
enum RecorderLoad {
    static func events(messages: Int, connections: Int) -> [CaptureEvent] {
        var events: [CaptureEvent] = []
        events.reserveCapacity(messages + 2 * connections)
        let start = Timestamp.now().microseconds
        var clock: Int64 = 0
        func frame(_ connection: Int, _ direction: Direction, _ text: String) -> CaptureEvent {
            clock += 25
            var event = FrameEvent(
                ts: Timestamp(microseconds: start + clock), connection: UInt64(connection), chargePoint: "BENCH-\(connection)",
                direction: direction, opcode: .text, payload: ByteBuffer(string: text)
            )
            event.leaveToRecorder(seenNanos: UInt64(clock) * 1000)
            return .frame(event)
        }
        for connection in 0..<connections {
            events.append(
                .record(
                    kind: .open, ts: Timestamp(microseconds: start), connection: UInt64(connection), chargePoint: "BENCH-\(connection)",
                    direction: nil, fields: ["path": .string("/BENCH-\(connection)"), "chosen": "ocpp1.6", "version": "1.6"]
                )
            )
        }
        var sent = 0
        var step = 0
        while sent < messages {
            for connection in 0..<connections where sent < messages {
                let id = "\(connection)-\(step)"
                let now = Timestamp(microseconds: start + clock).rfc3339
                let (call, result): (String, String)
                if step == 0 {
                    call = #"[2,"\#(id)","BootNotification",{"chargePointVendor":"Alpha Charge","chargePointModel":"AC-22","firmwareVersion":"3.4.1"}]"#
                    result = #"[3,"\#(id)",{"status":"Accepted","currentTime":"\#(now)","interval":300}]"#
                } else if step % 5 == 0 {
                    call = #"[2,"\#(id)","Heartbeat",{}]"#
                    result = #"[3,"\#(id)",{"currentTime":"\#(now)"}]"#
                } else {
                    call = #"[2,"\#(id)","MeterValues",\#(JSONWriter.string(LoadRun.meterValues(10_000 + 10 * step)))]"#
                    result = #"[3,"\#(id)",{}]"#
                }
                events.append(frame(connection, .toCSMS, call))
                events.append(frame(connection, .toCharger, result))
                sent += 2
            }
            step += 1
        }
        for connection in 0..<connections {
            events.append(
                .record(
                    kind: .close, ts: Timestamp(microseconds: start + clock), connection: UInt64(connection),
                    chargePoint: "BENCH-\(connection)", direction: nil, fields: ["by": "charger", "code": 1000]
                )
            )
        }
        return events
    }
}
