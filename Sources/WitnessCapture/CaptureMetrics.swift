import CoreMetrics

/// What the recorder counts, through swift-metrics: Prometheus samples on `/metrics` when the binary
/// bootstraps that backend, a no-op otherwise. Owned by the writer thread, which publishes after each
/// batch what `CaptureStatistics` gained in it.
struct CaptureMetrics {
    static let queueDepth = "ocpp_witness_recorder_queue_depth"
    static let queueDepthMaximum = "ocpp_witness_recorder_queue_depth_max"
    static let recordsWritten = "ocpp_witness_records_written_total"
    static let recordsLost = "ocpp_witness_records_lost_total"
    static let captureBytes = "ocpp_witness_capture_bytes_total"
    static let frames = "ocpp_witness_frames_total"
    static let frameBytes = "ocpp_witness_frame_bytes_total"
    static let latency = "ocpp_witness_recorder_latency_seconds"
    static let latencyMaximum = "ocpp_witness_recorder_latency_seconds_max"

    /// HELP text of each metric above, for the exposition.
    static let help: [String: String] = [
        queueDepth: "Records waiting to be written, as of the recorder's last batch.",
        queueDepthMaximum: "Largest queue depth seen.",
        recordsWritten: "Capture records written.",
        recordsLost: "Capture records that could not be written.",
        captureBytes: "Bytes written to capture files.",
        frames: "Messages and control frames recorded, per direction and action (or opcode).",
        frameBytes: "Payload bytes recorded, per direction and action (or opcode).",
        latency: "Time from a frame being seen to its record being written.",
        latencyMaximum: "Longest time from a frame being seen to its record being written.",
    ]

    /// The latency histogram's buckets: the writer naps 1 ms between batches and syncs once a second.
    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
    ]

    private let depth = Gauge(label: Self.queueDepth)
    private let depthMaximum = Gauge(label: Self.queueDepthMaximum)
    private let written = Counter(label: Self.recordsWritten)
    private let lost = Counter(label: Self.recordsLost)
    private let bytes = Counter(label: Self.captureBytes)
    private let latencyTimer = Timer(label: Self.latency)
    private let latencyMaximumGauge = Gauge(label: Self.latencyMaximum)
    /// One pair of counters per direction and action; `CaptureStatistics.maximumMessageKeys` bounds the keys.
    private var perAction: [CaptureStatistics.MessageKey: (messages: Counter, bytes: Counter)] = [:]
    /// What was published so far of the statistics' running totals.
    private var published = Totals()

    /// The running totals of `CaptureStatistics` that metrics follow (copied without its per-action table,
    /// which the writer goes on changing).
    struct Totals {
        var recordsWritten = 0
        var recordsLost = 0
        var bytesWritten = 0
        var maximumQueueDepth = 0
        var maximumRecordLatencyMicros: Int64 = 0

        init() {}

        init(_ stats: borrowing CaptureStatistics) {
            self.recordsWritten = stats.recordsWritten
            self.recordsLost = stats.recordsLost
            self.bytesWritten = stats.bytesWritten
            self.maximumQueueDepth = stats.maximumQueueDepth
            self.maximumRecordLatencyMicros = stats.maximumRecordLatencyMicros
        }
    }

    init() {
        self.depth.record(0)
        self.depthMaximum.record(0)
    }

    /// One frame's time from being seen to being written.
    func recordLatency(microseconds: Int64) {
        self.latencyTimer.recordMicroseconds(microseconds)
    }

    /// Publishes one batch: its frames per (bounded) key, and the totals that grew since the last call.
    mutating func publish(
        _ stats: Totals, queueDepth: Int, counts: [(CaptureStatistics.MessageKey, CaptureStatistics.MessageCount)]
    ) {
        self.depth.record(queueDepth)
        self.depthMaximum.record(stats.maximumQueueDepth)
        self.written.increment(by: stats.recordsWritten - self.published.recordsWritten)
        self.lost.increment(by: stats.recordsLost - self.published.recordsLost)
        self.bytes.increment(by: stats.bytesWritten - self.published.bytesWritten)
        for (key, count) in counts {
            let counters = self.counters(for: key)
            counters.messages.increment(by: count.messages)
            counters.bytes.increment(by: count.bytes)
        }
        if stats.maximumRecordLatencyMicros > self.published.maximumRecordLatencyMicros {
            self.latencyMaximumGauge.record(Double(stats.maximumRecordLatencyMicros) / 1e6)
        }
        self.published = stats
    }

    private mutating func counters(for key: CaptureStatistics.MessageKey) -> (messages: Counter, bytes: Counter) {
        if let counters = self.perAction[key] { return counters }
        let dimensions = [("dir", key.direction), ("action", key.action)]
        let counters = (Counter(label: Self.frames, dimensions: dimensions), Counter(label: Self.frameBytes, dimensions: dimensions))
        self.perAction[key] = counters
        return counters
    }
}

extension CaptureWriter {
    /// HELP text of the metrics the recorder makes, by name.
    public static var metricHelp: [String: String] { CaptureMetrics.help }
    /// Histogram buckets of the recorder's timers, by name.
    public static var metricTimerBuckets: [String: [Duration]] { [CaptureMetrics.latency: CaptureMetrics.latencyBuckets] }
}
