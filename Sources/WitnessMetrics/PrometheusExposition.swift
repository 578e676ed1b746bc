import CoreMetrics
import Prometheus

/// The swift-metrics backend the proxy serves on `/metrics`: swift-prometheus's registry and text format,
/// with what its stock factory leaves out. The modules that count things (the proxy, the recorder, the
/// fault engine, live analysis) create their metrics through swift-metrics and name them; this factory adds
/// each one's HELP text, the buckets of each timer's histogram, and labels every sample carries
/// (`witness_instance` when several proxies feed one Prometheus).
public struct PrometheusExposition: MetricsFactory {
    public let registry: PrometheusCollectorRegistry
    private let help: [String: String]
    private let timerBuckets: [String: [Duration]]
    private let commonLabels: [(String, String)]

    /// Buckets for a timer that names none of its own: 1 ms to 10 s.
    public static let defaultTimerBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
        .milliseconds(500), .seconds(1), .seconds(5), .seconds(10),
    ]

    /// `help` and `timerBuckets` are keyed by metric name; `commonLabels` come first on every sample.
    public init(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), help: [String: String],
        timerBuckets: [String: [Duration]] = [:], commonLabels: [(String, String)] = []
    ) {
        self.registry = registry
        self.help = help
        self.timerBuckets = timerBuckets
        self.commonLabels = commonLabels
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric made so far.
    public func render() -> String { self.registry.emitToString() }

    private func labels(_ dimensions: [(String, String)]) -> [(String, String)] {
        self.commonLabels.isEmpty ? dimensions : self.commonLabels + dimensions
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        self.registry.makeCounter(name: label, labels: self.labels(dimensions), help: self.help[label] ?? "")
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        self.registry.makeCounter(name: label, labels: self.labels(dimensions), help: self.help[label] ?? "")
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else {
            return self.registry.makeGauge(name: label, labels: self.labels(dimensions), help: self.help[label] ?? "")
        }
        let buckets = [0.001, 0.01, 0.1, 1, 10, 100, 1000, 10_000]
        return self.registry.makeValueHistogram(name: label, labels: self.labels(dimensions), buckets: buckets, help: self.help[label] ?? "")
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        self.registry.makeGauge(name: label, labels: self.labels(dimensions), help: self.help[label] ?? "")
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        self.registry.makeDurationHistogram(
            name: label, labels: self.labels(dimensions), buckets: self.timerBuckets[label] ?? Self.defaultTimerBuckets,
            help: self.help[label] ?? ""
        )
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { self.registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { self.registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { self.registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { self.registry.unregisterValueHistogram(histogram) }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { self.registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { self.registry.unregisterDurationHistogram(histogram) }
    }
}
