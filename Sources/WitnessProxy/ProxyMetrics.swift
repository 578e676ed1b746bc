import CoreMetrics

/// What the proxy counts of its connections, through swift-metrics: Prometheus samples on `/metrics` when
/// the binary bootstraps that backend, a no-op otherwise. `ProxyStatistics` keeps the same counts for
/// `--statistics-file` and the admin API.
struct ProxyMetrics: Sendable {
    static let accepted = "ocpp_witness_connections_accepted_total"
    static let active = "ocpp_witness_connections_active"
    static let refused = "ocpp_witness_upgrades_refused_total"
    static let messages = "ocpp_witness_messages_total"

    /// HELP text of each metric above, for the exposition.
    static let help: [String: String] = [
        accepted: "TCP connections accepted from chargers.",
        active: "Charger/backend pairs relaying now.",
        refused: "Upgrades answered with an error status.",
        messages: "Messages relayed by closed pairs, per direction.",
    ]

    let accepted = Counter(label: Self.accepted)
    let active = Meter(label: Self.active)
    let refused = Counter(label: Self.refused)
    let messagesToCSMS = Counter(label: Self.messages, dimensions: [("dir", "toCSMS")])
    let messagesToCharger = Counter(label: Self.messages, dimensions: [("dir", "toCharger")])
}

extension WitnessProxyServer {
    /// HELP text of the metrics the proxy makes, by name.
    public static var metricHelp: [String: String] { ProxyMetrics.help }
}
