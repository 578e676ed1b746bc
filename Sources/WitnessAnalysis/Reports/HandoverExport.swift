import Foundation
import OCPPWire
import WitnessCapture
import WitnessModel
import WitnessPolicy

/// What a buyer takes along when leaving a platform, read from captures: the charger inventory, the last
/// known configuration and the transactions. See docs/handover.md for every column.
public struct HandoverExport: Sendable {
    public struct Charger: Sendable, Hashable {
        public var chargePoint: String
        public var vendor = ""
        public var model = ""
        public var serialNumber = ""
        public var firmware = ""
        public var ocppVersions: Set<String> = []
        public var firstSeen = ""
        public var lastSeen = ""
        public var connections = 0
    }

    public struct Setting: Sendable, Hashable {
        public var chargePoint: String
        /// `GetConfiguration` (1.6) or `NotifyReport` (2.0.1, 2.1).
        public var source: String
        /// The 1.6 key, or `component[.instance]/variable[.instance]` with the EVSE and connector when given.
        public var key: String
        /// 2.0.1 attribute type (`Actual`, `Target`, `MinSet`, `MaxSet`); empty for 1.6.
        public var attribute: String
        public var value: String
        /// `true`/`false` for 1.6 readonly; the 2.0.1 mutability (`ReadOnly`, `ReadWrite`, `WriteOnly`).
        public var access: String
        /// When the answer or report was recorded.
        public var seen: String
    }

    public struct Transaction: Sendable, Hashable {
        public var chargePoint: String
        public var evse = ""
        public var connector = ""
        public var transactionId: String
        public var idTag = ""
        public var started = ""
        public var stopped = ""
        public var meterStartWh: Double?
        public var meterStopWh: Double?
        public var stopReason = ""

        public var energyWh: Double? {
            guard let start = self.meterStartWh, let stop = self.meterStopWh else { return nil }
            return stop - start
        }
    }

    public var chargers: [Charger]
    public var configuration: [Setting]
    public var transactions: [Transaction]
    public var readIssues: [CaptureReadIssue]

    /// Reads `records` in capture order. idTags are replaced by a stable pseudonym (`tag-` and 8 hex digits)
    /// unless `includeIdTags`: the same card keeps the same pseudonym, so sessions stay linkable.
    public static func read<Records: Sequence>(_ records: Records, includeIdTags: Bool = false, readIssues: [CaptureReadIssue] = []) -> HandoverExport
    where Records.Element == CaptureRecord {
        var builder = Builder(includeIdTags: includeIdTags)
        for record in records { builder.consume(record) }
        return HandoverExport(
            chargers: builder.chargers.values.sorted { $0.chargePoint < $1.chargePoint },
            configuration: builder.settings.values.sorted { ($0.chargePoint, $0.key, $0.attribute) < ($1.chargePoint, $1.key, $1.attribute) },
            transactions: builder.transactionOrder.compactMap { builder.transactions[$0] },
            readIssues: readIssues
        )
    }

    private struct Builder {
        let includeIdTags: Bool
        var chargers: [String: Charger] = [:]
        var settings: [String: Setting] = [:]
        var transactions: [String: Transaction] = [:]
        var transactionOrder: [String] = []
        /// 1.6 StartTransaction CALLs waiting for the transaction id in their answer.
        var pendingStarts: [String: (connector: String, idTag: String, started: String, meterStart: Double?)] = [:]
        var run = ""

        init(includeIdTags: Bool) { self.includeIdTags = includeIdTags }

