/// An OCPP-J endpoint address: `ws[s]://HOST[:PORT][/path]`.
///
/// As a proxy upstream, the path is a prefix to which the charger's request path is appended, so
/// `ws://csms:9000/steve/ws` and a charger asking for `/CP-1` reach `ws://csms:9000/steve/ws/CP-1`.
public struct WebSocketURL: Sendable, Hashable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    /// Path prefix without a trailing slash (empty for none).
    public var pathPrefix: String

    public init(secure: Bool, host: String, port: Int, pathPrefix: String = "") {
        self.secure = secure
        self.host = host
        self.port = port
        self.pathPrefix = pathPrefix
    }

    /// Why an address was refused.
    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws {
        let lowered = text.lowercased()
        let rest: Substring
        if lowered.hasPrefix("ws://") {
            self.secure = false
            rest = text.dropFirst(5)
        } else if lowered.hasPrefix("wss://") {
            self.secure = true
            rest = text.dropFirst(6)
        } else {
            throw ParseError(description: "expected a ws:// or wss:// address, got '\(text)'")
        }
        let authority = rest.prefix(while: { $0 != "/" && $0 != "?" })
        var path = String(rest.dropFirst(authority.count))
        if path.contains("?") {
            throw ParseError(description: "'\(text)' must not carry a query")
        }
        while path.hasSuffix("/") { path.removeLast() }
        self.pathPrefix = path
        let defaultPort = self.secure ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw ParseError(description: "unclosed '[' in host '\(authority)'")
            }
            self.host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            self.port = try Self.port(after.isEmpty ? nil : after.dropFirst(), default: defaultPort, text: text)
        } else if let colon = authority.lastIndex(of: ":") {
            self.host = String(authority[..<colon])
            self.port = try Self.port(authority[authority.index(after: colon)...], default: defaultPort, text: text)
        } else {
            self.host = String(authority)
            self.port = defaultPort
        }
        guard !self.host.isEmpty else { throw ParseError(description: "'\(text)' has no host") }
    }

    private static func port(_ text: Substring?, default defaultPort: Int, text full: String) throws -> Int {
        guard let text else { return defaultPort }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw ParseError(description: "invalid port '\(text)' in '\(full)'")
        }
        return port
    }

    /// The request target for `path` below this address's path, with `query`.
    public func requestTarget(path: String, query: String?) -> String {
        let joined = self.pathPrefix + (path.hasPrefix("/") ? path : "/" + path)
        guard let query, !query.isEmpty else { return joined }
        return joined + "?" + query
    }

    /// The `Host` header value.
    public var hostHeader: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return (self.port == (self.secure ? 443 : 80)) ? host : "\(host):\(self.port)"
    }

    public var description: String {
        "\(self.secure ? "wss" : "ws")://\(self.hostHeader)\(self.pathPrefix)"
    }
}

/// The request path of a charger's upgrade, split into what OCPP cares about.
public struct ChargerRequestTarget: Sendable, Hashable {
    public var path: String
    public var query: String?
    /// The charge point identity: the last path segment, percent-decoded.
    public var chargePointId: String

    public init(uri: String) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = parts.first.map(String.init) ?? "/"
        if self.path.isEmpty { self.path = "/" }
        self.query = parts.count > 1 ? String(parts[1]) : nil
        let segment = self.path.split(separator: "/").last.map(String.init) ?? ""
        self.chargePointId = Self.percentDecode(segment)
    }

    /// Why a charger's path must not be appended to the upstream prefix, or nil when it may go exactly as sent.
    ///
    /// A dot-segment (`.` or `..`, raw or percent-encoded, also before a `;` parameter as some servers read
    /// `..;`) would let a backend that resolves it (RFC 3986 5.2.4) climb out of the prefix, and an encoded
    /// `/` or `\` (or a raw `\`) in a segment is a separator to a backend that decodes before routing.
    public static func unsafePathReason(_ path: String) -> String? {
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            let decoded = Self.percentDecode(String(segment))
            let beforeParameter = decoded.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? decoded
            if beforeParameter == "." || beforeParameter == ".." {
                return "the path has the dot-segment '\(segment)'"
            }
            if decoded.contains("/") || decoded.contains("\\") {
                return "the path segment '\(segment)' holds an encoded '/' or a '\\'"
            }
        }
        return nil
    }

    /// Percent-decodes one path or query component.
    public static func percentDecodeComponent(_ text: String) -> String { self.percentDecode(text) }

    /// Percent-encodes one path segment (a charge point id): everything but RFC 3986 unreserved characters.
    public static func percentEncodeComponent(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }

    static func percentDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
