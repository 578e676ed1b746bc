import OCPPWire

/// One place where two runs of the same charger's conversation differ.
public struct Difference: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// A CALL in the first run has no counterpart in the second.
        case missingCall
        /// A CALL in the second run has no counterpart in the first.
        case extraCall
        /// One run answered with CALLRESULT, the other with CALLERROR (or not at all).
        case answerKind
        /// Both answered CALLERROR, with different error codes.
        case errorCode
        /// A value differs.
        case value
        /// A member present in the first run is absent in the second.
        case missingField
        /// A member absent in the first run is present in the second.
        case extraField
        /// The same member has a different JSON type.
        case type
    }

    public var kind: Kind
    public var chargePoint: String
    /// Direction of the CALL the difference belongs to.
    public var direction: Direction
    public var action: String
    /// 1-based position of the CALL among that charger's CALLs in that direction (in the first run).
    public var index: Int
    /// `request` or `answer`.
    public var part: String
    /// JSON pointer into the request or answer payload.
    public var path: String
    /// The value in the first run and in the second, as compact JSON (nil where absent).
    public var first: String?
    public var second: String?
    /// `file:line` in each run.
    public var firstReference: String?
    public var secondReference: String?

    public var description: String {
        let sender = self.direction == .toCSMS ? "charger" : "csms"
        let head = "\(self.chargePoint) \(sender) CALL #\(self.index) \(self.action) \(self.part)"
        switch self.kind {
        case .missingCall: return "\(head): only in the first run"
        case .extraCall: return "\(head): only in the second run"
        default:
            let location = self.path.isEmpty ? "" : " at \(self.path)"
            return "\(head)\(location): \(self.kind.rawValue): \(self.first ?? "absent") → \(self.second ?? "absent")"
        }
    }

    public var json: JSONValue {
        var object = JSONObject([
            "kind": .string(self.kind.rawValue), "chargePoint": .string(self.chargePoint), "dir": .string(self.direction.rawValue),
            "action": .string(self.action), "index": .int(self.index), "part": .string(self.part), "path": .string(self.path),
        ])
        if let first = self.first { object["first"] = .string(first) }
        if let second = self.second { object["second"] = .string(second) }
        if let reference = self.firstReference { object["firstRef"] = .string(reference) }
        if let reference = self.secondReference { object["secondRef"] = .string(reference) }
        return .object(object)
    }
}

/// How two runs are compared.
public struct DiffOptions: Sendable {
    /// Strings that are RFC 3339 timestamps in both runs count as equal: clocks differ between runs.
    public var ignoreTimestamps: Bool
    /// Members holding ids one side assigns (transaction ids): a consistent renumbering is not a difference.
    public var assignedIdFields: Set<String>

    public init(ignoreTimestamps: Bool = true, assignedIdFields: Set<String> = ["transactionId"]) {
        self.ignoreTimestamps = ignoreTimestamps
        self.assignedIdFields = assignedIdFields
    }
}

/// The result of comparing two runs.
public struct DiffReport: Sendable {
    public var differences: [Difference] = []
    public var chargePointsCompared = 0
    public var callsCompared = 0
    /// Charge points that appear in one run only.
    public var onlyInFirst: [String] = []
    public var onlyInSecond: [String] = []

    public var isEmpty: Bool { self.differences.isEmpty && self.onlyInFirst.isEmpty && self.onlyInSecond.isEmpty }

    public var json: JSONValue {
        .object(
            JSONObject([
                "chargePointsCompared": .int(self.chargePointsCompared), "callsCompared": .int(self.callsCompared),
                "onlyInFirst": .array(self.onlyInFirst.map(JSONValue.string)),
                "onlyInSecond": .array(self.onlyInSecond.map(JSONValue.string)),
                "differences": .array(self.differences.map(\.json)),
            ])
        )
    }

