import OCPPSchema
import OCPPWire
import WitnessModel
import WitnessCapture

/// What the analyzer keeps about one open connection.
final class ConnectionState {
    let chargePoint: String
    let version: OCPPVersion
    let backend: String
    var identity: ChargerIdentity?
    /// The policy the proxy run that recorded the connection applied (its header's `policy`; empty: none), and
    /// when the connection was first seen: a firmware comparison needs both (docs/reports.md, "Firmware regressions").
    var policy = ""
    var openedAt: Int64 = 0
    /// The connection's outstanding CALLs, on the capture's clock (`Timestamp.nanosecondsSince1970`). Unbounded: a CALL leaves
    /// when it is answered or times out.
    var correlator = CallCorrelator<CallInCapture>(maximumOutstanding: .max)
    /// Ids of CALLs reported as timed out, so a late answer is not reported again as unknown.
    var expired = PerDirection<Set<String>>([])
    /// A client certificate whose CN is not the charge point id, waiting for the serial number the
    /// BootNotification gives (OCPP puts the serial number in the CN).
    var pendingCertificate: PendingCertificate?

    struct PendingCertificate {
        var commonName: String?
        var ts: String?
        var ref: String
    }
    /// 1.6 StartTransaction CALLs that timed out, by message id (the first 64 not yet answered): a late answer still assigns
    /// the transaction id the charger goes on with, so its messages are not all unknown afterwards.
    var expiredStarts: [String: TransactionTracker.PendingStart] = [:]
    /// Identifiers authorized online on this connection (an Authorize answered Accepted, a remote start), at most
    /// `authorizedKept`: a transaction started with one of them was not started offline and queued.
    var authorizedTags: Set<String> = []
    static let authorizedKept = 16

    func authorized(_ tag: String?) {
        guard let tag = tag.flatMap(TransactionTracker.tag), self.authorizedTags.count < Self.authorizedKept else { return }
        self.authorizedTags.insert(tag)
    }

    func wasAuthorized(_ tag: String?) -> Bool { tag.flatMap(TransactionTracker.tag).map(self.authorizedTags.contains) ?? false }
    /// Answers a finding already accounts for, by the CALL's direction and id, with how many are due: a CALL that
    /// reused an outstanding id (its CALL was reported as `rpc.duplicateMessageId`, the first answer settles the
    /// second CALL and the second answer finds none) or a CALL whose id was not a string (reported as
    /// `rpc.malformed`; its answer echoes the id). One cause, one finding. At most `maximumExcused` per direction.
    var excusedAnswers = PerDirection<[String: Int]>([:])
    static let maximumExcused = 64

    /// Lets one more answer to `id` (a CALL travelling `direction`) pass without a finding.
    func excuseAnswer(to id: String, callDirection direction: Direction) {
        guard self.excusedAnswers[direction].count < Self.maximumExcused || self.excusedAnswers[direction][id] != nil else { return }
        self.excusedAnswers[direction][id, default: 0] += 1
    }

    /// Whether an answer to `id` was accounted for already; it is then used up.
    func takeExcusedAnswer(to id: String, callDirection direction: Direction) -> Bool {
        guard let count = self.excusedAnswers[direction][id] else { return false }
        self.excusedAnswers[direction][id] = count > 1 ? count - 1 : nil
        return true
    }
    var messages = PerDirection(0)
    var latencies: [String: LatencyHistogram] = [:]
    var deviations: [String: Int] = [:]
    var severities: [Severity: Int] = [:]
    /// Findings per side responsible (those on the fault's side count in no severity).
    var sides: [Deviation.Side: Int] = [:]
    /// Findings on the charger's side per rule (a firmware comparison looks at these alone).
    var chargerRules: [String: Int] = [:]
    var calls: [String: Int] = [:]
    /// OCPP security profile of the connection (0: no credentials; 1: Basic over ws; 2: Basic over TLS; 3: client certificate).
    var securityProfile: Int?

    init(chargePoint: String, version: OCPPVersion, backend: String) {
        self.chargePoint = chargePoint
        self.version = version
        self.backend = backend
    }
}

/// One value for each direction, without hashing the direction on every frame.
struct PerDirection<Value> {
    var toCSMS: Value
    var toCharger: Value

    init(_ value: Value) {
        self.toCSMS = value
        self.toCharger = value
    }

    subscript(direction: Direction) -> Value {
        get { direction == .toCSMS ? self.toCSMS : self.toCharger }
        _modify {
            switch direction {
            case .toCSMS: yield &self.toCSMS
            case .toCharger: yield &self.toCharger
            }
        }
    }
}

/// What the analyzer keeps with each outstanding CALL.
struct CallInCapture {
    var stamp: CaptureRecord.Stamp
    /// Where the CALL is in the capture; made into a reference only if it times out.
    var file: String
    var line: Int
    /// The CALL passed schema validation (a NotImplemented answer to an invalid CALL is no deviation).
    var valid: Bool
    /// Its payload, when a witness check looks into the CALL of an answer (`call:` pointers).
    var payload: JSONValue?
    /// A 1.6 StartTransaction's reading and time, for the transaction its answer opens.
    var start: TransactionTracker.PendingStart?
    /// The connector the CALL is about (its payload's, or its transaction's), which its answer is about too.
    var connector: Connector? = nil
}
