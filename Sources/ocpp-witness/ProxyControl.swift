import Foundation
import Logging
import NIOConcurrencyHelpers
import WitnessAnalysis
import WitnessCapture
import WitnessChaos
import WitnessProxy

/// Reloads the policy file on SIGHUP and when it changes on disk; an invalid file is refused with its
/// errors and the policy in force stays.
final class PolicyReloader: @unchecked Sendable {
    private let path: String
    private let faults: FaultInjection
    private let logger: Logger
    private let queue = DispatchQueue(label: "policy-reload")
    private var signalSource: (any DispatchSourceSignal)?
    private var timer: (any DispatchSourceTimer)?
    private var lastModified: Date?

    init(path: String, faults: FaultInjection, logger: Logger) {
        self.path = path
        self.faults = faults
        self.logger = logger
        self.lastModified = Self.modified(path)
    }

    func start() {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: self.queue)
        source.setEventHandler { [weak self] in self?.reload(reason: "SIGHUP") }
        source.resume()
        self.signalSource = source
        let timer = DispatchSource.makeTimerSource(queue: self.queue)
        timer.schedule(deadline: .now() + 2, repeating: 2)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let modified = Self.modified(self.path)
            if modified != self.lastModified {
                self.lastModified = modified
                self.reload(reason: "file changed")
            }
        }
        timer.resume()
        self.timer = timer
    }

    func stop() {
        self.signalSource?.cancel()
        self.timer?.cancel()
    }

    private func reload(reason: String) {
        guard let data = FileManager.default.contents(atPath: self.path) else {
            self.logger.error("policy reload (\(reason)) refused: cannot read \(self.path); the previous policy stays")
            return
        }
        do {
            try self.faults.replace(yaml: String(decoding: data, as: UTF8.self), source: self.path)
            self.logger.notice("fault policy reloaded (\(reason)): \(self.path), seed \(self.faults.engine?.policy.seed ?? 0)")
        } catch {
            self.logger.error("policy reload (\(reason)) refused; the previous policy stays:\n\(error)")
        }
    }

    private static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}

/// Prometheus text exposition of what the proxy, the recorder, the policy and the live analysis count.
enum PrometheusMetrics {
    /// `instance` names this proxy among several: every sample then carries `witness_instance` (Prometheus
    /// keeps `instance` for the scrape target itself).
    static func render(proxy: WitnessProxyServer, recorder: CaptureWriter?, faults: FaultInjection?, live: LiveAnalysis?, instance: String? = nil) -> String {
        var lines: [String] = []
        let instanceLabel = instance.map { "witness_instance=\"\(Self.escapeLabelValue($0))\"" }
        func labelled(_ labels: String) -> String {
            guard let instanceLabel else { return labels }
            return labels.isEmpty ? "{\(instanceLabel)}" : "{\(instanceLabel)," + labels.dropFirst()
        }
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples { lines.append("\(name)\(labelled(labels)) \(value)") }
        }
        func label(_ key: String, _ value: String) -> String {
            "{\(key)=\"\(Self.escapeLabelValue(value))\"}"
        }
        let stats = proxy.statistics
        metric("ocpp_witness_connections_accepted_total", "counter", "TCP connections accepted from chargers.", [("", stats.accepted)])
        metric("ocpp_witness_connections_active", "gauge", "Charger/backend pairs relaying now.", [("", stats.active)])
        metric("ocpp_witness_upgrades_refused_total", "counter", "Upgrades answered with an error status.", [("", stats.refused)])
        metric(
            "ocpp_witness_messages_total", "counter", "Messages relayed by closed pairs, per direction.",
            [(label("dir", "toCSMS"), stats.messagesToCSMS), (label("dir", "toCharger"), stats.messagesToCharger)]
        )
        let capture = recorder?.statistics ?? CaptureStatistics()
        metric("ocpp_witness_recorder_queue_depth", "gauge", "Records waiting to be written.", [("", capture.queueDepth)])
        metric("ocpp_witness_recorder_queue_depth_max", "gauge", "Largest queue depth seen.", [("", capture.maximumQueueDepth)])
        metric("ocpp_witness_records_written_total", "counter", "Capture records written.", [("", capture.recordsWritten)])
        metric("ocpp_witness_records_lost_total", "counter", "Capture records that could not be written.", [("", capture.recordsLost)])
        metric("ocpp_witness_capture_bytes_total", "counter", "Bytes written to capture files.", [("", capture.bytesWritten)])
        let keys = capture.messages.keys.sorted { ($0.direction, $0.action) < ($1.direction, $1.action) }
        func labels(_ key: CaptureStatistics.MessageKey) -> String {
            "{dir=\"\(Self.escapeLabelValue(key.direction))\",action=\"\(Self.escapeLabelValue(key.action))\"}"
        }
        metric("ocpp_witness_frames_total", "counter", "Messages and control frames recorded, per direction and action (or opcode).", keys.map { (labels($0), capture.messages[$0]?.messages ?? 0) })
        metric("ocpp_witness_frame_bytes_total", "counter", "Payload bytes recorded, per direction and action (or opcode).", keys.map { (labels($0), capture.messages[$0]?.bytes ?? 0) })
        lines.append("# HELP ocpp_witness_recorder_latency_seconds_max Longest time from a frame being seen to its record being written.")
        lines.append("# TYPE ocpp_witness_recorder_latency_seconds_max gauge")
        lines.append("ocpp_witness_recorder_latency_seconds_max\(labelled("")) \(Double(capture.maximumRecordLatencyMicros) / 1e6)")
        lines.append("# HELP ocpp_witness_recorder_latency_seconds Time from a frame being seen to its record being written.")
        lines.append("# TYPE ocpp_witness_recorder_latency_seconds summary")
        lines.append("ocpp_witness_recorder_latency_seconds_sum\(labelled("")) \(Double(capture.totalRecordLatencyMicros) / 1e6)")
        lines.append("ocpp_witness_recorder_latency_seconds_count\(labelled("")) \(capture.latencySamples)")
        if let hits = faults?.engine?.hitsByRule {
            metric("ocpp_witness_faults_total", "counter", "Faults injected, per policy rule.", hits.keys.sorted().map { (label("rule", $0), hits[$0] ?? 0) })
        }
        if let live {
            let counts = live.countsByRule
            metric("ocpp_witness_deviations_total", "counter", "Deviations found live, per rule.", counts.keys.sorted().map { (label("rule", $0), counts[$0] ?? 0) })
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A label value as the text exposition format wants it: backslash, double quote and line feed escaped.
    /// Action names come from chargers, so any of them can be in one.
    static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }
}
