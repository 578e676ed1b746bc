import OCPPWire

/// Bytes of one direction of a connection, in order, not yet parsed.
struct ByteStream {
    private var bytes: [UInt8] = []
    private var start = 0

    var isEmpty: Bool { self.start >= self.bytes.count }
    var count: Int { self.bytes.count - self.start }
    var first: UInt8? { self.isEmpty ? nil : self.bytes[self.start] }

    mutating func append(_ chunk: ArraySlice<UInt8>) {
        if self.start > 0 && self.start >= self.bytes.count / 2 {
            self.bytes.removeFirst(self.start)
            self.start = 0
        }
        self.bytes.append(contentsOf: chunk)
    }

    /// Takes everything up to and including the first blank line (`\r\n\r\n`), when it has arrived.
    mutating func takeHTTPHead() -> [UInt8]? {
        var index = self.start
        while index + 3 < self.bytes.count {
            if self.bytes[index] == 13, self.bytes[index + 1] == 10, self.bytes[index + 2] == 13, self.bytes[index + 3] == 10 {
                let head = Array(self.bytes[self.start..<(index + 4)])
                self.start = index + 4
                return head
            }
            index += 1
        }
        return nil
    }

    enum FrameResult {
        case needMore
        case invalid(String)
        /// `compressed`: RSV1 set, the first frame of a permessage-deflate message.
        case frame(fin: Bool, opcode: UInt8, payload: [UInt8], compressed: Bool)
    }

    /// Takes one WebSocket frame (RFC 6455 section 5.2), unmasking its payload. RSV1 is allowed when the
    /// upgrade negotiated permessage-deflate.
    mutating func takeFrame(maximumPayload: Int, deflate: Bool = false) -> FrameResult {
        let start = self.start
        let parsed = self.bytes.withUnsafeBytes { bytes in
            WebSocketFrameHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[start...]), maximumPayload: maximumPayload)
        }
        let header: WebSocketFrameHeader
        switch parsed {
        case .needMore: return .needMore
        case .tooLong(let length): return .invalid("WebSocket frame of \(length) bytes, over the \(maximumPayload)-byte limit")
        case .header(let complete): header = complete
        }
        let compressed = deflate && header.reservedBits == 0x40
        if header.reservedBits != 0 && !compressed {
            return .invalid("WebSocket frame with reserved bits set (\(deflate ? "only RSV1, for permessage-deflate, was negotiated" : "no extension was negotiated"))")
        }
        guard self.count >= header.frameLength else { return .needMore }
        let payloadStart = start + header.length
        var payload = Array(self.bytes[payloadStart..<(payloadStart + header.payloadLength)])
        if let key = header.maskKey { payload.withUnsafeMutableBytes { key.apply(to: $0) } }
        self.start = payloadStart + header.payloadLength
        return .frame(fin: header.fin, opcode: header.opcode.rawValue, payload: payload, compressed: compressed)
    }
}

/// An HTTP/1.1 request or response head, as far as a WebSocket upgrade needs it.
struct HTTPHead {
    var method = ""
    var target = ""
    var status = 0
    var reason = ""
    /// Header names lower-cased, in order.
    var headers: [(String, String)] = []

    func header(_ name: String) -> String? {
        let values = self.headers.filter { $0.0 == name }.map(\.1)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    var isWebSocketUpgrade: Bool {
        self.method == "GET" && (self.header("upgrade")?.lowercased().contains("websocket") ?? false)
    }

    var subprotocols: [String] {
        (self.header("sec-websocket-protocol") ?? "").split(separator: ",").map { Self.trimmed($0) }.filter { !$0.isEmpty }
    }

    static func parseRequest(_ head: [UInt8]) -> HTTPHead? {
        guard let (first, headers) = lines(head) else { return nil }
        let parts = first.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/") else { return nil }
        var result = HTTPHead(method: String(parts[0]), target: String(parts[1]))
        result.headers = headers
        return result
    }

    static func parseResponse(_ head: [UInt8]) -> HTTPHead? {
        guard let (first, headers) = lines(head) else { return nil }
        let parts = first.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { return nil }
        var result = HTTPHead(status: status, reason: parts.count > 2 ? String(parts[2]) : "")
        result.headers = headers
        return result
    }

    private static func lines(_ head: [UInt8]) -> (String, [(String, String)])? {
        // Header bytes outside ASCII are kept as Latin-1 would read them, never rejected.
        let text = String(decoding: head.map { $0 < 0x80 ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { return nil }
        let first = lines.removeFirst()
        var headers: [(String, String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers.append((line[..<colon].lowercased(), trimmed(line[line.index(after: colon)...])))
        }
        return (first, headers)
    }

    static func trimmed(_ text: Substring) -> String {
        String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
