import NIOCore
import OCPPWire
import WitnessCapture

/// Turns captured packets into capture records: reassembles TCP, finds WebSocket upgrades, parses
/// frames (masking, fragmentation) and records every message as the proxy would have.
///
/// Used by `import` (packets from a file) and `sniff` (packets from an interface). What cannot be
/// decoded — TLS, plain HTTP, connections that began before the capture, data lost in gaps — is
/// recorded as an `error` record naming the connection and counted; decoding carries on.
public final class TrafficDecoder {
    public struct Statistics: Sendable, Hashable {
        public var packets = 0
        public var tcpSegments = 0
        public var skipped: [PacketSkip: Int] = [:]
        public var connections = 0
        public var webSocketConnections = 0
        public var rejectedUpgrades = 0
        public var messages = 0
        public var retransmittedBytes = 0
        public var outOfOrderSegments = 0
        /// `error` records written, by their `error` value.
        public var errors: [String: Int] = [:]
    }

    public private(set) var statistics = Statistics()
    private let emit: (CaptureEvent) -> Void
    private let redactor: Redactor
    private let maximumMessageBytes: Int
    private var connections: [FlowKey: Connection] = [:]
    private var nextConnectionID: UInt64 = 1

    /// - Parameters:
    ///   - redactSecrets: redact the Authorization header in `open` records (payloads are redacted by the writer).
    ///   - emit: receives every record, in packet order.
    public init(redactSecrets: Bool = true, maximumMessageBytes: Int = 16 << 20, emit: @escaping (CaptureEvent) -> Void) {
        self.redactor = Redactor(enabled: redactSecrets)
        self.maximumMessageBytes = maximumMessageBytes
        self.emit = emit
    }

    public func consume(_ packet: CapturedPacket, linkType: Int32) {
        self.statistics.packets += 1
        switch PacketDecoder.decode(packet.bytes, linkType: linkType) {
        case .failure(let skip):
            self.statistics.skipped[skip, default: 0] += 1
        case .success(let segment):
            self.statistics.tcpSegments += 1
            self.consume(segment, time: packet.microseconds)
        }
    }

    /// Ends decoding: connections with bytes missing behind a gap get an error record. Connections
    /// still open stay open (the capture simply ended), as in a proxy capture cut by a stop.
    public func finish() {
        for connection in self.connections.values.sorted(by: { $0.id < $1.id }) {
            for direction in [Direction.toCSMS, .toCharger] where connection.half(direction).hasGap {
                self.error(
                    connection, "missingSegments", direction: direction, time: connection.lastTime,
                    detail: "the capture ends with bytes missing from the \(connection.describe(direction)) stream; "
                        + "what follows the gap was not decoded"
                )
            }
            self.collectCounters(connection)
        }
        self.connections.removeAll()
    }

    // MARK: TCP

    private func consume(_ segment: TCPSegment, time: Int64) {
        let key = FlowKey(segment.source, segment.destination)
        var connection = self.connections[key]
        let isOpeningSYN = segment.flags.contains(.syn) && !segment.flags.contains(.ack)
        if let existing = connection, isOpeningSYN, existing.client == segment.source,
            existing.toServer.nextSequence != segment.sequence &+ 1
        {
            // The same ports again: a new connection after the old one ended.
            self.end(existing, time: time)
            connection = nil
        }
        if connection == nil {
            guard let created = self.start(segment, time: time) else { return }
            connection = created
        }
        guard let connection else { return }
        connection.lastTime = time
        let direction: Direction = segment.source == connection.client ? .toCSMS : .toCharger
        if segment.flags.contains(.syn) {
            connection.withHalf(direction) { $0.nextSequence = segment.sequence &+ 1 }
        }
        if !segment.payload.isEmpty {
            var chunks: [ArraySlice<UInt8>] = []
            connection.withHalf(direction) { half in
                half.accept(sequence: segment.sequence, payload: segment.payload) { chunks.append($0) }
                if half.gapIsHopeless {
                    let lost = half.skipGap { chunks.append($0) }
                    connection.lostBytes[direction] = lost
                }
            }
            if let lost = connection.lostBytes.removeValue(forKey: direction), lost > 0 {
                self.error(
                    connection, "missingSegments", direction: direction, time: time,
                    detail: "\(lost) bytes of the \(connection.describe(direction)) stream are not in the capture; "
                        + "stopped decoding this connection"
                )
                connection.phase = .undecodable
            }
            for chunk in chunks { self.deliver(chunk, direction: direction, connection: connection, time: time) }
        }
        if segment.flags.contains(.fin) {
            connection.withHalf(direction) { $0.finSequence = segment.sequence &+ UInt32(segment.payload.count) }
            if connection.transportClosedBy == nil { connection.transportClosedBy = direction }
        }
        if segment.flags.contains(.rst) {
            if connection.transportClosedBy == nil { connection.transportClosedBy = direction }
            self.end(connection, time: time)
            return
        }
        if connection.toServer.isFinished && connection.toClient.isFinished {
            self.end(connection, time: time)
        }
    }

