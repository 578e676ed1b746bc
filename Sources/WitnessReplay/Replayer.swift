import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OCPPWire
import WitnessCapture
import WitnessDiff
import WitnessProxy
import WitnessSim

/// Plays one side of a recorded run against a live peer, records the new run through the proxy, and
/// compares it with the recording.
///
/// `--as charger`: each recorded charger connects to the live backend and sends its recorded CALLs;
/// the backend's CALLs are answered as the charger answered them. `--as csms`: a backend listens,
/// answers each live charger's CALLs as the backend answered them, and sends the backend's recorded
/// CALLs. Message ids are new; ids the live peer assigns (transaction ids) are rewritten into later
/// messages. Either way the traffic passes through a witness proxy that writes an ordinary capture.
public final class Replayer: Sendable {
    public enum Role: Sendable {
        /// Play the chargers against the backend at this address (the charge point id is appended).
        case charger(target: WebSocketURL)
        /// Play the backend for real chargers connecting to this address.
        case csms(listenHost: String, listenPort: Int)
    }

    public enum Pace: Sendable, Hashable {
        /// The recorded timing, sped up by the factor (2 = twice as fast).
        case recorded(speed: Double)
        /// Each message as soon as the one it followed was answered.
        case asFastAsAnswered
    }

    public struct Configuration: Sendable {
        public var role: Role
        public var pace: Pace
        /// Longest wait for an answer, and for the peer's next CALL before carrying on without it.
        public var responseTimeout: Duration
        /// Where the new run's capture goes.
        public var captureDirectory: String
        public var basicAuth: (user: String, password: String)?
        public var upstreamTLS: ProxyConfiguration.UpstreamTLS
        /// `--as csms`: how long to wait for each recorded charger to connect.
        public var connectWait: Duration
        public var diff: DiffOptions

        public init(
            role: Role, pace: Pace = .asFastAsAnswered, responseTimeout: Duration = .seconds(10), captureDirectory: String,
            basicAuth: (user: String, password: String)? = nil, upstreamTLS: ProxyConfiguration.UpstreamTLS = .init(),
            connectWait: Duration = .seconds(60), diff: DiffOptions = DiffOptions()
        ) {
            self.role = role
            self.pace = pace
            self.responseTimeout = responseTimeout
            self.captureDirectory = captureDirectory
            self.basicAuth = basicAuth
            self.upstreamTLS = upstreamTLS
            self.connectWait = connectWait
            self.diff = diff
        }
    }

    /// How far the replay has come, for a progress bar.
    public struct Progress: Sendable {
        public var messagesDone: Int
        public var messagesTotal: Int
    }

    public struct Outcome: Sendable {
        public var sessions: Int
        public var callsSent: Int
        public var callsAnswered: Int
        /// Things that went wrong while replaying (a charger that could not connect, a CALL not answered).
        public var problems: [String]
        public var captureDirectory: String
        public var diff: DiffReport
        /// The address the proxy listened on (`--as csms`).
        public var listenAddress: String?
    }

    public let recorded: [RecordedSession]
    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let counters = NIOLockedValueBox((done: 0, sent: 0, answered: 0, problems: [String]()))