    /// A short text for people: one line per difference, then a summary line.
    public var text: String {
        var lines = self.differences.map(\.description)
        for chargePoint in self.onlyInFirst { lines.append("\(chargePoint): only in the first run") }
        for chargePoint in self.onlyInSecond { lines.append("\(chargePoint): only in the second run") }
        lines.append(
            "\(self.differences.count) difference\(self.differences.count == 1 ? "" : "s") in \(self.callsCompared) CALLs "
                + "of \(self.chargePointsCompared) charge point\(self.chargePointsCompared == 1 ? "" : "s")"
        )
        return lines.joined(separator: "\n")
    }
}

/// Compares what two runs of the same chargers said, CALL by CALL.
///
/// Sessions are matched by charge point identity (all connections of a charger in order), CALLs per
/// direction in order, with a small look-ahead so one missing or extra CALL does not shift every later
/// one. Message ids never count; timestamps and assigned ids are handled per `DiffOptions`.
public struct CaptureDiff {
    public var options: DiffOptions
    private var idMaps: [String: [String: String]] = [:]

    public init(options: DiffOptions = DiffOptions()) {
        self.options = options
    }

    public static func compare(_ first: [RecordedSession], _ second: [RecordedSession], options: DiffOptions = DiffOptions()) -> DiffReport {
        var diff = CaptureDiff(options: options)
        return diff.compare(first, second)
    }

    public mutating func compare(_ first: [RecordedSession], _ second: [RecordedSession]) -> DiffReport {
        var report = DiffReport()
        let firstByCharger = Self.group(first)
        let secondByCharger = Self.group(second)
        report.onlyInFirst = firstByCharger.keys.filter { secondByCharger[$0] == nil }.sorted()
        report.onlyInSecond = secondByCharger.keys.filter { firstByCharger[$0] == nil }.sorted()
        for chargePoint in firstByCharger.keys.sorted() {
            guard let a = firstByCharger[chargePoint], let b = secondByCharger[chargePoint] else { continue }
            report.chargePointsCompared += 1
            self.idMaps = [:]
            // Merge both directions back into recorded order so id mappings learnt from an answer apply to
            // the CALLs after it.
            var pairs: [Pair] = []
            for direction in [Direction.toCSMS, .toCharger] {
                pairs += Self.align(a.filter { $0.direction == direction }, b.filter { $0.direction == direction })
            }
            pairs.sort { $0.order < $1.order }
            for pair in pairs {
                report.callsCompared += 1
                report.differences += self.compare(pair.first, pair.second, chargePoint: chargePoint, index: pair.index)
            }
        }
        return report
    }

    private static func group(_ sessions: [RecordedSession]) -> [String: [RecordedExchange]] {
        var result: [String: [RecordedExchange]] = [:]
        for session in sessions.sorted(by: { $0.opened < $1.opened }) {
            result[session.chargePoint, default: []] += session.exchanges
        }
        return result
    }

    private struct Pair {
        var first: RecordedExchange?
        var second: RecordedExchange?
        /// 1-based position among the first run's CALLs in this direction.
        var index: Int
        /// Where the pair sits in the first run's time line: a CALL only in the second run goes right
        /// after the first-run CALL before it, so both directions interleave as recorded.
        var order: (Int64, Int)
    }

    /// Pairs CALLs of one direction by action, in order; unmatched ones pair with nil.
    private static func align(_ a: [RecordedExchange], _ b: [RecordedExchange]) -> [Pair] {
        var pairs: [Pair] = []
        var i = 0
        var j = 0
        var lastTime = Int64.min
        var tieBreak = 0
        let window = 8
        func add(_ x: RecordedExchange?, _ y: RecordedExchange?) {
            if let x { lastTime = x.time }
            tieBreak += 1
            pairs.append(Pair(first: x, second: y, index: i + 1, order: (lastTime, tieBreak)))
        }
        while i < a.count || j < b.count {
            if i < a.count, j < b.count, a[i].action == b[j].action {
                add(a[i], b[j])
                i += 1
                j += 1
            } else if i < a.count, j < b.count,
                let ahead = b[j..<min(b.count, j + window)].firstIndex(where: { $0.action == a[i].action })
            {
                while j < ahead {
                    add(nil, b[j])
                    j += 1
                }
            } else if i < a.count {
                add(a[i], nil)
                i += 1
            } else {
                add(nil, b[j])
                j += 1
            }
        }
        return pairs
    }