        mutating func consume(_ record: CaptureRecord) {
            if record.recordKind == .header {
                self.run = record.fields["started"]?.stringValue ?? record.file
                return
            }
            guard let chargePoint = record.chargePoint, let stamp = record.timestamp else { return }
            var charger = self.chargers[chargePoint] ?? Charger(chargePoint: chargePoint)
            if charger.firstSeen.isEmpty { charger.firstSeen = stamp }
            charger.lastSeen = max(charger.lastSeen, stamp)
            if record.recordKind == .open {
                charger.connections += 1
                if let version = record.fields["version"]?.stringValue { charger.ocppVersions.insert(version) }
            }
            self.chargers[chargePoint] = charger
            guard record.recordKind == .frame, record.opcode == .text, let type = record.messageType, let message = record.message,
                let action = record.action, let id = record.messageId
            else { return }
            let connection = "\(self.run)|\(record.connection ?? 0)|\(id)"
            switch (type, action) {
            case (.call, "BootNotification"):
                guard let payload = message[3] else { return }
                let boot = BootIdentity(bootNotification: payload)
                charger.vendor = boot.vendor ?? charger.vendor
                charger.model = boot.model ?? charger.model
                charger.serialNumber = boot.serialNumber ?? charger.serialNumber
                charger.firmware = boot.firmware ?? charger.firmware
                self.chargers[chargePoint] = charger
            case (.callResult, "GetConfiguration"):
                for item in message[2]?["configurationKey"]?.arrayValue ?? [] {
                    guard let key = item["key"]?.stringValue else { continue }
                    self.set(
                        Setting(
                            chargePoint: chargePoint, source: "GetConfiguration", key: key, attribute: "", value: item["value"]?.stringValue ?? "",
                            access: item["readonly"]?.boolValue.map { $0 ? "true" : "false" } ?? "", seen: stamp
                        )
                    )
                }
            case (.call, "NotifyReport"):
                for item in message[3]?["reportData"]?.arrayValue ?? [] {
                    let key = Self.variableKey(item)
                    for attribute in item["variableAttribute"]?.arrayValue ?? [] {
                        self.set(
                            Setting(
                                chargePoint: chargePoint, source: "NotifyReport", key: key, attribute: attribute["type"]?.stringValue ?? "Actual",
                                value: attribute["value"]?.stringValue ?? "", access: attribute["mutability"]?.stringValue ?? "", seen: stamp
                            )
                        )
                    }
                }
            case (.call, "StartTransaction"):
                guard let payload = message[3] else { return }
                self.pendingStarts[connection] = (
                    payload["connectorId"].map(Self.text) ?? "", self.tag(payload["idTag"]?.stringValue),
                    payload["timestamp"]?.stringValue ?? stamp, payload["meterStart"].flatMap(Self.number)
                )
            case (.callResult, "StartTransaction"):
                guard let start = self.pendingStarts.removeValue(forKey: connection), let transactionId = message[2]?["transactionId"].map(Self.text) else { return }
                var transaction = Transaction(chargePoint: chargePoint, connector: start.connector, transactionId: transactionId)
                transaction.idTag = start.idTag
                transaction.started = start.started
                transaction.meterStartWh = start.meterStart
                self.upsert(transaction)
            case (.call, "StopTransaction"):
                guard let payload = message[3], let transactionId = payload["transactionId"].map(Self.text) else { return }
                var transaction = self.transactions[chargePoint + "|" + transactionId] ?? Transaction(chargePoint: chargePoint, transactionId: transactionId)
                transaction.stopped = payload["timestamp"]?.stringValue ?? stamp
                transaction.meterStopWh = payload["meterStop"].flatMap(Self.number) ?? transaction.meterStopWh
                transaction.stopReason = payload["reason"]?.stringValue ?? (transaction.stopReason.isEmpty ? "Local" : transaction.stopReason)
                if transaction.idTag.isEmpty { transaction.idTag = self.tag(payload["idTag"]?.stringValue) }
                self.upsert(transaction)
            case (.call, "TransactionEvent"):
                guard let payload = message[3], let transactionId = payload["transactionInfo"]?["transactionId"]?.stringValue else { return }
                var transaction = self.transactions[chargePoint + "|" + transactionId] ?? Transaction(chargePoint: chargePoint, transactionId: transactionId)
                if let evse = payload["evse"] {
                    transaction.evse = evse["id"].map(Self.text) ?? transaction.evse
                    transaction.connector = evse["connectorId"].map(Self.text) ?? transaction.connector
                }
                if let token = payload["idToken"]?["idToken"]?.stringValue { transaction.idTag = self.tag(token) }
                // The register reading the transaction rules read (outlet, all phases, unit and multiplier applied).
                let energy = TransactionTracker.samples(payload["meterValue"], version: .v201, base: "").last?.wh
                switch payload["eventType"]?.stringValue {
                case "Started":
                    transaction.started = payload["timestamp"]?.stringValue ?? stamp
                    transaction.meterStartWh = energy ?? transaction.meterStartWh
                case "Ended":
                    transaction.stopped = payload["timestamp"]?.stringValue ?? stamp
                    transaction.meterStopWh = energy ?? transaction.meterStopWh
                    transaction.stopReason = payload["transactionInfo"]?["stoppedReason"]?.stringValue ?? "Local"
                default:
                    if transaction.meterStartWh == nil { transaction.meterStartWh = energy }
                }
                self.upsert(transaction)
            default:
                break
            }
        }

        mutating func set(_ setting: Setting) {
            self.settings[setting.chargePoint + "|" + setting.key + "|" + setting.attribute] = setting
        }

        mutating func upsert(_ transaction: Transaction) {
            let key = transaction.chargePoint + "|" + transaction.transactionId
            if self.transactions[key] == nil { self.transactionOrder.append(key) }
            self.transactions[key] = transaction
        }

