import Testing

@testable import WitnessProxy

@Suite("The admin listener's address")
struct AdminBindTests {
    @Test("loopback addresses and localhost are accepted", arguments: ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
    func loopback(host: String) throws {
        try AdminServer.requireLoopback(host)
    }

    /// A name that only begins like a loopback address resolves wherever its owner wants: it used to pass.
    @Test("names and other addresses are refused", arguments: ["127.attacker.example", "127.0.0.1.nip.io", "0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1", "128.0.0.1"])
    func elsewhere(host: String) {
        #expect(throws: ProxyStartupError.self) { try AdminServer.requireLoopback(host) }
    }
}
