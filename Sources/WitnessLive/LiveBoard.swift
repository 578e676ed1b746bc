import NIOConcurrencyHelpers
import OCPPWire
import WitnessModel
import WitnessCapture

/// What the live page shows, kept up to date from the records as the capture writer writes them (so
/// redacted as in the capture) and from the deviations live analysis finds: per charger its identity
/// from BootNotification, its message counts and its last frames; the latest deviations; and the
/// subscribers of the event stream, who get deltas rather than the whole state.
public final class LiveBoard: Sendable {
    /// Frames kept per charger for the live page's message view, each as compact JSON of at most
    /// `frameBytes`: with 10,000 chargers the board stays within a few tens of MiB.
    public static let liveFramesPerCharger = 16
    /// A frame whose JSON is longer keeps its first this many bytes of message text only.
    public static let frameBytes = 2048
    /// Deviations kept for the feed (the capture and the report have all of them).
    public static let deviationsKept = 500

    struct Charger {
        var vendor: String?
        var model: String?
        var firmware: String?
        var toCSMS = 0
        var toCharger = 0
        /// When its first connection opened, with which subprotocol, and whether one is open now.
        var opened: String?
        var subprotocol: String?
        /// Transport of the last connection: TLS versions of both hops (or plain), compression.
        var transport: String?
        var connected = false
        /// The last frames, oldest first, as compact JSON for the page.
        var frames: [String] = []
    }

    private struct State {
        var chargers: [String: Charger] = [:]
        /// Chargers whose counts changed since the last tick.
        var changed: Set<String> = []
        var deviations: [JSONValue] = []
        var deviationsSeen = 0
        /// Connection records seen: opened, closed, refused upgrades.
        var opens = 0
        var closes = 0
        var rejects = 0
        var subscribers: [UInt64: @Sendable (String) -> Void] = [:]
        var nextSubscriber: UInt64 = 1
        /// Chargers gone longer than the state retention are released; nil: every charger is kept (the
        /// view of a recorded capture, walked through after the fact).
        var departures: Departures?
        /// The latest record time seen, for a close record without one.
        var lastTs: Int64 = 0
    }

    private let state = NIOLockedValueBox(State())
    /// Frames kept per charger.
    public let framesPerCharger: Int

    /// `framesPerCharger`: the live page's 16 by default; a capture walked through after the fact keeps more.
    /// `stateRetentionSeconds`: a charger whose connections have all been closed this long (by the records'
    /// times, as live analysis judges it) leaves the board with its frames; nil keeps every charger.
    public init(framesPerCharger: Int = LiveBoard.liveFramesPerCharger, stateRetentionSeconds: Double? = nil) {
        self.framesPerCharger = max(1, framesPerCharger)
        if let stateRetentionSeconds { self.state.withLockedValue { $0.departures = Departures(retentionSeconds: stateRetentionSeconds) } }
    }

    /// Chargers on the board, connected or not.
    public var chargerCount: Int { self.state.withLockedValue { $0.chargers.count } }

    /// The capture writer's observer: called on its thread with every record as written.
    public func record(_ record: CaptureRecord) {
        guard let kind = record.recordKind else { return }
        let ts = record.ts?.microseconds
        if kind == .reject { self.state.withLockedValue { $0.rejects += 1 } }
        guard let chargePoint = record.chargePoint else { return }
        switch kind {
        case .frame:
            let frame = Self.frameView(record)
            self.state.withLockedValue { state in
                Self.releaseDue(&state, at: ts)
                // In place: a copy of the entry would copy its frames on every append.
                Self.update(&state.chargers[chargePoint, default: Charger()], with: record, frame: frame, keeping: self.framesPerCharger)
                state.changed.insert(chargePoint)
            }
        case .open, .close:
            var data: JSONObject = ["chargePoint": .string(chargePoint), "ref": .string(record.reference)]
            if let connection = record.connection { data["conn"] = .number(String(connection)) }
            if let ts = record.timestamp { data["ts"] = .string(ts) }
            // Named as the event stream documents them: the capture's `chosen` and `by`.
            for (key, name) in [("chosen", "subprotocol"), ("by", "closedBy"), ("code", "code"), ("reason", "reason")] {
                if let value = record.fields[key] { data[name] = value }
            }
            self.state.withLockedValue { state in
                Self.releaseDue(&state, at: ts)
                if kind == .open { state.opens += 1 } else { state.closes += 1 }
                if kind == .open { state.departures?.opened(chargePoint) } else { state.departures?.closed(chargePoint, at: ts ?? state.lastTs) }
                state.chargers[chargePoint, default: Charger()].connected = kind == .open
                if kind == .open {
                    if state.chargers[chargePoint]?.opened == nil { state.chargers[chargePoint]?.opened = record.timestamp }
                    if let subprotocol = record.fields["chosen"]?.stringValue { state.chargers[chargePoint]?.subprotocol = subprotocol }
                    state.chargers[chargePoint]?.transport = Self.transport(record.fields)
                }
            }
            self.publish(kind.rawValue, .object(data))
        default:
            return
        }
    }

