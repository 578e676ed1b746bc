import OCPPWire

/// Counts over a capture: connections, refusals, and messages per action and direction.
public struct CaptureSummary: Sendable {
    public struct ActionCount: Sendable, Hashable {
        public var action: String
        public var toCSMS = 0
        public var toCharger = 0
    }

    public var files: [String] = []
    public var records = 0
    public var connections = 0
    public var refused = 0
    public var errors = 0
    public var chargePoints: Set<String> = []
    /// Per action: CALLs and their answers, counted in the direction each travelled.
    public var actions: [String: ActionCount] = [:]
    /// Text messages that were not OCPP-J, and binary messages.
    public var malformed = 0
    public var binary = 0
    public var issues: [CaptureReadIssue] = []

    public init() {}

    /// Reads `paths` (files or folders) once, in constant memory.
    public init(paths: [String]) throws {
        let reader = try CaptureReader(paths: paths)
        var files: [String] = []
        for record in reader {
            if files.last != record.file { files.append(record.file) }
            self.add(record)
        }
        self.files = files
        self.issues = reader.issues
    }

    public mutating func add(_ record: CaptureRecord) {
        self.records += 1
        switch record.recordKind {
        case .open:
            self.connections += 1
            if let chargePoint = record.chargePoint { self.chargePoints.insert(chargePoint) }
        case .reject:
            self.refused += 1
        case .error:
            self.errors += 1
        case .frame:
            switch record.opcode {
            case .text:
                guard let action = record.action else {
                    if record.fields["malformed"] != nil { self.malformed += 1 }
                    return
                }
                var count = self.actions[action] ?? ActionCount(action: action)
                if record.direction == .toCSMS { count.toCSMS += 1 } else { count.toCharger += 1 }
                self.actions[action] = count
            case .binary:
                self.binary += 1
            default:
                break
            }
        default:
            break
        }
    }

    /// A plain-text table for terminals.
    public var table: String {
        let rows = self.actions.values.sorted { ($0.toCSMS + $0.toCharger, $1.action) > ($1.toCSMS + $1.toCharger, $0.action) }
        let width = max(6, rows.map(\.action.count).max() ?? 0)
        func pad(_ text: String, _ count: Int) -> String { text + String(repeating: " ", count: max(0, count - text.count)) }
        func left(_ text: String, _ count: Int) -> String { String(repeating: " ", count: max(0, count - text.count)) + text }
        var lines = [pad("action", width) + "  " + left("toCSMS", 8) + "  " + left("toCharger", 9)]
        for row in rows {
            lines.append(pad(row.action, width) + "  " + left(String(row.toCSMS), 8) + "  " + left(String(row.toCharger), 9))
        }
        return lines.joined(separator: "\n")
    }
}
