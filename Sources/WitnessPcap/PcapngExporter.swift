import OCPPWire
import WitnessCapture

/// Turns a capture into a pcapng file that Wireshark and tshark open as ordinary WebSocket traffic.
///
/// Every charger connection becomes one TCP stream between the charger's recorded address and the
/// server, with the three-way handshake, the HTTP upgrade, one WebSocket frame per recorded message
/// (charger frames masked, as on the wire) and the closing FINs, all stamped with the capture's times.
/// Rejected upgrades appear with their HTTP answer. Faults and proxy-originated frames carry a packet
/// comment. See docs/wireshark.md for what is synthesized.
public struct PcapngExporter {
    public struct Options: Sendable {
        /// The server's TCP port in the file. 80 by default so Wireshark decodes HTTP and WebSocket
        /// without "Decode As".
        public var serverPort: UInt16
        /// The server's address when the capture does not name an IPv4 listener.
        public var defaultServerAddress: [UInt8]

        public init(serverPort: UInt16 = 80, defaultServerAddress: [UInt8] = [192, 0, 2, 1]) {
            self.serverPort = serverPort
            self.defaultServerAddress = defaultServerAddress
        }
    }

    public struct Summary: Sendable, Hashable {
        public var packets = 0
        public var connections = 0
        public var rejected = 0
        /// Data messages (text and binary) written as WebSocket frames.
        public var messages = 0
        public var textMessages = 0
        /// Connections whose `open` record was not in the capture; their handshake is made up.
        public var synthesizedHandshakes = 0
        /// Lines of the capture that could not be read.
        public var readIssues: [CaptureReadIssue] = []
    }

    private struct Stream {
        var client: Endpoint
        var server: Endpoint
        var clientSequence: UInt32
        var serverSequence: UInt32
        var frames: UInt32 = 0
    }

    public let options: Options
    private let writer: PcapngWriter
    private var streams: [UInt64: Stream] = [:]
    private var serverAddress: [UInt8]
    private var nextSyntheticClient: UInt32 = 1
    private var identification: UInt16 = 1
    private var summary = Summary()

    private init(writer: PcapngWriter, options: Options) {
        self.writer = writer
        self.options = options
        self.serverAddress = options.defaultServerAddress
    }

    /// Reads the capture at `paths` (files or folders) and writes `output`.
    public static func export(capture paths: [String], to output: String, options: Options = Options()) throws -> Summary {
        let reader = try CaptureReader(paths: paths)
        reader.keepsMessageText = true
        let writer = try PcapngWriter(
            path: output, application: "ocpp-witness \(CaptureFormat.toolVersion) export", interfaceName: "ocpp-witness"
        )
        var exporter = PcapngExporter(writer: writer, options: options)
        for record in reader {
            try exporter.consume(record)
        }
        try writer.close()
        exporter.summary.readIssues = reader.issues
        exporter.summary.packets = writer.packetsWritten
        return exporter.summary
    }

    private mutating func consume(_ record: CaptureRecord) throws {
        guard let kind = record.recordKind, let time = record.ts?.microseconds else { return }
        switch kind {
        case .header:
            if let listen = record.fields["listen"]?.stringValue, let endpoint = Endpoint(listen),
                endpoint.address != [0, 0, 0, 0]
            {
                self.serverAddress = endpoint.address
            }
        case .open:
            guard let connection = record.connection else { return }
            self.summary.connections += 1
            var comments = ["OCPP Witness connection \(connection), charge point \(record.chargePoint ?? "?") (\(record.reference))"]
            if let upstream = record.fields["upstream"]?.stringValue { comments.append("forwarded to \(upstream)") }
            try self.openStream(connection, record: record, time: time, comments: comments)
            try self.send(connection, fromClient: false, Array(Self.switchingProtocols(record).utf8), time: time)
        case .reject:
            let connection = record.connection ?? (UInt64.max - UInt64(self.summary.rejected))
            self.summary.rejected += 1
            let cause = record.fields["cause"]?.stringValue ?? "unknown"
            let detail = record.fields["detail"]?.stringValue ?? ""
            try self.openStream(
                connection, record: record, time: time, comments: ["upgrade rejected: \(cause): \(detail) (\(record.reference))"]
            )
            if let status = record.fields["status"]?.intValue {
                let body = Array((record.fields["body"]?.stringValue ?? "").utf8)
                let head = "HTTP/1.1 \(status) \(Self.reasonPhrase(status))\r\ncontent-length: \(body.count)\r\nconnection: close\r\n\r\n"
                try self.send(connection, fromClient: false, Array(head.utf8) + body, time: time)
            }
            try self.finish(connection, closedByClient: false, time: time)
        case .frame:
            try self.frame(record, time: time)
        case .close:
            guard let connection = record.connection, self.streams[connection] != nil else { return }
            let closedByClient = record.fields["transportClosedBy"]?.stringValue != "csms"
            try self.finish(connection, closedByClient: closedByClient, time: time)
        default:
            return
        }
    }

