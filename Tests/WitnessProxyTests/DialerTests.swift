import NIOCore
import OCPPWire
import Testing

@testable import WitnessProxy

@Suite("Upstream dialer")
struct DialerTests {
    /// Host names may start with a digit; only what parses as an IP address goes without server name
    /// indication, which RFC 6066 reserves for host names.
    @Test(
        "the TLS server name is the upstream's host name, and none for an IP address",
        arguments: [
            ("wss://csms.example/ocpp", "csms.example"),
            ("wss://1cpo.example/ocpp", "1cpo.example"),
            ("wss://365-charge.example:8443/ocpp", "365-charge.example"),
            ("wss://127.0.0.1:9000/ocpp", nil),
            ("wss://[::1]:9000/ocpp", nil),
        ] as [(String, String?)]
    )
    func serverName(url: String, expected: String?) throws {
        let dialer = UpstreamDialer(
            upstream: try WebSocketURL(parsing: url), tlsContext: nil, connectTimeout: .seconds(1), handshakeTimeout: .seconds(1),
            maximumFrameBytes: 1 << 20
        )
        #expect(dialer.serverName == expected)
    }
}