    private func start(_ segment: TCPSegment, time: Int64) -> Connection? {
        let synFromClient = segment.flags.contains(.syn) && !segment.flags.contains(.ack)
        let synAckFromServer = segment.flags.contains(.syn) && segment.flags.contains(.ack)
        let fromClient: Bool
        var beganBeforeCapture = false
        if synFromClient || synAckFromServer {
            fromClient = synFromClient
        } else if !segment.payload.isEmpty {
            let looksLikeRequest = segment.payload.starts(with: Array("GET ".utf8))
            // Without a request to tell, the side with the higher (ephemeral) port is taken as the client.
            fromClient = looksLikeRequest || segment.source.port > segment.destination.port
            beganBeforeCapture = !looksLikeRequest
        } else {
            return nil  // a bare ACK or FIN of a connection we never saw
        }
        let connection = Connection(
            id: self.nextConnectionID, client: fromClient ? segment.source : segment.destination,
            server: fromClient ? segment.destination : segment.source, started: time
        )
        self.statistics.connections += 1
        self.nextConnectionID += 1
        self.connections[FlowKey(connection.client, connection.server)] = connection
        if beganBeforeCapture {
            self.undecodable(
                connection, "midStream", fromClient ? .toCSMS : .toCharger, time,
                "connection \(connection.client) → \(connection.server) began before the capture; "
                    + "without its WebSocket upgrade its frames cannot be decoded"
            )
        }
        return connection
    }

    private func end(_ connection: Connection, time: Int64) {
        self.connections.removeValue(forKey: FlowKey(connection.client, connection.server))
        self.collectCounters(connection)
        guard connection.phase == .webSocket else { return }
        let closedBy = connection.firstClose?.direction ?? connection.transportClosedBy ?? .toCSMS
        var fields = JSONObject([
            "by": .string(closedBy == .toCSMS ? "charger" : "csms"),
            "clean": .bool(connection.firstClose != nil),
            "transportClosedBy": .string((connection.transportClosedBy ?? .toCSMS) == .toCSMS ? "charger" : "csms"),
            "durationMs": .double(Double(time - connection.opened) / 1000),
            "messages": .object(
                JSONObject([
                    "toCSMS": .int(connection.messages[.toCSMS] ?? 0), "toCharger": .int(connection.messages[.toCharger] ?? 0),
                ])
            ),
        ])
        if let close = connection.firstClose {
            fields["code"] = close.code.map { .int(Int($0)) } ?? .null
            fields["reason"] = .string(close.reason)
        }
        connection.phase = .ended
        self.emit(
            .record(kind: .close, ts: Timestamp(microseconds: time), connection: connection.id, chargePoint: connection.chargePoint, direction: nil, fields: fields)
        )
    }

    private func collectCounters(_ connection: Connection) {
        guard !connection.countersCollected else { return }
        connection.countersCollected = true
        self.statistics.retransmittedBytes += connection.toServer.retransmittedBytes + connection.toClient.retransmittedBytes
        self.statistics.outOfOrderSegments += connection.toServer.outOfOrderSegments + connection.toClient.outOfOrderSegments
    }

    // MARK: HTTP and WebSocket

    private func deliver(_ bytes: ArraySlice<UInt8>, direction: Direction, connection: Connection, time: Int64) {
        switch connection.phase {
        case .undecodable, .rejected, .ended:
            return
        case .request, .awaitingResponse, .webSocket:
            break
        }
        connection.buffers[direction, default: ByteStream()].append(bytes)
        self.advance(connection, time: time)
    }