    /// Moves the board's time on to `ts` and lets go of the chargers gone longer than the retention, under
    /// the lock the record takes anyway.
    private static func releaseDue(_ state: inout State, at ts: Int64?) {
        guard let ts else { return }
        state.lastTs = max(state.lastTs, ts)
        for chargePoint in state.departures?.due(at: ts) ?? [] {
            state.chargers.removeValue(forKey: chargePoint)
            state.changed.remove(chargePoint)
        }
    }

    private static func update(_ charger: inout Charger, with record: CaptureRecord, frame: String, keeping limit: Int) {
        if record.direction == .toCSMS { charger.toCSMS += 1 } else { charger.toCharger += 1 }
        if record.action == "BootNotification", record.messageType == .call, let payload = record.message?[3] {
            let boot = BootIdentity(bootNotification: payload)
            charger.vendor = boot.vendor
            charger.model = boot.model
            charger.firmware = boot.firmware
        }
        charger.frames.append(frame)
        if charger.frames.count > limit { charger.frames.removeFirst(charger.frames.count - limit) }
    }

    /// A deviation found live (its JSON as in the report).
    public func deviation(_ deviation: JSONValue) {
        self.state.withLockedValue { state in
            state.deviationsSeen += 1
            state.deviations.append(deviation)
            if state.deviations.count > Self.deviationsKept { state.deviations.removeFirst(state.deviations.count - Self.deviationsKept) }
        }
        self.publish("deviation", deviation)
    }

    /// The newest `limit` deviations, newest last, and how many were seen in all.
    func deviations(limit: Int) -> (recent: [JSONValue], seen: Int) {
        self.state.withLockedValue { (Array($0.deviations.suffix(limit)), $0.deviationsSeen) }
    }

    /// Identity and counts of a charger, for the connection table.
    func charger(_ chargePoint: String) -> Charger? {
        self.state.withLockedValue { state in
            guard var charger = state.chargers[chargePoint] else { return nil }
            charger.frames = []
            return charger
        }
    }

    /// What a capture's records add up to, as the live page's figures: pairs opened, closed and still open
    /// at its end, refused upgrades.
    var recordedFigures: JSONObject {
        self.state.withLockedValue { state in
            [
                "active": .int(state.chargers.values.filter(\.connected).count), "accepted": .int(state.opens),
                "refused": .int(state.rejects), "closed": .int(state.closes),
            ]
        }
    }

    /// A page of every charger seen, by charge point id (`filter`: a case-insensitive part of it), as the
    /// connection table shows them; for a capture, where the proxy's own list of open pairs is gone.
    func chargerRows(filter: String?, offset: Int, limit: Int) -> (total: Int, rows: [JSONValue]) {
        self.state.withLockedValue { state in
            let ids = state.chargers.keys.filter { filter == nil || $0.lowercased().contains(filter!) }.sorted()
            let rows: [JSONValue] = ids.dropFirst(offset).prefix(limit).map { id in
                let charger = state.chargers[id]!
                var row: JSONObject = [
                    "chargePoint": .string(id), "toCSMS": .int(charger.toCSMS), "toCharger": .int(charger.toCharger),
                    "subprotocol": charger.subprotocol.map(JSONValue.string) ?? .null, "opened": charger.opened.map(JSONValue.string) ?? .null,
                    "connected": .bool(charger.connected),
                ]
                if let vendor = charger.vendor { row["vendor"] = .string(vendor) }
                if let model = charger.model { row["model"] = .string(model) }
                if let firmware = charger.firmware { row["firmware"] = .string(firmware) }
                if let transport = charger.transport { row["transport"] = .string(transport) }
                return .object(row)
            }
            return (ids.count, rows)
        }
    }

