/// Where the recorder stands; all counts since it started.
public struct CaptureStatistics: Sendable, Hashable {
    public init() {}

    public var recordsWritten = 0
    public var bytesWritten = 0
    public var filesWritten = 0
    /// Records that could not be written (disk full, file error); never silently zero when data was lost.
    public var recordsLost = 0
    public var writeErrors = 0
    public var lastError: String?
    /// Records queued or being written right now.
    public var queueDepth = 0
    public var maximumQueueDepth = 0
    /// Messages and bytes recorded per direction and action (`toCSMS`/`Heartbeat`; non-OCPP frames by opcode).
    public var messages: [MessageKey: MessageCount] = [:]
    /// Time from a frame being seen to its record being written, in microseconds: the largest and the total.
    public var maximumRecordLatencyMicros: Int64 = 0
    public var totalRecordLatencyMicros: Int64 = 0
    public var latencySamples = 0

    /// Distinct direction/action keys kept in `messages`; more than every OCPP version defines, in both
    /// directions, with room for vendors' misspellings.
    public static let maximumMessageKeys = 400
    /// The action of the key that counts messages of every action name beyond `maximumMessageKeys`.
    public static let otherActions = "(other)"

    public struct MessageKey: Sendable, Hashable {
        public var direction: String
        public var action: String

        public init(direction: String, action: String) {
            self.direction = direction
            self.action = action
        }
    }

    public struct MessageCount: Sendable, Hashable {
        public var messages = 0
        public var bytes = 0

        /// Counts one message of `bytes` (one dictionary lookup per recorded message, not two).
        mutating func add(bytes: Int) {
            self.messages += 1
            self.bytes += bytes
        }
    }
}