    private func advance(_ connection: Connection, time: Int64) {
        while true {
            switch connection.phase {
            case .request:
                guard let head = self.httpHead(connection, .toCSMS, time: time) else { return }
                guard let request = HTTPHead.parseRequest(head) else {
                    self.undecodable(connection, "notHTTP", .toCSMS, time, "the client's first bytes are not an HTTP request")
                    return
                }
                guard request.isWebSocketUpgrade else {
                    self.undecodable(
                        connection, "notWebSocket", .toCSMS, time, "\(request.method) \(request.target) is not a WebSocket upgrade"
                    )
                    return
                }
                connection.request = request
                connection.phase = .awaitingResponse
            case .awaitingResponse:
                guard let head = self.httpHead(connection, .toCharger, time: time) else { return }
                guard let response = HTTPHead.parseResponse(head), let request = connection.request else {
                    self.undecodable(connection, "notHTTP", .toCharger, time, "the server's answer to the upgrade is not HTTP")
                    return
                }
                if response.status == 101 {
                    if let answer = response.header("sec-websocket-extensions") {
                        let offered = request.headers.filter { $0.0 == "sec-websocket-extensions" }.map(\.1)
                        switch PerMessageDeflate.accepted(answer, offered: offered) {
                        case .success(let parameters):
                            connection.deflate = parameters
                        case .failure(let problem):
                            self.undecodable(connection, "extensionNotAgreed", .toCharger, time, problem.description)
                            return
                        }
                    }
                    self.recordOpen(connection, request: request, response: response, time: time)
                    connection.phase = .webSocket
                } else {
                    self.recordReject(connection, request: request, response: response, time: time)
                    connection.phase = .rejected
                    return
                }
            case .webSocket:
                var progressed = false
                for direction in [Direction.toCSMS, .toCharger] {
                    while connection.phase == .webSocket, self.nextFrame(connection, direction, time: time) { progressed = true }
                }
                if !progressed { return }
            case .undecodable, .rejected, .ended:
                return
            }
        }
    }

    /// The HTTP head (up to the blank line) at the front of `direction`'s bytes, once complete.
    private func httpHead(_ connection: Connection, _ direction: Direction, time: Int64) -> [UInt8]? {
        guard var stream = connection.buffers[direction], !stream.isEmpty else { return nil }
        if stream.first == 0x16 {
            self.undecodable(
                connection, "tlsTraffic", direction, time,
                "connection \(connection.client) → \(connection.server) is TLS; only plain ws:// traffic can be decoded "
                    + "(put the proxy in the path to witness wss://)"
            )
            return nil
        }
        guard let head = stream.takeHTTPHead() else {
            if stream.count > 64 * 1024 {
                self.undecodable(connection, "notHTTP", direction, time, "no end of HTTP headers within 64 KiB")
            }
            return nil
        }
        connection.buffers[direction] = stream
        return head
    }

    /// Parses one WebSocket frame from `direction`'s bytes; false when more bytes are needed.
    private func nextFrame(_ connection: Connection, _ direction: Direction, time: Int64) -> Bool {
        guard var stream = connection.buffers[direction] else { return false }
        let result = stream.takeFrame(maximumPayload: self.maximumMessageBytes, deflate: connection.deflate != nil)
        connection.buffers[direction] = stream
        switch result {
        case .needMore:
            return false
        case .invalid(let reason):
            self.undecodable(connection, "protocolError", direction, time, reason)
            return false
        case .frame(let fin, let opcode, let payload, let compressed):
            self.frame(connection, direction, fin: fin, opcode: opcode, payload: payload, compressed: compressed, time: time)
            return connection.phase == .webSocket
        }
    }