    public init(recorded: [RecordedSession], configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.recorded = recorded
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    private var totalMessages: Int { self.recorded.reduce(0) { $0 + $1.exchanges.count } }

    /// Replays every recorded session, then compares the new capture with the recording.
    /// `listening` is called with the proxy's address once it accepts chargers (`--as csms`).
    public func run(
        progress: @escaping @Sendable (Progress) -> Void = { _ in }, listening: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> Outcome {
        let writer = try CaptureWriter(
            configuration: .init(directory: self.configuration.captureDirectory, fsync: .never),
            header: CaptureHeader(extra: ["replay": .string(self.roleName)])
        )
        let report = { @Sendable [counters = self.counters, total = self.totalMessages] in
            progress(Progress(messagesDone: counters.withLockedValue { $0.done }, messagesTotal: total))
        }
        var listenAddress: String?
        switch self.configuration.role {
        case .charger(let target):
            try await self.replayChargers(target: target, writer: writer, progress: report)
        case .csms(let host, let port):
            listenAddress = try await self.replayBackend(host: host, port: port, writer: writer, progress: report, listening: listening)
        }
        writer.close()
        let replayed = try RecordedCapture.load([self.configuration.captureDirectory])
        let diff = CaptureDiff.compare(self.recorded, replayed, options: self.configuration.diff)
        let counters = self.counters.withLockedValue { $0 }
        return Outcome(
            sessions: self.recorded.count, callsSent: counters.sent, callsAnswered: counters.answered, problems: counters.problems,
            captureDirectory: self.configuration.captureDirectory, diff: diff, listenAddress: listenAddress
        )
    }

    private var roleName: String {
        switch self.configuration.role {
        case .charger: "charger"
        case .csms: "csms"
        }
    }

    private func problem(_ text: String) {
        self.logger.warning("\(text)")
        self.counters.withLockedValue { $0.problems.append(text) }
    }

    private func startProxy(host: String, port: Int, upstream: WebSocketURL, writer: CaptureWriter) async throws -> WitnessProxyServer {
        var proxyLogger = self.logger
        proxyLogger.logLevel = max(self.logger.logLevel, .warning)
        let proxy = try WitnessProxyServer(
            configuration: ProxyConfiguration(
                listenHost: host, listenPort: port, upstream: upstream, upstreamTLS: self.configuration.upstreamTLS
            ),
            recorder: writer, logger: proxyLogger, group: self.group
        )
        _ = try await proxy.start()
        return proxy
    }

    // MARK: Playing the chargers

    private func replayChargers(target: WebSocketURL, writer: CaptureWriter, progress: @escaping @Sendable () -> Void) async throws {
        let proxy = try await self.startProxy(host: "127.0.0.1", port: 0, upstream: target, writer: writer)
        let proxyPort = proxy.localAddress?.port ?? 0
        let start = ContinuousClock.now
        let firstOpened = self.recorded.map(\.opened).min() ?? 0
        // Chargers play side by side; one charger's connections one after the other, as recorded.
        var byCharger: [String: [RecordedSession]] = [:]
        for session in self.recorded { byCharger[session.chargePoint, default: []].append(session) }
        await withTaskGroup(of: Void.self) { group in
            for sessions in byCharger.values {
                group.addTask {
                    for session in sessions.sorted(by: { $0.opened < $1.opened }) {
                        if case .recorded(let speed) = self.configuration.pace {
                            try? await Task.sleep(until: start + Self.scaled(session.opened - firstOpened, speed), clock: .continuous)
                        }
                        await self.playCharger(session, proxyPort: proxyPort, progress: progress)
                    }
                }
            }
        }
        await proxy.shutdown(grace: .seconds(2))
    }

    private func playCharger(_ session: RecordedSession, proxyPort: Int, progress: @escaping @Sendable () -> Void) async {
        let endpoint: OCPPEndpoint
        do {
            let url = try WebSocketURL(parsing: "ws://127.0.0.1:\(proxyPort)/" + ChargerRequestTarget.percentEncodeComponent(session.chargePoint))
            endpoint = try await OCPPClient.connect(
                to: url,
                options: OCPPClientOptions(
                    subprotocols: session.subprotocol.map { [$0] } ?? session.version.map { [$0.subprotocol] } ?? [],
                    basicAuth: self.configuration.basicAuth
                ),
                group: self.group, idPrefix: "replay-"
            )
        } catch {
            self.problem("\(session.chargePoint): could not connect: \(error)")
            self.counters.withLockedValue { $0.done += session.exchanges.count }
            progress()
            return
        }
        let script = Script(session: session, ownDirection: .toCSMS)
        endpoint.onCall { action, payload in
            try await script.answerPeer(action: action, payload: payload, progress: { self.bump(progress) })
        }
        await self.playScript(script, session: session, endpoint: endpoint, progress: progress)
        await script.waitForPeerCalls(timeout: self.configuration.responseTimeout)
        await self.waitUntilAnswersSent(endpoint, script: script)
        if case .recorded(let speed) = self.configuration.pace, let closed = session.closed {
            let last = session.exchanges.last?.time ?? session.opened
            try? await Task.sleep(for: Self.scaled(max(0, closed - last), speed))
        }
        let missing = script.peerCallsMissing
        if missing > 0 {
            self.counters.withLockedValue { $0.done += missing }
            progress()
        }
        await endpoint.close()
    }

    /// Sends `script`'s own CALLs in recorded order, each after the peer CALLs recorded before it.
    private func playScript(_ script: Script, session: RecordedSession, endpoint: OCPPEndpoint, progress: @escaping @Sendable () -> Void) async {
        let start = ContinuousClock.now
        for (position, exchange) in script.ownCalls {
            await script.waitForPeerCalls(before: position, timeout: self.configuration.responseTimeout)
            if case .recorded(let speed) = self.configuration.pace {
                try? await Task.sleep(until: start + Self.scaled(exchange.time - session.opened, speed), clock: .continuous)
            }
            guard endpoint.isActive else {
                self.problem("\(session.chargePoint): connection closed before \(exchange.action) (\(exchange.reference))")
                self.bump(progress)
                continue
            }
            let request = script.rewrite(exchange.request)
            self.counters.withLockedValue { $0.sent += 1 }
            do {
                let answer = try await endpoint.call(exchange.action, request, timeout: self.configuration.responseTimeout)
                self.counters.withLockedValue { $0.answered += 1 }
                if case .result(let payload) = answer, case .result(let recorded) = exchange.answer {
                    script.learnIds(recorded: recorded, live: payload, fields: self.configuration.diff.assignedIdFields)
                }
            } catch {
                self.problem("\(session.chargePoint): \(exchange.action) (\(exchange.reference)): \(error)")
            }
            self.bump(progress)
        }
    }

    private func bump(_ progress: @Sendable () -> Void) {
        self.counters.withLockedValue { $0.done += 1 }
        progress()
    }

    // MARK: Playing the backend

    private func replayBackend(
        host: String, port: Int, writer: CaptureWriter, progress: @escaping @Sendable () -> Void,
        listening: @escaping @Sendable (String) -> Void
    ) async throws -> String {
        let scripts = NIOLockedValueBox([String: Script]())
        for session in self.recorded.reversed() {
            // A charger recorded on several connections is played from its first one.
            scripts.withLockedValue { $0[session.chargePoint] = Script(session: session, ownDirection: .toCharger) }
        }
        let versions = Array(Set(self.recorded.compactMap(\.version))).sorted { $0.rawValue < $1.rawValue }
        let simulator = CSMSSimulator(
            configuration: .init(host: "127.0.0.1", port: 0, versions: versions.isEmpty ? [.v16, .v201, .v21] : versions),
            group: self.group, logger: self.logger
        )
        let done = AsyncStream<String>.makeStream()
        simulator.onConnect { endpoint, chargePoint in
            guard let script = scripts.withLockedValue({ $0[chargePoint] }), !script.claim() else {
                self.problem("\(chargePoint): connected but not in the recording (or already replayed); the simulator's default answers apply")
                return
            }
            endpoint.onCall { action, payload in
                try await script.answerPeer(action: action, payload: payload, progress: { self.bump(progress) })
            }
            Task {
                await self.playScript(script, session: script.session, endpoint: endpoint, progress: progress)
                await script.waitForPeerCalls(timeout: self.configuration.responseTimeout)
                await self.waitUntilAnswersSent(endpoint, script: script)
                // The live charger ends its session; closing the proxy earlier could cut off its last answer.
                await self.waitClosed(endpoint, timeout: self.configuration.responseTimeout)
                let missing = script.peerCallsMissing
                if missing > 0 {
                    self.counters.withLockedValue { $0.done += missing }
                    progress()
                }
                done.continuation.yield(chargePoint)
            }
        }
        let simulatorAddress = try await simulator.start()
        let upstream = try WebSocketURL(parsing: "ws://127.0.0.1:\(simulatorAddress.port ?? 0)")
        let proxy = try await self.startProxy(host: host, port: port, upstream: upstream, writer: writer)
        let address = "ws://\(host):\(proxy.localAddress?.port ?? port)"
        listening(address)
        let expected = Set(self.recorded.map(\.chargePoint))
        var finished = Set<String>()
        let deadline = ContinuousClock.now + self.configuration.connectWait
        let waiter = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            done.continuation.finish()
        }
        for await chargePoint in done.stream {
            finished.insert(chargePoint)
            if finished.isSuperset(of: expected) { break }
        }
        waiter.cancel()
        for missing in expected.subtracting(finished).sorted() {
            self.problem("\(missing): did not connect within \(self.configuration.connectWait)")
        }
        await proxy.shutdown(grace: .seconds(2))
        await simulator.stop()
        return address
    }

    // MARK: Helpers

    /// Waits until the endpoint has written its answer to every peer CALL the script answered: the
    /// script counts a CALL when it picks the answer, the endpoint writes it just after.
    private func waitUntilAnswersSent(_ endpoint: OCPPEndpoint, script: Script) async {
        let deadline = ContinuousClock.now + self.configuration.responseTimeout
        while ContinuousClock.now < deadline {
            let answered = endpoint.transcript.sent.reduce(0) { count, text in
                count + (text.hasPrefix("[3") || text.hasPrefix("[4") ? 1 : 0)
            }
            if answered >= script.peerCallsAnswered {
                // `sent` is updated just before the write is handed to the channel; let that happen.
                try? await Task.sleep(for: .milliseconds(20))
                return
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func waitClosed(_ endpoint: OCPPEndpoint, timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while endpoint.isActive && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    static func scaled(_ microseconds: Int64, _ speed: Double) -> Duration {
        // A damaged capture's gap (years) over a slow speed must not overflow: at most the longest duration.
        .microseconds(Int64(min(Double(max(0, microseconds)) / max(speed, 0.000_001), Double(BoundedDuration.maximum.microseconds))))
    }
}

/// One session's script: the side being played and the answers it gives to the live peer.
final class Script: Sendable {
    let session: RecordedSession
    /// The played side's CALLs, each with its position among all recorded CALLs.
    let ownCalls: [(Int, RecordedExchange)]
    /// How many peer CALLs were recorded before each position.
    private let peerCallsBefore: [Int]
    private let peerCallCount: Int
    private struct State {
        var answers: [String: [RecordedExchange]] = [:]
        var peerCallsSeen = 0
        var idMap: [String: [JSONValue: JSONValue]] = [:]
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var claimed = false
    }
    private let state: NIOLockedValueBox<State>

    init(session: RecordedSession, ownDirection: Direction) {
        self.session = session
        var own: [(Int, RecordedExchange)] = []
        var before: [Int] = []
        var peers = 0
        var answers: [String: [RecordedExchange]] = [:]
        for (position, exchange) in session.exchanges.enumerated() {
            before.append(peers)
            if exchange.direction == ownDirection {
                own.append((position, exchange))
            } else {
                peers += 1
                answers[exchange.action, default: []].append(exchange)
            }
        }
        self.ownCalls = own
        self.peerCallsBefore = before
        self.peerCallCount = peers
        self.state = NIOLockedValueBox(State(answers: answers))
    }

    /// Marks the script taken by a connection; true if it already was.
    func claim() -> Bool {
        self.state.withLockedValue { state in
            defer { state.claimed = true }
            return state.claimed
        }
    }

    var peerCallsMissing: Int { max(0, self.peerCallCount - self.state.withLockedValue { $0.peerCallsSeen }) }

    /// Peer CALLs answered so far (each gets exactly one answer, CALLRESULT or CALLERROR).
    var peerCallsAnswered: Int { self.state.withLockedValue { $0.peerCallsSeen } }

    /// Answers a live peer CALL as the recording did: the next recorded CALL of the same action.
    func answerPeer(action: String, payload: JSONValue, progress: @Sendable () -> Void) async throws -> JSONValue {
        let recorded: RecordedExchange? = self.state.withLockedValue { state in
            state.peerCallsSeen += 1
            guard var queue = state.answers[action], !queue.isEmpty else { return nil }
            let first = queue.removeFirst()
            state.answers[action] = queue
            return first
        }
        self.wakeWaiters()
        guard let recorded else {
            throw CallErrorReply(code: "NotImplemented", description: "the recording has no further \(action) from this side")
        }
        progress()
        switch recorded.answer {
        case .result(let answer):
            return self.rewrite(answer)
        case .error(let code, let description):
            throw CallErrorReply(code: code, description: description)
        case .none:
            throw CallErrorReply(code: "GenericError", description: "the recording holds no answer to this \(action)")
        }
    }

    /// Waits until the peer CALLs recorded before `position` have arrived, or the timeout passes.
    func waitForPeerCalls(before position: Int? = nil, timeout: Duration) async {
        let needed = position.map { self.peerCallsBefore[$0] } ?? self.peerCallCount
        if self.state.withLockedValue({ $0.peerCallsSeen >= needed }) { return }
        let timer = Task {
            // Cancelled once the wait is over: a late wake-up must not release someone else's wait.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self.wakeWaiters(force: true)
        }
        await withCheckedContinuation { continuation in
            let ready = self.state.withLockedValue { state -> Bool in
                if state.peerCallsSeen >= needed { return true }
                state.waiters.append((needed, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
        timer.cancel()
    }

    private func wakeWaiters(force: Bool = false) {
        let ready = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            let seen = state.peerCallsSeen
            let ready = state.waiters.filter { force || $0.0 <= seen }.map(\.1)
            state.waiters.removeAll { force || $0.0 <= seen }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Learns how the live peer renumbered ids it assigns, from a recorded and a live answer.
    func learnIds(recorded: JSONValue, live: JSONValue, fields: Set<String>) {
        var found: [(String, JSONValue, JSONValue)] = []
        Self.pairs(recorded, live, key: nil, fields: fields, into: &found)
        guard !found.isEmpty else { return }
        self.state.withLockedValue { state in
            for (field, old, new) in found where old != new { state.idMap[field, default: [:]][old] = new }
        }
    }

    /// `value` with recorded ids replaced by the live peer's.
    func rewrite(_ value: JSONValue) -> JSONValue {
        let map = self.state.withLockedValue { $0.idMap }
        guard !map.isEmpty else { return value }
        return Self.replace(value, key: nil, map: map)
    }

    private static func pairs(_ a: JSONValue, _ b: JSONValue, key: String?, fields: Set<String>, into found: inout [(String, JSONValue, JSONValue)]) {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            for member in x.members {
                if let other = y[member.key] { pairs(member.value, other, key: member.key, fields: fields, into: &found) }
            }
        case (.array(let x), .array(let y)):
            for index in 0..<min(x.count, y.count) { pairs(x[index], y[index], key: key, fields: fields, into: &found) }
        default:
            if let key, fields.contains(key) { found.append((key, a, b)) }
        }
    }

    private static func replace(_ value: JSONValue, key: String?, map: [String: [JSONValue: JSONValue]]) -> JSONValue {
        switch value {
        case .object(var object):
            for index in object.members.indices {
                object.members[index].value = replace(object.members[index].value, key: object.members[index].key, map: map)
            }
            return .object(object)
        case .array(let items):
            return .array(items.map { replace($0, key: key, map: map) })
        default:
            if let key, let replacement = map[key]?[value] { return replacement }
            return value
        }
    }
}
