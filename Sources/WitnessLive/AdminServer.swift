import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import OCPPWire
import ServiceLifecycle
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessProxy

/// A small HTTP API for operators: list connections, show and replace the fault policy, disconnect a
/// charger now, and Prometheus metrics. Binds to loopback only; every change needs the bearer token.
public final class AdminServer: AdminEndpoints {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Required as `Authorization: Bearer <token>` on every request that changes something.
        public var token: String
        /// Host names besides loopback addresses and `localhost` that requests may name in `Host` and `Origin`
        /// (`--admin-allow-host`), lower-cased.
        public var allowedHosts: [String]

        public init(host: String, port: Int, token: String, allowedHosts: [String] = []) {
            self.host = host
            self.port = port
            self.token = token
            self.allowedHosts = allowedHosts.map { $0.lowercased() }
        }
    }

    var allowedHosts: [String] { self.configuration.allowedHosts }

    public let configuration: Configuration
    private let proxy: WitnessProxyServer
    private let faults: FaultInjection
    private let metrics: @Sendable () -> String
    private let logger: Logger
    private let group: any EventLoopGroup
    private let channel = NIOLockedValueBoxChannel()
    /// What the live page and its event stream show; nil: no live view (the API alone).
    let board: LiveBoard?
    /// The witness checks' verdicts so far, per pair, from live analysis.
    private let verdicts: (@Sendable () -> JSONValue)?
    private let ticker = NIOLockedValueBox<RepeatedTask?>(nil)
    /// Frames recorded and when, at the last tick: the rate is the difference.
    private let lastTick = NIOLockedValueBox<(frames: Int, at: NIODeadline)?>(nil)

    /// `metrics` renders the Prometheus text; the server adds nothing to it. With a `board`, the server
    /// also serves the live page at `/` and its data under `/api/`.
    public init(
        configuration: Configuration, proxy: WitnessProxyServer, faults: FaultInjection, metrics: @escaping @Sendable () -> String,
        board: LiveBoard? = nil, verdicts: (@Sendable () -> JSONValue)? = nil, logger: Logger, group: any EventLoopGroup
    ) throws {
        try RequestOrigin.requireLoopback(configuration.host)
        guard configuration.token.count >= 16 else { throw ProxyStartupError("the admin token must have at least 16 characters") }
        self.configuration = configuration
        self.proxy = proxy
        self.faults = faults
        self.metrics = metrics
        self.board = board
        self.verdicts = verdicts
        self.logger = logger
        self.group = group
    }

    @discardableResult
    public func start() async throws -> SocketAddress {
        let channel = try await self.bind(host: self.configuration.host, port: self.configuration.port, group: self.group)
        self.channel.set(channel)
        guard let address = channel.localAddress else { throw ProxyStartupError("admin listener has no address") }
        if let board = self.board {
            // Once a second the event stream gets what changed: message counts of the chargers that spoke,
            // and the proxy's and the recorder's figures.
            let task = self.group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                guard board.subscriberCount > 0 else { return }
                board.publish("tick", self.tick(counts: board.takeChangedCounts()))
            }
            self.ticker.withLockedValue { $0 = task }
        }
        return address
    }

    /// Whether `start()` has bound the listener.
    public var isListening: Bool { self.channel.get() != nil }

    public func stop() async {
        self.ticker.withLockedValue { $0?.cancel() }
        try? await self.channel.get()?.close()
    }

    struct Reply {
        var status: HTTPResponseStatus
        var contentType = "application/json"
        var body: String
        /// The reply is the event stream: the handler keeps the connection and writes events as they come.
        var stream = false
    }

    func handle(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: String) -> Reply {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        let mutating = method != .GET && method != .HEAD
        if mutating && !self.authorized(headers) {
            self.logger.warning("admin request refused: missing or wrong token", metadata: ["method": "\(method)", "path": "\(path)"])
            return Self.error(.unauthorized, "this request changes the proxy: send Authorization: Bearer <admin token>")
        }
        let segments = path.split(separator: "/").map(String.init)
        if method == .POST, segments.count == 3, segments[0] == "chargers", segments[2] == "disconnect" {
            return self.disconnect(segments[1], query: query)
        }
        if method == .POST, segments.count == 3, segments[0] == "chargers", segments[2] == "outage" {
            return self.outage(segments[1], query: query)
        }
        if method == .POST, segments == ["outage"] {
            return self.outage(nil, query: query)
        }
        if method == .POST, segments.count == 3, segments[0] == "chargers", segments[2] == "inject" {
            return self.inject(segments[1], body: body)
        }
        if let board = self.board, method == .GET {
            switch segments {
            case []:
                return Reply(status: .ok, contentType: "text/html; charset=utf-8", body: LivePage.html)
            case ["api", "state"]:
                return Reply(status: .ok, body: JSONWriter.string(self.state(board, query: Self.parameters(query))))
            case ["api", "events"]:
                return Reply(status: .ok, contentType: "text/event-stream", body: "", stream: true)
            case ["api", "verdicts"]:
                return Reply(status: .ok, body: JSONWriter.string(["pairs": self.verdicts?() ?? .array([])]))
            case let parts where parts.count == 4 && parts[0] == "api" && parts[1] == "chargers" && parts[3] == "frames":
                let id = ChargerRequestTarget.percentDecodeComponent(parts[2])
                return Reply(status: .ok, body: #"{"chargePoint":"# + JSONWriter.string(.string(id)) + #","frames":"# + board.framesJSON(id) + "}")
            default:
                break
            }
        }
        switch (method, segments) {
        case (.GET, ["metrics"]):
            return Reply(status: .ok, contentType: "text/plain; version=0.0.4", body: self.metrics())
        case (.GET, ["connections"]):
            let list: [JSONValue] = self.proxy.connections.map {
                [
                    "conn": .number(String($0.id)), "chargePoint": .string($0.chargePoint), "remote": .string($0.remote),
                    "subprotocol": $0.subprotocol.map(JSONValue.string) ?? .null, "opened": .string($0.opened.rfc3339),
                ]
            }
            return Reply(status: .ok, body: JSONWriter.string(.array(list)))
        case (.GET, ["policy"]):
            guard let engine = self.faults.engine else { return Reply(status: .ok, body: #"{"policy":null}"#) }
            let rules: [JSONValue] = engine.policy.rules.map { ["name": .string($0.name), "fault": .string($0.fault.kind)] }
            return Reply(
                status: .ok,
                body: JSONWriter.string([
                    "source": .string(engine.policy.source), "seed": .number(String(engine.policy.seed)), "rules": .array(rules),
                    "yaml": self.faults.policyText.map(JSONValue.string) ?? .null,
                ])
            )
        case (.PUT, ["policy"]):
            do {
                try self.faults.replace(yaml: body, source: "admin API")
                self.logger.notice("fault policy replaced through the admin API")
                return Reply(status: .ok, body: #"{"replaced":true}"#)
            } catch let errors as PolicyErrors {
                return Self.error(.badRequest, "invalid policy; the previous one stays in force", details: errors.errors.map(\.description))
            } catch {
                return Self.error(.badRequest, "invalid policy: \(error)")
            }
        case (.DELETE, ["policy"]):
            self.faults.replace(with: nil)
            self.logger.notice("fault policy removed through the admin API")
            return Reply(status: .ok, body: #"{"removed":true}"#)
        default:
            return Self.error(.notFound, "no such endpoint: \(method) \(path); see docs/admin-api.md")
        }
    }

    /// The live page's first load: a page of the connection table (`offset`, `limit`, `filter` on the
    /// charge point id), the latest deviations, and the figures of a tick.
    private func state(_ board: LiveBoard, query: [String: String]) -> JSONValue {
        let filter = query["filter"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
        let all = self.proxy.connections.filter { filter == nil || $0.chargePoint.lowercased().contains(filter!) }
        let offset = max(0, query["offset"].flatMap(Int.init) ?? 0)
        let limit = min(max(1, query["limit"].flatMap(Int.init) ?? 200), 1000)
        let page: [JSONValue] = all.dropFirst(offset).prefix(limit).map { info in
            var row: JSONObject = [
                "conn": .number(String(info.id)), "chargePoint": .string(info.chargePoint), "remote": .string(info.remote),
                "subprotocol": info.subprotocol.map(JSONValue.string) ?? .null, "opened": .string(info.opened.rfc3339),
            ]
            if let charger = board.charger(info.chargePoint) {
                row["toCSMS"] = .int(charger.toCSMS)
                row["toCharger"] = .int(charger.toCharger)
                if let vendor = charger.vendor { row["vendor"] = .string(vendor) }
                if let model = charger.model { row["model"] = .string(model) }
                if let firmware = charger.firmware { row["firmware"] = .string(firmware) }
                if let transport = charger.transport { row["transport"] = .string(transport) }
            }
            return .object(row)
        }
        let deviations = board.deviations(limit: 200)
        return [
            "connections": ["total": .int(all.count), "offset": .int(offset), "rows": .array(page)],
            "deviations": ["seen": .int(deviations.seen), "recent": .array(deviations.recent)],
            "figures": self.tick(counts: JSONObject())["figures"] ?? .null,
        ]
    }

    /// An event-stream tick: the counts that changed, and the proxy's and the recorder's figures.
    private func tick(counts: JSONObject) -> JSONValue {
        let stats = self.proxy.statistics
        var figures: JSONObject = [
            "active": .int(stats.active), "accepted": .int(stats.accepted), "refused": .int(stats.refused), "closed": .int(stats.closed),
        ]
        if let recorder = self.proxy.recorder {
            let capture = recorder.statistics
            figures["recorderQueue"] = .int(capture.queueDepth)
            figures["recordsWritten"] = .int(capture.recordsWritten)
            figures["recordsLost"] = .int(capture.recordsLost)
            let frames = capture.messages.values.reduce(0) { $0 + $1.messages }
            let now = NIODeadline.now()
            let previous = self.lastTick.withLockedValue { last in
                defer { last = (frames, now) }
                return last
            }
            if let previous, now > previous.at {
                let seconds = Double((now - previous.at).nanoseconds) / 1e9
                figures["messagesPerSecond"] = .int(Int((Double(frames - previous.frames) / seconds).rounded()))
            }
        }
        return ["counts": .object(counts), "figures": .object(figures)]
    }

    private func disconnect(_ chargePoint: String, query: String) -> Reply {
        let parameters = Self.parameters(query)
        let code = parameters["code"].flatMap(UInt16.init) ?? 1001
        guard (1000...4999).contains(code) else { return Self.error(.badRequest, "code must be a WebSocket close code from 1000 to 4999") }
        let id = ChargerRequestTarget.percentDecodeComponent(chargePoint)
        let count = self.proxy.disconnect(chargePoint: id, code: code, reason: parameters["reason"] ?? "disconnected by operator")
        guard count > 0 else { return Self.error(.notFound, "no open connection for charge point '\(id)'") }
        self.logger.notice("charger disconnected through the admin API", metadata: ["chargePoint": "\(id)", "code": "\(code)"])
        return Reply(status: .ok, body: JSONWriter.string(["disconnected": .int(count)]))
    }

    private func outage(_ chargePoint: String?, query: String) -> Reply {
        let parameters = Self.parameters(query)
        let duration: BoundedDuration
        do {
            guard let parsed = try parameters["seconds"].flatMap({ try BoundedDuration.parse($0, field: "seconds", allowsZero: false) }) else {
                return Self.error(.badRequest, "outage needs ?seconds=N, a number of seconds above 0 and at most 30 days")
            }
            duration = parsed
        } catch {
            return Self.error(.badRequest, "\(error)")
        }
        guard let mode = OutageMode(rawValue: parameters["mode"] ?? "refuse") else {
            return Self.error(.badRequest, "mode must be refuse or blackhole")
        }
        self.proxy.startOutage(chargePoint: chargePoint.map(ChargerRequestTarget.percentDecodeComponent), duration: duration, mode: mode)
        return Reply(status: .ok, body: JSONWriter.string(["outage": .double(duration.seconds), "mode": .string(mode.rawValue)]))
    }

    private func inject(_ chargePoint: String, body: String) -> Reply {
        guard let request = try? JSONParser.parse(body), let action = request["action"]?.stringValue else {
            return Self.error(.badRequest, #"body must be JSON: {"action": "Reset", "payload": {...}, "to": "charger"|"csms"}"#)
        }
        let payload = request["payload"] ?? .object(JSONObject())
        guard case .object = payload else { return Self.error(.badRequest, "payload must be a JSON object") }
        let to = request["to"]?.stringValue ?? "charger"
        guard to == "charger" || to == "csms" else { return Self.error(.badRequest, "to must be charger or csms") }
        let id = ChargerRequestTarget.percentDecodeComponent(chargePoint)
        let count = self.proxy.inject(chargePoint: id, action: action, payload: payload, towardsCharger: to == "charger")
        guard count > 0 else { return Self.error(.notFound, "no open connection for charge point '\(id)'") }
        self.logger.notice("CALL injected through the admin API", metadata: ["chargePoint": "\(id)", "action": "\(action)", "to": "\(to)"])
        return Reply(status: .ok, body: JSONWriter.string(["injected": .int(count)]))
    }

    /// Constant-time comparison, so the token cannot be guessed from response times.
    private func authorized(_ headers: HTTPHeaders) -> Bool {
        guard let value = headers.first(name: "Authorization"), value.hasPrefix("Bearer ") else { return false }
        let given = Array(value.dropFirst(7).utf8)
        let expected = Array(self.configuration.token.utf8)
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in 0..<expected.count { difference |= expected[index] ^ (index < given.count ? given[index] : 0) }
        return difference == 0
    }

    static func parameters(_ query: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { ChargerRequestTarget.percentDecodeComponent(String($0)) }
            if let key = parts.first { result[key] = parts.count > 1 ? parts[1] : "" }
        }
        return result
    }

    static func error(_ status: HTTPResponseStatus, _ message: String, details: [String] = []) -> Reply {
        var object: JSONObject = ["error": .string(message)]
        if !details.isEmpty { object["details"] = .array(details.map(JSONValue.string)) }
        return Reply(status: status, body: JSONWriter.string(.object(object)))
    }
}

extension AdminServer: Service {
    /// Runs the admin API as a service: listens (unless `start()` has already) until graceful shutdown or
    /// cancellation, then stops listening.
    public func run() async throws {
        if !self.isListening { try await self.start() }
        try? await gracefulShutdown()
        await self.stop()
    }
}
