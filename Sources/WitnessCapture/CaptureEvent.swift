import OCPPWire

/// Facts about the capture format and the tool that wrote it, written into every header record.
public enum CaptureFormat {
    /// Version of the capture file format; bumped on incompatible changes (see docs/capture-format.md).
    /// 2: every line carries its number and hash-chain link, and a file the proxy closed ends with a seal.
    public static let version = 2
    /// Version of OCPP Witness.
    public static let toolVersion = "0.1.0"
}

/// Anything the recorder writes: a frame, or a connection-level record built as JSON up front.
public enum CaptureEvent: Sendable {
    case frame(FrameEvent)
    /// A connection-level record of `kind` (open, reject, close, error) with its own fields.
    case record(kind: RecordKind, ts: Timestamp, connection: UInt64?, chargePoint: String?, direction: Direction?, fields: JSONObject)

    /// What the writer leaves in its batch where it moved an event out: nothing to release.
    static let hole = CaptureEvent.record(kind: .error, ts: Timestamp(microseconds: 0), connection: nil, chargePoint: nil, direction: nil, fields: JSONObject())

    /// Builds a connection-level record stamped now.
    public static func connection(
        _ kind: RecordKind, connection: UInt64?, chargePoint: String?, direction: Direction? = nil, fields: JSONObject
    ) -> CaptureEvent {
        .record(kind: kind, ts: .now(), connection: connection, chargePoint: chargePoint, direction: direction, fields: fields)
    }
}

/// What goes into the first record of every capture file.
public struct CaptureHeader: Sendable {
    public var backendName: String?
    public var upstream: String?
    public var policy: String?
    public var seed: UInt64?
    /// Anything else worth keeping with the capture (command line, listener address...).
    public var extra: JSONObject

    public init(backendName: String? = nil, upstream: String? = nil, policy: String? = nil, seed: UInt64? = nil, extra: JSONObject = JSONObject()) {
        self.backendName = backendName
        self.upstream = upstream
        self.policy = policy
        self.seed = seed
        self.extra = extra
    }
}