    private mutating func frame(_ record: CaptureRecord, time: Int64) throws {
        guard let connection = record.connection, let direction = record.direction,
            let opcodeName = record.fields["opcode"]?.stringValue, let opcode = WebSocketWire.opcode(opcodeName),
            let payload = record.payloadBytes
        else { return }
        if self.streams[connection] == nil {
            self.summary.synthesizedHandshakes += 1
            try self.openStream(
                connection, record: record, time: time,
                comments: ["handshake of connection \(connection) is not in the capture; this upgrade is made up"]
            )
            try self.send(connection, fromClient: false, Array(Self.switchingProtocols(record).utf8), time: time)
        }
        var comments: [String] = []
        if record.fields["injected"]?.boolValue == true { comments.append("originated by OCPP Witness, not by the peer") }
        if case .object(let fault) = record.fields["fault"] {
            var text = "fault injected: " + (fault["kind"]?.stringValue ?? "?") + " by rule " + (fault["rule"]?.stringValue ?? "?")
            var details = JSONObject()
            for member in fault.members where member.key != "kind" && member.key != "rule" { details[member.key] = member.value }
            if !details.members.isEmpty {
                var bytes: [UInt8] = []
                JSONWriter.write(.object(details), into: &bytes)
                text += " " + String(decoding: bytes, as: UTF8.self)
            }
            comments.append(text)
        }
        if case .object(let malformed) = record.fields["malformed"] {
            comments.append("not OCPP-J: " + (malformed["detail"]?.stringValue ?? ""))
        }
        if record.fields["redacted"]?.boolValue == true { comments.append("secrets redacted in the capture") }
        if record.fields["fragments"] != nil { comments.append("sent in \(record.fields["fragments"]!.intValue ?? 0) fragments") }

        let fromClient = direction == .toCSMS
        var stream = self.streams[connection]!
        stream.frames &+= 1
        self.streams[connection] = stream
        let maskKey = fromClient ? Self.maskKey(connection: connection, frame: stream.frames) : nil
        let bytes = WebSocketWire.frame(opcode: opcode, payload: payload, maskKey: maskKey)
        if opcode == 0x1 || opcode == 0x2 {
            self.summary.messages += 1
            if opcode == 0x1 { self.summary.textMessages += 1 }
        }
        try self.send(connection, fromClient: fromClient, bytes, time: time, comments: comments)
    }

    // MARK: TCP

    private mutating func openStream(_ connection: UInt64, record: CaptureRecord, time: Int64, comments: [String]) throws {
        if self.streams[connection] != nil { try self.finish(connection, closedByClient: true, time: time) }
        let client = record.fields["remote"]?.stringValue.flatMap(Endpoint.init) ?? self.syntheticClient()
        let server = Endpoint(address: self.serverAddress, port: self.options.serverPort)
        let seed = UInt32(truncatingIfNeeded: connection &* 2_654_435_761)
        var stream = Stream(client: client, server: server, clientSequence: seed, serverSequence: ~seed)
        try self.packet(&stream, fromClient: true, flags: .syn, payload: [], time: time, comments: comments)
        stream.clientSequence &+= 1
        try self.packet(&stream, fromClient: false, flags: [.syn, .ack], payload: [], time: time)
        stream.serverSequence &+= 1
        try self.packet(&stream, fromClient: true, flags: .ack, payload: [], time: time)
        self.streams[connection] = stream
        try self.send(connection, fromClient: true, Array(Self.upgradeRequest(record).utf8), time: time)
    }