    private func frame(
        _ connection: Connection, _ direction: Direction, fin: Bool, opcode: UInt8, payload: [UInt8], compressed: Bool, time: Int64
    ) {
        let name: FrameOpcode
        switch opcode {
        case 0x0:
            guard var message = connection.partial[direction] else {
                self.undecodable(connection, "protocolError", direction, time, "continuation frame without a message to continue")
                return
            }
            message.data += payload
            message.fragments += 1
            guard message.data.count <= self.maximumMessageBytes else {
                self.undecodable(connection, "messageTooLarge", direction, time, "message over \(self.maximumMessageBytes) bytes")
                return
            }
            if !fin {
                connection.partial[direction] = message
                return
            }
            connection.partial[direction] = nil
            self.message(
                connection, direction, opcode: message.opcode, payload: message.data, fragments: message.fragments, compressed: message.compressed,
                time: time
            )
            return
        case 0x1: name = .text
        case 0x2: name = .binary
        case 0x8: name = .close
        case 0x9: name = .ping
        case 0xA: name = .pong
        default:
            self.undecodable(connection, "protocolError", direction, time, "reserved WebSocket opcode \(opcode)")
            return
        }
        if name == .text || name == .binary {
            if !fin {
                connection.partial[direction] = PartialMessage(opcode: name, data: payload, fragments: 1, compressed: compressed)
                return
            }
        } else if name == .close, connection.firstClose == nil {
            let code = payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil
            let reason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
            connection.firstClose = (direction, code, reason)
        }
        self.message(connection, direction, opcode: name, payload: payload, fragments: 1, compressed: compressed, time: time)
    }

    private func message(
        _ connection: Connection, _ direction: Direction, opcode: FrameOpcode, payload: [UInt8], fragments: Int, compressed: Bool = false,
        time: Int64
    ) {
        var buffer = ByteBuffer(bytes: payload)
        if compressed, let deflate = connection.deflate {
            // Each direction is one deflate stream, read in order, as the receiving peer read it.
            if connection.inflaters[direction] == nil {
                connection.inflaters[direction] = try? MessageInflater(contextTakeover: deflate.contextTakeover(direction))
            }
            switch connection.inflaters[direction]?.inflate(buffer, maximumBytes: self.maximumMessageBytes) ?? .failure(.corrupt) {
            case .success(let text):
                buffer = text
            case .failure(.tooLarge):
                self.undecodable(connection, "messageTooLarge", direction, time, "a compressed message inflates to over \(self.maximumMessageBytes) bytes")
                return
            case .failure(.corrupt):
                // What follows in this direction depends on what this message would have put in the window.
                self.undecodable(
                    connection, "inflateFailed", direction, time,
                    "a compressed message (\(payload.count) bytes) does not inflate; the rest of this connection cannot be read"
                )
                return
            }
        }
        var event = FrameEvent(
            ts: Timestamp(microseconds: time), connection: connection.id, chargePoint: connection.chargePoint,
            direction: direction, opcode: opcode, payload: buffer, fragments: fragments
        )
        event.compressed = compressed
        if opcode == .text || opcode == .binary {
            connection.messages[direction, default: 0] += 1
            self.statistics.messages += 1
        }
        if opcode == .text {
            switch OCPPEnvelope.parse(buffer) {
            case .success(let envelope):
                event.envelope = envelope
                event.note(connection.correlator.observe(envelope, direction: direction, atNanos: Timestamp(microseconds: time).nanosecondsSince1970))
            case .failure(let malformed):
                event.malformed = malformed
            }
        }
        self.emit(.frame(event))
    }

    // MARK: Records

    private func recordOpen(_ connection: Connection, request: HTTPHead, response: HTTPHead, time: Int64) {
        let target = ChargerRequestTarget(uri: request.target)
        connection.chargePoint = target.chargePointId
        connection.opened = time
        self.statistics.webSocketConnections += 1
        let chosen = response.header("sec-websocket-protocol")
        let version = chosen.flatMap(OCPPVersion.init(subprotocol:))
        let host = request.header("host") ?? connection.server.description
        let fields = JSONObject([
            "path": .string(target.path),
            "query": target.query.map(JSONValue.string) ?? .null,
            "remote": .string(connection.client.description),
            "upstream": .string("ws://" + host + request.target),
            "offered": .array(request.subprotocols.map(JSONValue.string)),
            "chosen": chosen.map(JSONValue.string) ?? .null,
            "compression": connection.deflate.map { .object(JSONObject(["extension": .string($0.header), "mode": "captured"])) } ?? .null,
            "version": version.map { .string($0.rawValue) } ?? .null,
            "headers": .object(self.redactor.recordedHeaders(request.headers)),
            "tls": .object(JSONObject(["charger": false, "chargerClientCertificate": false, "upstream": false])),
            "server": .string(connection.server.description),
            "source": "pcap",
        ])
        self.emit(
            .record(kind: .open, ts: Timestamp(microseconds: time), connection: connection.id, chargePoint: connection.chargePoint, direction: nil, fields: fields)
        )
    }

