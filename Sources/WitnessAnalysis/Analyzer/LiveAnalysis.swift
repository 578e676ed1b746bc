import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import OCPPSchema
import OCPPWire
import WitnessCapture
import WitnessPolicy

/// Runs the analyzer on the recorder's thread over the records as they are written, logs each deviation
/// and counts them per rule. Nothing here touches the forwarding path.
public final class LiveAnalysis: @unchecked Sendable {
    // Only the recorder's thread calls `consume`; the lock keeps that true if it ever changes.
    private let lock = NIOLock()
    private let analyzer: Analyzer
    private let counts = NIOLockedValueBox<[String: Int]>([:])
    private let chargerCounts = NIOLockedValueBox<[String: Int]>([:])

    /// Name of the metric that counts deviations found live, per rule.
    public static let deviationsMetric = "ocpp_witness_deviations_total"
    /// HELP text of the metrics live analysis makes, by name.
    public static let metricHelp = [deviationsMetric: "Deviations found live, per rule."]

    /// `onDeviation` also gets each deviation, on the recorder's thread (the live page's feed).
    /// `checks`: the witness checks of the policy in force, whose verdicts `verdicts()` gives as they resolve;
    /// `site`: its site declarations.
    /// `stateRetentionSeconds`: see `AnalyzerConfiguration.stateRetentionSeconds`.
    public init(
        schemas: SchemaRegistry, profile: ValidationProfile, checks: [WitnessCheck] = [], site: SiteDeclaration = SiteDeclaration(),
        stateRetentionSeconds: Double? = nil, logger: Logger, onDeviation: (@Sendable (Deviation) -> Void)? = nil
    ) {
        var configuration = AnalyzerConfiguration(profile: profile)
        configuration.checks = checks
        configuration.site = site
        configuration.stateRetentionSeconds = stateRetentionSeconds
        configuration.keepsBillingRows = false
        let analyzer = Analyzer(schemas: schemas, configuration: configuration)
        let counts = self.counts
        let chargerCounts = self.chargerCounts
        // One counter per rule of the catalog that has fired; only the recorder's thread touches these.
        let counters = NIOLockedValueBox<[String: Counter]>([:])
        analyzer.onDeviation = { deviation in
            counts.withLockedValue { $0[deviation.rule, default: 0] += 1 }
            counters.withLockedValue { counters in
                if counters[deviation.rule] == nil {
                    counters[deviation.rule] = Counter(label: Self.deviationsMetric, dimensions: [("rule", deviation.rule)])
                }
                return counters[deviation.rule]
            }?.increment()
            chargerCounts.withLockedValue { $0[deviation.chargePoint ?? "?", default: 0] += 1 }
            onDeviation?(deviation)
            let level: Logger.Level = deviation.severity == .error ? .warning : (deviation.severity == .warning ? .notice : .info)
            logger.log(
                level: level, "deviation \(deviation.rule): \(deviation.detail)",
                metadata: [
                    "rule": "\(deviation.rule)", "chargePoint": "\(deviation.chargePoint ?? "")", "action": "\(deviation.action ?? "")",
                    "path": "\(deviation.path ?? "")", "ref": "\(deviation.ref ?? "")",
                ]
            )
        }
        self.analyzer = analyzer
    }

    /// The recorder's observer.
    public func consume(_ record: CaptureRecord) {
        self.lock.withLock { self.analyzer.consume(record) }
    }

    /// The witness checks' verdicts so far, per pair (see `Analyzer.interimVerdicts`).
    public func verdicts() -> JSONValue {
        self.lock.withLock { self.analyzer.interimVerdicts() }
    }

    /// Deviations seen so far, per rule.
    public var countsByRule: [String: Int] { self.counts.withLockedValue { $0 } }

    /// Deviations seen so far, per charge point.
    public var countsByChargePoint: [String: Int] { self.chargerCounts.withLockedValue { $0 } }

    /// Closes what is open and returns the pairs' results. Call once the recorder has stopped.
    public func finish() -> AnalysisReport {
        self.lock.withLock { self.analyzer.finish() }
    }
}
