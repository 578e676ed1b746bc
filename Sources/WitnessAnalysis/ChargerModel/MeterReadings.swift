import Foundation
import OCPPWire

/// Sampled values of one measurand read as numbers, for billing and the charging-limit effect: 1.6 decimal strings
/// or 2.0.1 numbers, 2.0.1 multipliers (clamped) and the kilo unit applied.
enum MeterReadings {
    /// The readings of `measurand` of no phase in a meterValue array (the first `limit` meter values), in `unit`
    /// (a `k` + unit value times 1000), with each meter value's time, where `accept` takes the sampled value.
    static func values(
        _ measurand: String, unit base: String, in meterValues: JSONValue?, version: OCPPVersion, limit: Int = .max,
        accept: (JSONValue) -> Bool = { _ in true }
    ) -> [(value: Double, ts: Int64?)] {
        var out: [(Double, Int64?)] = []
        for meterValue in (meterValues?.arrayValue ?? []).prefix(limit) {
            let sampled = meterValue["sampledValue"]?.arrayValue ?? []
            guard sampled.contains(where: { $0["measurand"]?.stringValue == measurand }) else { continue }
            let ts = meterValue["timestamp"]?.stringValue.flatMap(RFC3339.parse)?.microseconds
            for sample in sampled where sample["measurand"]?.stringValue == measurand && sample["phase"] == nil && accept(sample) {
                guard var value = sample["value"]?.stringValue.flatMap(Double.init) ?? sample["value"]?.doubleValue, value.isFinite else { continue }
                let unit = version == .v16 ? sample["unit"]?.stringValue : sample["unitOfMeasure"]?["unit"]?.stringValue
                if version != .v16, let multiplier = sample["unitOfMeasure"]?["multiplier"]?.intValue { value *= Foundation.pow(10, Double(min(max(multiplier, -9), 9))) }
                if unit == "k" + base { value *= 1000 }
                out.append((value, ts))
            }
        }
        return out
    }
}
