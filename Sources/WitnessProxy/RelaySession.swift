import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessChaos
import WitnessPolicy

/// Which end of a pair a relay handler faces.
enum RelaySide: String, Sendable {
    case charger
    case backend

    /// Direction of the frames this side receives.
    var inboundDirection: Direction { self == .charger ? .toCSMS : .toCharger }
    /// Name used in capture records (`by`).
    var recordName: String { self == .charger ? "charger" : "csms" }
}

/// permessage-deflate on a pair, as the charger and the backend negotiated it.
struct RelayCompression {
    enum Mode: String {
        /// Compressed frames are forwarded as they came; the proxy inflates a copy for the record.
        case passThrough
        /// The proxy inflates what each peer sends and forwards it uncompressed (RFC 7692 lets a sender
        /// leave any message uncompressed), so faults may change, drop, inject and reorder messages and
        /// both peers' compression contexts stay valid.
        case decompressed
    }

    var parameters: PerMessageDeflate
    var mode: Mode
}

/// What bounds a pair: how strictly RFC 6455 is held, how long a closing handshake may take, and how many
/// bytes faults may hold back.
struct RelayLimits {
    var strictWebSocket = false
    var closingTimeout: TimeAmount = .seconds(10)
    var heldBytesPerConnection = 1 << 20
    /// Records one connection may have in the recorder's queue above its high watermark and still be read.
    var recorderShare = 1024
    /// Shared by every pair of the proxy.
    var heldBytesTotal = HeldBytesBudget(limit: 256 << 20)
}

/// Bytes held back by delay and bandwidth faults across all pairs, against one limit. Pairs live on several
/// event loops, so the count is locked; it changes only when a fault holds or releases a message.
final class HeldBytesBudget: Sendable {
    let limit: Int
    private let held = NIOLockedValueBox(0)

    init(limit: Int) { self.limit = limit }

    /// Adds (or, negative, releases) bytes; true while the total is within the limit.
    func add(_ bytes: Int) -> Bool {
        self.held.withLockedValue { held in
            held += bytes
            return held <= self.limit
        }
    }

    var bytes: Int { self.held.withLockedValue { $0 } }
}

/// A breach of RFC 6455 by one peer, recorded once per connection and rule.
struct WebSocketViolation: Hashable {
    /// Stable rule id (`websocket.unmaskedFrame`...), as the report lists it.
    var rule: String
    /// The clause it breaks.
    var clause: String
    var detail: String
}

/// State shared by the two relay handlers of one charger/backend pair. Lives on their event loop.
final class RelaySession {
    let id: UInt64
    let chargePoint: String
    let recorder: CaptureWriter?
    let logger: Logger
    let maximumMessageBytes: Int
    let maximumFrameBytes: Int
    let openedNanos = NIODeadline.now().uptimeNanoseconds
    var correlator = CallCorrelator<Void>()
    /// Messages relayed (or injected) towards the backend and towards the charger.
    var messagesToCSMS = 0
    var messagesToCharger = 0
    /// The first close frame seen, and which side sent it.
    var firstClose: (side: RelaySide, code: UInt16?, reason: String)?
    /// Set when the proxy itself closed the pair (shutdown, oversized or broken frames).
    var proxyClose: (code: WebSocketErrorCode, reason: String)?
    /// The pair's way from open to closed.
    var lifecycle = PairClosing()
    /// A socket of the pair went: its close is recorded.
    var finished: Bool { self.lifecycle.isFinished }
    private let onFinish: (RelaySession) -> Void
    /// Fault injection, when the proxy has it.
    let faults: FaultInjection?
    /// The policy in force right now.
    var chaos: ChaosEngine? { self.faults?.engine }
    let proxyStartNanos: UInt64
    /// Outages in force, and how to start one (a policy's outage fault).
    var outages: OutageBoard?
    var startOutage: ((_ chargePoint: String?, _ duration: BoundedDuration, _ mode: OutageMode) -> Void)?

    /// Ids of CALLs the proxy injected, per direction they went; their answers are not forwarded.
    var injectedCalls: [Direction: Set<String>] = [:]
    private var injectCounter = 0

    /// An id no peer uses: the proxy's prefix, the connection and a counter (at most 36 characters).
    func nextInjectedId() -> String {
        self.injectCounter += 1
        return "witness-\(self.id)-\(self.injectCounter)"
    }