    private mutating func compare(_ x: RecordedExchange?, _ y: RecordedExchange?, chargePoint: String, index: Int) -> [Difference] {
        guard let x, let y else {
            let only = (x ?? y)!
            return [
                Difference(
                    kind: x == nil ? .extraCall : .missingCall, chargePoint: chargePoint, direction: only.direction, action: only.action,
                    index: index, part: "request", path: "", first: nil, second: nil, firstReference: x?.reference,
                    secondReference: y?.reference
                )
            ]
        }
        var found: [Difference] = []
        func note(_ kind: Difference.Kind, _ part: String, _ path: String, _ first: String?, _ second: String?, answer: Bool) {
            found.append(
                Difference(
                    kind: kind, chargePoint: chargePoint, direction: x.direction, action: x.action, index: index, part: part, path: path,
                    first: first, second: second, firstReference: answer ? x.answerReference ?? x.reference : x.reference,
                    secondReference: answer ? y.answerReference ?? y.reference : y.reference
                )
            )
        }
        self.walk(x.request, y.request, path: "", key: nil) { note($0, "request", $1, $2, $3, answer: false) }
        switch (x.answer, y.answer) {
        case (.result(let p), .result(let q)):
            self.walk(p, q, path: "", key: nil) { note($0, "answer", $1, $2, $3, answer: true) }
        case (.error(let c, _), .error(let d, _)):
            if c != d { note(.errorCode, "answer", "", c, d, answer: true) }
        case (.none, .none):
            break
        default:
            note(.answerKind, "answer", "", Self.kindName(x.answer), Self.kindName(y.answer), answer: true)
        }
        return found
    }

    private static func kindName(_ answer: RecordedExchange.Answer) -> String {
        switch answer {
        case .result: "CALLRESULT"
        case .error(let code, _): "CALLERROR \(code)"
        case .none: "no answer"
        }
    }

    private mutating func walk(
        _ a: JSONValue, _ b: JSONValue, path: String, key: String?,
        _ note: (Difference.Kind, String, String?, String?) -> Void
    ) {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            for member in x.members {
                let childPath = path + "/" + JSONPointer.escape(member.key)
                if let other = y[member.key] {
                    self.walk(member.value, other, path: childPath, key: member.key, note)
                } else {
                    note(.missingField, childPath, JSONWriter.string(member.value), nil)
                }
            }
            for member in y.members where x[member.key] == nil {
                note(.extraField, path + "/" + JSONPointer.escape(member.key), nil, JSONWriter.string(member.value))
            }
        case (.array(let x), .array(let y)):
            for index in 0..<min(x.count, y.count) {
                self.walk(x[index], y[index], path: path + "/\(index)", key: key, note)
            }
            if x.count != y.count { note(.value, path, "\(x.count) items", "\(y.count) items") }
        default:
            guard a.typeName == b.typeName else {
                note(.type, path, JSONWriter.string(a), JSONWriter.string(b))
                return
            }
            if let key, self.options.assignedIdFields.contains(key) {
                let first = JSONWriter.string(a)
                let second = JSONWriter.string(b)
                if let mapped = self.idMaps[key]?[first] {
                    if mapped != second { note(.value, path, first, second) }
                } else {
                    self.idMaps[key, default: [:]][first] = second
                }
                return
            }
            if self.equal(a, b) { return }
            note(.value, path, JSONWriter.string(a), JSONWriter.string(b))
        }
    }

    private func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)):
            return x == y || (Double(x) != nil && Double(x) == Double(y))
        case (.string(let x), .string(let y)):
            if x == y { return true }
            return self.options.ignoreTimestamps && RFC3339.parse(x) != nil && RFC3339.parse(y) != nil
        default:
            return a == b
        }
    }
}
