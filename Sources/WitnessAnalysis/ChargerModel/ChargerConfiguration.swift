import OCPPWire
import WitnessCapture
import WitnessPolicy

/// What the capture shows of each charger's configuration, for the settings metering and offline
/// authorization are judged by (`ChargerSetting`): from 1.6 GetConfiguration answers and accepted
/// ChangeConfiguration requests, and from 2.0.1/2.1 GetVariables answers, accepted SetVariables requests and
/// NotifyReport. Bounded: a handful of settings per charge point.
struct ChargerConfigurations {
    /// A setting's value as the capture showed it, and where.
    struct Known {
        var value: SettingValue
        var ref: String
        /// When the proxy saw it (the capture's clock).
        var ts: Int64
        var version: OCPPVersion
        /// How the charger names it (`MeterValueSampleInterval`, `SampledDataCtrlr.TxUpdatedInterval`).
        var name: String
        /// The path of the value in the message that showed it.
        var path: String
        /// When the value was last changed (an accepted ChangeConfiguration or SetVariables), and what it was
        /// before if the capture showed that: a value read (GetConfiguration, GetVariables, NotifyReport) is one
        /// the charger already had.
        var changedAt: Int64?
        var before: SettingValue?
        var beforeRef: String?
    }

    private var known: [String: [ChargerSetting: Known]] = [:]

    /// The CALLs whose payload the model needs when their answer comes (what was set).
    static func needsCall(_ action: String) -> Bool { Self.callsKept.contains(action) }

    /// What the model reads of a CALL's payload when its answer comes, and nothing more: an outstanding CALL
    /// keeps it until answered or timed out, so a charger sending large transaction events keeps only a few fields.
    static func kept(_ action: String, _ payload: JSONValue?) -> JSONValue? {
        guard let payload else { return nil }
        func pick(_ pointers: [(String, JSONValue?)]) -> JSONValue {
            .object(JSONObject(pointers.compactMap { key, value in value.map { JSONObject.Member(key: key, value: $0) } }))
        }
        switch action {
        case "Authorize", "StartTransaction":
            return pick([("idTag", payload["idTag"]), ("idToken", payload["idToken"]?["idToken"].map { ["idToken": $0] })])
        case "TransactionEvent":
            return pick([
                ("eventType", payload["eventType"]), ("idToken", payload["idToken"]?["idToken"].map { ["idToken": $0] }),
                ("transactionInfo", payload["transactionInfo"]?["transactionId"].map { ["transactionId": $0] }),
            ])
        case "ChangeConfiguration":
            return pick([("key", payload["key"]), ("value", payload["value"])])
        default:
            // SetVariables and SendLocalList come from the backend; they are read whole.
            return payload
        }
    }

    /// The CALLs the charger model reads again with their answer: what was set, and the identifiers answered.
    static let callsKept: Set<String> = ["ChangeConfiguration", "SetVariables", "Authorize", "StartTransaction", "TransactionEvent", "SendLocalList"]

    func value(_ setting: ChargerSetting, of chargePoint: String) -> Known? { self.known[chargePoint]?[setting] }

    mutating func release(_ chargePoint: String) { self.known.removeValue(forKey: chargePoint) }