    private func recordReject(_ connection: Connection, request: HTTPHead, response: HTTPHead, time: Int64) {
        let target = ChargerRequestTarget(uri: request.target)
        connection.chargePoint = target.chargePointId
        self.statistics.rejectedUpgrades += 1
        let fields = JSONObject([
            "status": .int(response.status),
            "cause": "upstreamStatus",
            "detail": .string("the server answered the upgrade with \(response.status) \(response.reason)"),
            "path": .string(target.path),
            "remote": .string(connection.client.description),
            "offered": .array(request.subprotocols.map(JSONValue.string)),
            "headers": .object(self.redactor.recordedHeaders(request.headers)),
            "server": .string(connection.server.description),
            "source": "pcap",
        ])
        self.emit(
            .record(kind: .reject, ts: Timestamp(microseconds: time), connection: connection.id, chargePoint: connection.chargePoint, direction: nil, fields: fields)
        )
    }

    private func undecodable(_ connection: Connection, _ error: String, _ direction: Direction, _ time: Int64, _ detail: String) {
        connection.phase = .undecodable
        self.error(connection, error, direction: direction, time: time, detail: detail)
    }

    private func error(_ connection: Connection, _ error: String, direction: Direction?, time: Int64, detail: String) {
        self.statistics.errors[error, default: 0] += 1
        self.emit(
            .record(
                kind: .error, ts: Timestamp(microseconds: time), connection: connection.id,
                chargePoint: connection.chargePoint.isEmpty ? nil : connection.chargePoint, direction: direction,
                fields: ["error": .string(error), "detail": .string(detail), "source": "pcap"]
            )
        )
    }
}

/// Both directions of a connection map to the same key.
private struct FlowKey: Hashable {
    var low: Endpoint
    var high: Endpoint

    init(_ a: Endpoint, _ b: Endpoint) {
        if a.address.lexicographicallyPrecedes(b.address) || (a.address == b.address && a.port <= b.port) {
            self.low = a
            self.high = b
        } else {
            self.low = b
            self.high = a
        }
    }
}

private struct PartialMessage {
    var opcode: FrameOpcode
    var data: [UInt8]
    var fragments: Int
    var compressed = false
}

private final class Connection {
    enum Phase { case request, awaitingResponse, webSocket, rejected, undecodable, ended }

    let id: UInt64
    let client: Endpoint
    let server: Endpoint
    let started: Int64
    var opened: Int64
    var lastTime: Int64
    var phase = Phase.request
    var toServer = HalfStream()
    var toClient = HalfStream()
    var buffers: [Direction: ByteStream] = [:]
    var partial: [Direction: PartialMessage] = [:]
    /// permessage-deflate, when the upgrade negotiated it, and each direction's inflater.
    var deflate: PerMessageDeflate?
    var inflaters: [Direction: MessageInflater] = [:]
    var lostBytes: [Direction: Int] = [:]
    var request: HTTPHead?
    var chargePoint = ""
    var correlator = CallCorrelator<Void>()
    var messages: [Direction: Int] = [:]
    var firstClose: (direction: Direction, code: UInt16?, reason: String)?
    var transportClosedBy: Direction?
    var countersCollected = false

    init(id: UInt64, client: Endpoint, server: Endpoint, started: Int64) {
        self.id = id
        self.client = client
        self.server = server
        self.started = started
        self.opened = started
        self.lastTime = started
    }

    func half(_ direction: Direction) -> HalfStream { direction == .toCSMS ? self.toServer : self.toClient }

    func withHalf(_ direction: Direction, _ body: (inout HalfStream) -> Void) {
        if direction == .toCSMS { body(&self.toServer) } else { body(&self.toClient) }
    }

    func describe(_ direction: Direction) -> String {
        direction == .toCSMS ? "\(self.client) → \(self.server)" : "\(self.server) → \(self.client)"
    }
}
