import OCPPSchema
import OCPPWire
import WitnessCapture

/// What the analyzer keeps about one open connection.
final class ConnectionState {
    let chargePoint: String
    let version: OCPPVersion
    let backend: String
    var identity: ChargerIdentity?
    /// The connection's outstanding CALLs, on the capture's clock (`Timestamp.nanosecondsSince1970`). Unbounded: a CALL leaves
    /// when it is answered or times out.
    var correlator = CallCorrelator<CallInCapture>(maximumOutstanding: .max)
    /// Ids of CALLs reported as timed out, so a late answer is not reported again as unknown.
    var expired = PerDirection<Set<String>>([])
    var messages = PerDirection(0)
    var latencies: [String: LatencyHistogram] = [:]
    var deviations: [String: Int] = [:]
    var severities: [Severity: Int] = [:]
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
}