    /// The settings a message shows: a charger's NotifyReport (a CALL), or an answer to GetConfiguration,
    /// ChangeConfiguration, GetVariables or SetVariables (`call` is the CALL it answers). Returns those it learnt.
    mutating func learn(
        action: String, call: JSONValue?, answer: JSONValue?, request: JSONValue?, chargePoint: String, version: OCPPVersion, ref: String, ts: Int64
    ) -> [(ChargerSetting, Known)] {
        var learnt: [(ChargerSetting, Known)] = []
        func note(_ setting: ChargerSetting, _ text: String?, name: String, path: String, changed: Bool = false) {
            guard let text, let value = SettingValue.parse(text, as: setting.kind) else { return }
            var known = Known(value: value, ref: ref, ts: ts, version: version, name: name, path: path)
            let earlier = self.known[chargePoint]?[setting]
            if changed || (earlier.map { !$0.value.agrees(with: value) } ?? false), earlier?.value.agrees(with: value) != true {
                // Changed by the backend, or read with another value than before (a change that took effect at a
                // reboot, or made at the charger): in force from now.
                known.changedAt = ts
                known.before = earlier?.value
                known.beforeRef = earlier?.ref
            } else if let earlier {
                // Read again: the value and its history stand.
                known.changedAt = earlier.changedAt
                known.before = earlier.before
                known.beforeRef = earlier.beforeRef
                if earlier.value.agrees(with: value) {
                    known.ref = earlier.ref
                    known.path = earlier.path
                    known.ts = earlier.ts
                }
            }
            self.known[chargePoint, default: [:]][setting] = known
            learnt.append((setting, known))
        }
        switch action {
        case "GetConfiguration" where version == .v16:
            for (index, item) in (answer?["configurationKey"]?.arrayValue ?? []).enumerated() {
                guard let key = item["key"]?.stringValue, let setting = ChargerSetting.named16(key) else { continue }
                note(setting, item["value"]?.stringValue, name: key, path: "/configurationKey/\(index)/value")
            }
        case "ChangeConfiguration" where version == .v16:
            guard answer?["status"]?.stringValue == "Accepted", let key = call?["key"]?.stringValue, let setting = ChargerSetting.named16(key) else { break }
            note(setting, call?["value"]?.stringValue, name: key, path: "/status", changed: true)
        case "GetVariables" where version != .v16:
            for (index, item) in (answer?["getVariableResult"]?.arrayValue ?? []).enumerated() {
                guard item["attributeStatus"]?.stringValue == "Accepted", (item["attributeType"]?.stringValue ?? "Actual") == "Actual",
                    let (setting, name) = Self.setting201(item)
                else { continue }
                note(setting, item["attributeValue"]?.stringValue, name: name, path: "/getVariableResult/\(index)/attributeValue")
            }
        case "SetVariables" where version != .v16:
            let asked = call?["setVariableData"]?.arrayValue ?? []
            for (index, item) in (answer?["setVariableResult"]?.arrayValue ?? []).enumerated() {
                guard item["attributeStatus"]?.stringValue == "Accepted", (item["attributeType"]?.stringValue ?? "Actual") == "Actual",
                    let (setting, name) = Self.setting201(item)
                else { continue }
                // The value set: the request's entry for the same component and variable.
                let request = asked.first { Self.setting201($0)?.0 == setting && ($0["attributeType"]?.stringValue ?? "Actual") == "Actual" }
                note(setting, request?["attributeValue"]?.stringValue, name: name, path: "/setVariableResult/\(index)/attributeStatus", changed: true)
            }
        case "NotifyReport" where version != .v16:
            for (index, item) in (request?["reportData"]?.arrayValue ?? []).enumerated() {
                guard let (setting, name) = Self.setting201(item) else { continue }
                for (position, attribute) in (item["variableAttribute"]?.arrayValue ?? []).enumerated()
                where (attribute["type"]?.stringValue ?? "Actual") == "Actual" {
                    note(setting, attribute["value"]?.stringValue, name: name, path: "/reportData/\(index)/variableAttribute/\(position)/value")
                }
            }
        default:
            break
        }
        return learnt
    }

    /// The setting a 2.0.1 component-and-variable entry names: station-wide ones only (an instance is another
    /// variable; a value for one EVSE is not the station's).
    private static func setting201(_ item: JSONValue) -> (ChargerSetting, String)? {
        guard let component = item["component"]?["name"]?.stringValue, let variable = item["variable"]?["name"]?.stringValue,
            item["variable"]?["instance"] == nil, item["component"]?["evse"] == nil, let setting = ChargerSetting.named201(component: component, variable: variable)
        else { return nil }
        return (setting, "\(component).\(variable)")
    }
}