        func tag(_ value: String?) -> String {
            guard let value, !value.isEmpty else { return "" }
            if self.includeIdTags { return value }
            let hex = String(StableHash.fnv1a(value) >> 32, radix: 16)
            return "tag-" + String(repeating: "0", count: 8 - hex.count) + hex
        }

        static func variableKey(_ item: JSONValue) -> String {
            func named(_ value: JSONValue?) -> String {
                let name = value?["name"]?.stringValue ?? "?"
                return value?["instance"]?.stringValue.map { name + "." + $0 } ?? name
            }
            var key = named(item["component"]) + "/" + named(item["variable"])
            if let evse = item["component"]?["evse"] {
                key += " (evse \(evse["id"].map(Self.text) ?? "?")" + (evse["connectorId"].map { " connector " + Self.text($0) } ?? "") + ")"
            }
            return key
        }

        static func text(_ value: JSONValue) -> String { value.stringValue ?? JSONWriter.string(value) }

        static func number(_ value: JSONValue) -> Double? { value.doubleValue ?? value.stringValue.flatMap(Double.init) }
    }

    // MARK: Output

    public static let chargerColumns = ["chargePoint", "vendor", "model", "serialNumber", "firmware", "ocppVersions", "firstSeen", "lastSeen", "connections"]
    public static let configurationColumns = ["chargePoint", "source", "key", "attribute", "value", "access", "seen"]
    public static let transactionColumns = [
        "chargePoint", "evse", "connector", "transactionId", "idTag", "started", "stopped", "meterStartWh", "meterStopWh", "energyWh", "stopReason",
    ]

    public var chargerRows: [[String]] {
        self.chargers.map {
            [$0.chargePoint, $0.vendor, $0.model, $0.serialNumber, $0.firmware, $0.ocppVersions.sorted().joined(separator: " "), $0.firstSeen, $0.lastSeen, String($0.connections)]
        }
    }

    public var configurationRows: [[String]] {
        self.configuration.map { [$0.chargePoint, $0.source, $0.key, $0.attribute, $0.value, $0.access, $0.seen] }
    }

    public var transactionRows: [[String]] {
        func wh(_ value: Double?) -> String { value.map(\.plainText) ?? "" }
        return self.transactions.map {
            [$0.chargePoint, $0.evse, $0.connector, $0.transactionId, $0.idTag, $0.started, $0.stopped, wh($0.meterStartWh), wh($0.meterStopWh), wh($0.energyWh), $0.stopReason]
        }
    }

    /// RFC 4180: a header line, fields quoted when they hold a comma, quote or line break, CRLF line ends.
    /// Text a spreadsheet would run as a formula is neutralised first (`neutralized(_:)`).
    public static func csv(_ columns: [String], _ rows: [[String]]) -> String {
        func field(_ text: String) -> String {
            let text = Self.neutralized(text)
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return ([columns] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }

    /// A cell as a spreadsheet may safely open it (OWASP, CSV injection): text beginning with `=`, `+`, `-`, `@`,
    /// a tab, a carriage return or a line feed (or the full-width `＝＋－＠`), which Excel, LibreOffice and Google Sheets run as a formula
    /// (`=HYPERLINK(...)` in a charge point id, `=cmd|' /C calc'!A0` in a firmware version), gets a leading `'`,
    /// which the spreadsheet shows as text. A plain number stays as it is (`-12.5`, `1e3`), so a negative
    /// reading or difference is still a number.
    public static func neutralized(_ text: String) -> String {
        guard let first = text.unicodeScalars.first, Self.formulaStarts.contains(first) else { return text }
        return text.plainDecimalNumber != nil ? text : "'" + text
    }

    /// OWASP's list, a line feed, and the full-width forms some spreadsheets read as the same signs.
    static let formulaStarts: Set<Unicode.Scalar> = ["=", "+", "-", "@", "\t", "\r", "\n", "\u{FF1D}", "\u{FF0B}", "\u{FF0D}", "\u{FF20}"]

    /// One JSON object per row; numeric columns stay numbers, empty fields are null.
    public static func jsonLines(_ columns: [String], _ rows: [[String]], numeric: Set<String> = []) -> String {
        rows.map { row in
            var object = JSONObject()
            for (column, value) in zip(columns, row) {
                if value.isEmpty {
                    object[column] = .null
                } else if numeric.contains(column), Double(value) != nil {
                    object[column] = .number(value)
                } else {
                    object[column] = .string(value)
                }
            }
            return JSONWriter.string(.object(object))
        }.joined(separator: "\n") + (rows.isEmpty ? "" : "\n")
    }
}