    /// The last frames of a charger, oldest first, as a JSON array.
    func framesJSON(_ chargePoint: String) -> String {
        "[" + self.state.withLockedValue { $0.chargers[chargePoint]?.frames ?? [] }.joined(separator: ",") + "]"
    }

    /// The counts of the chargers that changed since the last call, and clears that set.
    func takeChangedCounts() -> JSONObject {
        self.state.withLockedValue { state in
            var counts = JSONObject()
            for chargePoint in state.changed.sorted() {
                guard let charger = state.chargers[chargePoint] else { continue }
                var entry: JSONObject = ["toCSMS": .int(charger.toCSMS), "toCharger": .int(charger.toCharger)]
                if let vendor = charger.vendor { entry["vendor"] = .string(vendor) }
                if let model = charger.model { entry["model"] = .string(model) }
                if let firmware = charger.firmware { entry["firmware"] = .string(firmware) }
                counts[chargePoint] = .object(entry)
            }
            state.changed.removeAll(keepingCapacity: true)
            return counts
        }
    }

    /// Registers an event-stream subscriber; `send` gets each event as server-sent-event text.
    func subscribe(_ send: @escaping @Sendable (String) -> Void) -> UInt64 {
        self.state.withLockedValue { state in
            defer { state.nextSubscriber += 1 }
            state.subscribers[state.nextSubscriber] = send
            return state.nextSubscriber
        }
    }

    func unsubscribe(_ id: UInt64) {
        _ = self.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
    }

    var subscriberCount: Int { self.state.withLockedValue { $0.subscribers.count } }

    /// Sends an event to every subscriber.
    func publish(_ event: String, _ data: JSONValue) {
        let text = Self.serverSentEvent(event, data)
        let subscribers = self.state.withLockedValue { Array($0.subscribers.values) }
        for send in subscribers { send(text) }
    }

    /// One server-sent event: its name and its data as one line of JSON.
    static func serverSentEvent(_ event: String, _ data: JSONValue) -> String {
        "event: \(event)\ndata: \(JSONWriter.string(data))\n\n"
    }

    /// "charger TLSv1.3, backend TLSv1.2, permessage-deflate", "plain", ... from an open record.
    static func transport(_ fields: JSONObject) -> String {
        var parts: [String] = []
        let tls = fields["tls"]
        let charger = tls?["chargerVersion"]?.stringValue, backend = tls?["upstreamVersion"]?.stringValue
        if charger == nil && backend == nil {
            parts.append("plain")
        } else {
            parts.append("charger \(charger ?? "plain"), backend \(backend ?? "plain")")
        }
        if tls?["clientCertificate"]?.objectValue != nil { parts.append("client certificate") }
        if let compression = fields["compression"]?["extension"]?.stringValue { parts.append(compression) }
        return parts.joined(separator: ", ")
    }

    /// A frame as the message view shows it: its capture record (docs/capture-format.md, so redacted as
    /// written) with the line it is on as `ref`. The writer's line is used as it is; only a record read back
    /// from a file, or one over `frameBytes`, is serialised here, the latter with the first `frameBytes` of
    /// its payload's text as a string and `"truncated": true`.
    static func frameView(_ record: CaptureRecord) -> String {
        let ref = #"{"ref":"# + JSONWriter.string(.string(record.reference))
        if let text = record.text, text.count > 3, text.count <= Self.frameBytes, text.first == UInt8(ascii: "{"), text.last == 0x0A {
            return ref + "," + String(decoding: text.dropFirst().dropLast(), as: UTF8.self)
        }
        var fields = record.fields
        var body = JSONWriter.string(.object(fields))
        if body.utf8.count > Self.frameBytes, let payload = fields["payload"] {
            let whole = payload.stringValue ?? JSONWriter.string(payload)
            fields["payload"] = .string(String(decoding: whole.utf8.prefix(Self.frameBytes), as: UTF8.self))
            fields["truncated"] = true
            body = JSONWriter.string(.object(fields))
        }
        return body == "{}" ? ref + "}" : ref + "," + body.dropFirst()
    }
}
