import OCPPWire
import WitnessPolicy

/// The feature matrix at the end of a capture: its findings, and the `featuresAsClaimed` checks it judges
/// (docs/reports.md, "Features").
extension Analyzer {
    func featuresJudged() -> [PairKey: [FeatureRow]] {
        let matrix = self.features.matrix(declarations: self.configuration.declarations)
        let judges = self.checks?.judgements.contains(.featuresAsClaimed) ?? false
        // Only pairs the report lists: a message before the charger's BootNotification belongs to no pair's matrix.
        for (pair, rows) in matrix.sorted(by: { $0.key < $1.key }) where self.pairs[pair] != nil {
            for row in rows {
                let verdict = row.verdict
                switch verdict {
                case .claimedButRefused:
                    // A required action answered NotImplemented is rpc.notImplementedRequired already: one cause, one finding.
                    guard let refusal = row.reportableRefusal else { break }
                    let action = refusal.how.split(separator: ":").first.map(String.init) ?? ""
                    self.reportDetached(
                        Deviation(
                            rule: "feature.claimedButRefused", chargePoint: refusal.chargePoint, direction: .toCSMS, action: action,
                            detail: row.sentence, ref: refusal.ref, related: row.claimRef.map { [$0] } ?? []
                        ),
                        pair: pair
                    )
                case .usedButNotClaimed:
                    guard let use = row.firstWorking else { break }
                    self.reportDetached(
                        Deviation(rule: "feature.usedNotClaimed", chargePoint: use.chargePoint, detail: row.sentence, ref: use.ref, related: row.claimRef.map { [$0] } ?? []),
                        pair: pair
                    )
                default:
                    break
                }
                guard judges else { continue }
                let outcome: (CheckVerdict, (Deviation.Side, String)?)? =
                    switch verdict {
                    case .works, .usedButNotClaimed, .notSupported: (.pass, nil)
                    case .claimedButRefused: (.fail, (.charger, "the charger claims the feature and refused it"))
                    case .backendRefused: (.fail, (.backend, "the backend refused the charger's messages of the feature"))
                    case .notAnswered: (.inconclusive, nil)
                    case .notExercised, .notClaimed: nil
                    }
                guard let (checkVerdict, side) = outcome else { continue }
                let refs = [row.chargerRefusal?.ref ?? row.backendRefusal?.ref ?? row.firstWorking?.ref, row.claimRef].compactMap { $0 }
                self.checks?.judged(
                    .featuresAsClaimed, checkVerdict, chargePoint: pair.charger.label, version: row.version, pair: pair, detail: row.sentence, refs: refs,
                    side: side, area: row.feature.area
                )
            }
        }
        return matrix
    }
}