    private mutating func send(_ connection: UInt64, fromClient: Bool, _ bytes: [UInt8], time: Int64, comments: [String] = []) throws {
        guard var stream = self.streams[connection] else { return }
        // Segments no larger than a loopback MTU allows, so every packet is a valid IPv4 datagram.
        let segment = 65_000
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + segment)
            try self.packet(
                &stream, fromClient: fromClient, flags: [.psh, .ack], payload: bytes[offset..<end], time: time,
                comments: offset == 0 ? comments : []
            )
            if fromClient { stream.clientSequence &+= UInt32(end - offset) } else { stream.serverSequence &+= UInt32(end - offset) }
            offset = end
        } while offset < bytes.count
        self.streams[connection] = stream
    }

    private mutating func finish(_ connection: UInt64, closedByClient: Bool, time: Int64) throws {
        guard var stream = self.streams.removeValue(forKey: connection) else { return }
        for fromClient in [closedByClient, !closedByClient] {
            try self.packet(&stream, fromClient: fromClient, flags: [.fin, .ack], payload: [], time: time)
            if fromClient { stream.clientSequence &+= 1 } else { stream.serverSequence &+= 1 }
        }
        try self.packet(&stream, fromClient: closedByClient, flags: .ack, payload: [], time: time)
    }

    private mutating func packet(
        _ stream: inout Stream, fromClient: Bool, flags: TCPFlags, payload: ArraySlice<UInt8>, time: Int64, comments: [String] = []
    ) throws {
        self.identification &+= 1
        let packet = PacketBuilder.ipv4TCP(
            from: fromClient ? stream.client : stream.server, to: fromClient ? stream.server : stream.client,
            sequence: fromClient ? stream.clientSequence : stream.serverSequence,
            acknowledgement: fromClient ? stream.serverSequence : stream.clientSequence, flags: flags,
            identification: self.identification, payload: payload
        )
        try self.writer.writePacket(packet, microseconds: time, direction: fromClient ? .inbound : .outbound, comments: comments)
    }

    private mutating func syntheticClient() -> Endpoint {
        defer { self.nextSyntheticClient &+= 1 }
        let n = self.nextSyntheticClient
        return Endpoint(address: [10, UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)], port: 49152)
    }

    // MARK: HTTP

    static func upgradeRequest(_ record: CaptureRecord) -> String {
        let path = record.fields["path"]?.stringValue ?? "/" + (record.chargePoint ?? "")
        let query = record.fields["query"]?.stringValue.map { "?" + $0 } ?? ""
        var text = "GET \(path)\(query) HTTP/1.1\r\n"
        if case .object(let headers) = record.fields["headers"] {
            for member in headers.members { text += "\(member.key): \(member.value.stringValue ?? "")\r\n" }
        } else {
            text += "upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n"
            if let version = record.fields["version"]?.stringValue.flatMap(OCPPVersion.init(rawValue:)) {
                text += "sec-websocket-protocol: \(version.subprotocol)\r\n"
            }
        }
        return text + "\r\n"
    }

    static func switchingProtocols(_ record: CaptureRecord) -> String {
        var text = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        if case .object(let headers) = record.fields["headers"], let key = headers["sec-websocket-key"]?.stringValue {
            text += "sec-websocket-accept: \(WebSocketWire.accept(key: key))\r\n"
        }
        if let chosen = record.fields["chosen"]?.stringValue {
            text += "sec-websocket-protocol: \(chosen)\r\n"
        } else if let version = record.fields["version"]?.stringValue.flatMap(OCPPVersion.init(rawValue:)) {
            text += "sec-websocket-protocol: \(version.subprotocol)\r\n"
        }
        return text + "\r\n"
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 426: "Upgrade Required"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status \(status)"
        }
    }

    /// A fixed mask per frame, so the same capture always exports to the same file.
    static func maskKey(connection: UInt64, frame: UInt32) -> [UInt8] {
        var z = connection &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(frame)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return [UInt8(z & 0xFF), UInt8((z >> 8) & 0xFF), UInt8((z >> 16) & 0xFF), UInt8((z >> 24) & 0xFF)]
    }
}
