#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WitnessProxy

/// Who may talk to the admin port and the capture view: the listener binds to loopback only, and a
/// request must name loopback, `localhost` or a name the operator allowed in `Host` (and, from browsers,
/// `Origin`).
enum RequestOrigin {
    /// Why a request may not be answered, from its `Host` and `Origin`: nil when both name loopback,
    /// `localhost` or an allowed name. Any web page the operator opens could otherwise reach the admin port
    /// through a name of its own that resolves to 127.0.0.1 (DNS rebinding) and read charger ids, addresses
    /// and frames, or send a mutating request with a token it got hold of.
    static func refusal(host: String?, origin: String?, allowed: [String]) -> String? {
        func permitted(_ authority: Substring) -> Bool {
            var name = authority
            if name.hasPrefix("["), let end = name.firstIndex(of: "]") {
                name = name[name.index(after: name.startIndex)..<end]
            } else if let colon = name.lastIndex(of: ":"), name[name.index(after: colon)...].allSatisfy(\.isNumber) {
                name = name[..<colon]
            }
            let lowered = name.lowercased()
            return lowered == "localhost" || Self.isLoopbackAddress(lowered) || allowed.contains(lowered)
        }
        guard let host, !host.isEmpty else { return "the request has no Host header" }
        guard permitted(Substring(host)) else {
            return "Host '\(host)' is not a loopback address, localhost or a name given with --admin-allow-host; refused (DNS rebinding)"
        }
        if let origin {
            let parts = origin.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "http:" || parts[0] == "https:", parts[1].isEmpty, permitted(parts[2]) else {
                return "Origin '\(origin)' is not a page of a loopback address, localhost or a name given with --admin-allow-host; refused"
            }
        }
        return nil
    }

    /// The admin API and the live page listen on loopback only: `localhost`, or an address (parsed as one, so
    /// that a name such as `127.attacker.example` is not taken for one) in 127.0.0.0/8 or `::1`.
    static func requireLoopback(_ host: String) throws {
        guard host == "localhost" || Self.isLoopbackAddress(host) else {
            throw ProxyStartupError("the admin API and the live page bind to loopback only (127.0.0.1 or ::1), not \(host)")
        }
    }

    static func isLoopbackAddress(_ host: String) -> Bool {
        // The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
        var bytes = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, host, &bytes) == 1 { return bytes[0] == 127 }
        if inet_pton(AF_INET6, host, &bytes) == 1 { return bytes == Array(repeating: 0, count: 15) + [1] }
        return false
    }

}