    /// permessage-deflate, when the peers negotiated it.
    var compression: RelayCompression?
    let limits: RelayLimits
    /// This connection's records in the recorder's queue.
    let recorderShare = RecorderShare()
    /// Runs while `lifecycle` is closing.
    var closingDeadline: Scheduled<Void>?

    /// The charger's vendor, model and firmware from its BootNotification, for policy matchers.
    var identity: (vendor: String, model: String, firmware: String)?

    /// Whether anything reads the messages (records them, may inject faults, waits for an answer to the
    /// proxy's own CALL, or checks text is UTF-8 under `--strict-websocket`); when nothing does, the relay
    /// only forwards and counts.
    var inspectsMessages: Bool {
        self.recorder != nil || self.faults != nil || !self.injectedCalls.isEmpty || self.limits.strictWebSocket
    }

    init(
        id: UInt64, chargePoint: String, recorder: CaptureWriter?, logger: Logger, maximumMessageBytes: Int,
        maximumFrameBytes: Int, faults: FaultInjection? = nil, proxyStartNanos: UInt64 = 0, limits: RelayLimits = RelayLimits(),
        onFinish: @escaping (RelaySession) -> Void
    ) {
        self.limits = limits
        self.faults = faults
        self.proxyStartNanos = proxyStartNanos
        self.id = id
        self.chargePoint = chargePoint
        self.recorder = recorder
        self.maximumMessageBytes = maximumMessageBytes
        self.maximumFrameBytes = maximumFrameBytes
        self.onFinish = onFinish
        var logger = logger
        logger[metadataKey: "conn"] = "\(id)"
        logger[metadataKey: "chargePoint"] = "\(chargePoint)"
        self.logger = logger
    }

    /// Records an event; false asks the caller to stop reading until the recorder catches up.
    func record(_ event: CaptureEvent) -> Bool {
        self.recorder?.record(event) ?? true
    }

    /// Records a message; false asks the caller to stop reading until the recorder catches up. Behind its
    /// high watermark the recorder pauses only the connections holding more than their share of its queue,
    /// so a charger that floods the proxy cannot stall the recording, and the reading, of the others.
    func record(_ frame: consuming FrameEvent) -> Bool {
        guard let recorder = self.recorder else { return true }
        var frame = frame
        frame.share = self.recorderShare
        self.recorderShare.enqueued()
        switch recorder.admit(.frame(frame)) {
        case .accepted: return true
        case .behind: return self.recorderShare.count <= self.limits.recorderShare
        case .full: return false
        }
    }

    func recordError(_ error: String, detail: String, direction: Direction?, violation: WebSocketViolation? = nil) {
        self.logger.warning("\(error): \(detail)")
        var fields: JSONObject = ["error": .string(error), "detail": .string(detail)]
        if let violation {
            fields["rule"] = .string(violation.rule)
            fields["clause"] = .string(violation.clause)
        }
        _ = self.record(.connection(.error, connection: self.id, chargePoint: self.chargePoint, direction: direction, fields: fields))
    }

    /// Called when either side's channel goes away; records the close once and releases the pair.
    func finish(transportClosedBy side: RelaySide) {
        guard case .finish = self.lifecycle.socketClosed(side) else { return }
        self.closingDeadline?.cancel()
        self.closingDeadline = nil
        let durationMs = Double(NIODeadline.now().uptimeNanoseconds - self.openedNanos) / 1_000_000
        let closedBy = self.proxyClose != nil ? "proxy" : (self.firstClose?.side ?? side).recordName
        var fields = JSONObject([
            "by": .string(closedBy),
            "clean": .bool(self.firstClose != nil || self.proxyClose != nil),
            "transportClosedBy": .string(side.recordName),
            "durationMs": .double((durationMs * 1000).rounded() / 1000),
            "messages": .object(
                JSONObject([
                    "toCSMS": .int(self.messagesToCSMS), "toCharger": .int(self.messagesToCharger),
                ])
            ),
        ])
        if let close = self.proxyClose {
            fields["code"] = .int(Int(UInt16(webSocketErrorCode: close.code)))
            fields["reason"] = .string(close.reason)
        } else if let close = self.firstClose {
            fields["code"] = close.code.map { .int(Int($0)) } ?? .null
            fields["reason"] = .string(close.reason)
        }
        self.logger.info("connection closed by \(closedBy)")
        _ = self.record(.connection(.close, connection: self.id, chargePoint: self.chargePoint, fields: fields))
        self.onFinish(self)
    }
}
