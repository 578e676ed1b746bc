import Foundation
import NIOCore
import NIOSSL
import OCPPWire
import Testing
import WitnessAnalysis
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@Suite("TLS on either side of the proxy")
struct TLSTests {
    func chargerTLS(_ certificates: TestCertificates, clientCertificate: Bool = false) throws -> OCPPClientOptions {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificates.caCertificate))
        if clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificates.clientCertificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificates.clientKey, format: .pem))
        }
        return OCPPClientOptions(subprotocols: [], tls: tls)
    }

    func csmsTLS(certificate: String, key: String, clientCA: String? = nil) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        )
        if let clientCA {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCA))
            tls.certificateVerification = .noHostnameVerification
        }
        return tls
    }

    func runSession(_ harness: ProxyHarness, _ charger: ChargerSimulator) async throws {
        try await charger.connect()
        try await charger.boot()
        let atCSMS = await harness.csms.connection(charger.profile.id)
        #expect(try #require(charger.endpoint).transcript.sent == atCSMS.transcript.received)
        await charger.disconnect()
    }

    @Test("wss charger to a ws backend")
    func tlsChargerSide() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ProxyHarness.start(
            configure: { $0.chargerTLS = .init(certificateChainFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey) },
            proxyScheme: "wss"
        ).run { harness in
            try await self.runSession(harness, harness.charger(ChargerProfile(id: "CP-wss"), tls: try self.chargerTLS(certificates)))
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["tls"]?["charger"] == true)
            #expect(open.fields["tls"]?["upstream"] == false)
        }
    }

    @Test("ws charger to a wss backend verified against --upstream-ca")
    func tlsBackendSide() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ProxyHarness.start(
            csms: .init(tls: try self.csmsTLS(certificate: certificates.serverCertificate, key: certificates.serverKey)),
            upstreamScheme: "wss",
            configure: { $0.upstreamTLS = .init(caFile: certificates.caCertificate) }
        ).run { harness in
            try await self.runSession(harness, harness.charger(ChargerProfile(id: "CP-up-tls")))
        }
    }

    @Test("wss to wss with mutual TLS on both sides (security profile 3)")
    func mutualTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ProxyHarness.start(
            csms: .init(
                tls: try self.csmsTLS(
                    certificate: certificates.serverCertificate, key: certificates.serverKey, clientCA: certificates.caCertificate
                )
            ),
            upstreamScheme: "wss",
            configure: {
                $0.chargerTLS = .init(
                    certificateChainFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey,
                    clientCAFile: certificates.caCertificate
                )
                $0.upstreamTLS = .init(
                    caFile: certificates.caCertificate, clientCertificateFile: certificates.clientCertificate,
                    clientKeyFile: certificates.clientKey
                )
            },
            proxyScheme: "wss"
        ).run { harness in
            try await self.runSession(
                harness, harness.charger(ChargerProfile(id: "CP-mtls"), tls: try self.chargerTLS(certificates, clientCertificate: true))
            )
            // The client certificate is issued to CP-TLS: right for that charger, wrong for CP-mtls.
            try await self.runSession(
                harness, harness.charger(ChargerProfile(id: "CP-TLS"), tls: try self.chargerTLS(certificates, clientCertificate: true))
            )
            // OCPP puts the serial number in the CN (A00.FR.405): right for a charger whose BootNotification says CP-TLS is its serial.
            try await self.runSession(
                harness, harness.charger(ChargerProfile(id: "CP-serial", serialNumber: "CP-TLS"), tls: try self.chargerTLS(certificates, clientCertificate: true))
            )
            let opens = try await harness.records().filter { $0.kind == "open" }
            let tls = try #require(opens.first { $0.chargePoint == "CP-mtls" }?.fields["tls"])
            #expect(tls["chargerVersion"]?.stringValue?.hasPrefix("TLSv1.") == true)
            #expect(tls["upstreamVersion"]?.stringValue?.hasPrefix("TLSv1.") == true)
            #expect(tls["clientCertificate"]?["commonName"] == "CP-TLS")
            #expect(tls["clientCertificate"]?["subject"] == "O=OCPP Witness Tests,CN=CP-TLS")
            #expect(tls["clientCertificate"]?["issuer"] == "O=OCPP Witness Tests,CN=Test CA")
            let report = try await harness.report()
            #expect(report.deviations.filter { $0.rule.hasPrefix("security.") }.map { "\($0.rule) \($0.chargePoint ?? "")" } == ["security.certificateMismatch CP-mtls"])
            #expect(report.deviations.first { $0.rule == "security.certificateMismatch" }?.detail.contains("its serial number 'SN-CP-mtls'") == true)
            #expect(report.pairs.first?.statistics.securityProfiles == [3: 3])
            // A charger without a client certificate does not get through the listener.
            let anonymous = harness.charger(ChargerProfile(id: "CP-anon"), tls: try self.chargerTLS(certificates))
            await #expect(throws: (any Error).self) { try await anonymous.connect() }
            #expect(await eventually { (try? await harness.records().contains { $0.kind == "reject" && $0.fields["cause"] == "chargerTLS" }) == true })
        }
    }

    @Test(
        "a backend with an untrusted certificate, or one for another name, is refused and recorded as upstreamTLS",
        arguments: [("untrusted", "CP-untrusted"), ("wrong name", "CP-wrong-name")]
    )
    func refusedBackendCertificate(kind: String, chargePoint: String) async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let (certificate, key) = kind == "untrusted"
            ? (certificates.untrustedCertificate, certificates.untrustedKey) : (certificates.wrongNameCertificate, certificates.wrongNameKey)
        try await ProxyHarness.start(
            csms: .init(tls: try self.csmsTLS(certificate: certificate, key: key)),
            upstreamScheme: "wss",
            configure: { $0.upstreamTLS = .init(caFile: certificates.caCertificate) }
        ).run { harness in
            let charger = harness.charger(ChargerProfile(id: chargePoint))
            let error = await #expect(throws: OCPPConnectError.self) { try await charger.connect() }
            #expect(error?.status == 502)
            #expect(error?.body.contains("TLS handshake with the backend failed") == true)
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "upstreamTLS")
            #expect(harness.csms.arrivals.isEmpty)
        }
    }

    /// A charger limited to TLS `maximum` and, when given, to `suites`.
    func legacyCharger(_ certificates: TestCertificates, maximum: TLSVersion, suites: [NIOTLSCipher]? = nil) throws -> OCPPClientOptions {
        var options = try self.chargerTLS(certificates)
        options.tls?.minimumTLSVersion = .tlsv1
        options.tls?.maximumTLSVersion = maximum
        if let suites { options.tls?.cipherSuiteValues = suites }
        return options
    }

    @Test("the listener refuses TLS 1.1 and weak suites, and accepts the RSA suites OCPP requires of a CSMS")
    func listenerVersionsAndSuites() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ProxyHarness.start(
            configure: { $0.chargerTLS = .init(certificateChainFile: certificates.rsaServerCertificate, privateKeyFile: certificates.rsaServerKey) },
            proxyScheme: "wss"
        ).run { harness in
            let old = harness.charger(ChargerProfile(id: "CP-tls11"), tls: try self.legacyCharger(certificates, maximum: .tlsv11))
            await #expect(throws: (any Error).self) { try await old.connect() }
            let cbc = harness.charger(
                ChargerProfile(id: "CP-cbc"), tls: try self.legacyCharger(certificates, maximum: .tlsv12, suites: [.TLS_RSA_WITH_AES_128_CBC_SHA])
            )
            await #expect(throws: (any Error).self) { try await cbc.connect() }
            #expect(await eventually { (try? await harness.records().filter { $0.kind == "reject" && $0.fields["cause"] == "chargerTLS" }.count) == 2 })
            // A compliant charger may offer nothing but TLS_RSA_WITH_AES_128_GCM_SHA256.
            let rsaOnly = harness.charger(
                ChargerProfile(id: "CP-rsa-gcm"), tls: try self.legacyCharger(certificates, maximum: .tlsv12, suites: [.TLS_RSA_WITH_AES_128_GCM_SHA256])
            )
            try await self.runSession(harness, rsaOnly)
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["tls"]?["chargerVersion"] == "TLSv1.2")
            #expect(open.fields["tls"]?["chargerMinimumVersion"] == nil)
        }
    }

    @Test("a listener lowered to TLS 1.1 for a legacy charger accepts it and the open record says so")
    func listenerLegacyMinimum() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await ProxyHarness.start(
            configure: {
                $0.chargerTLS = .init(certificateChainFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey, minimumVersion: .tlsv11)
            },
            proxyScheme: "wss"
        ).run { harness in
            try await self.runSession(harness, harness.charger(ChargerProfile(id: "CP-legacy"), tls: try self.legacyCharger(certificates, maximum: .tlsv11)))
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["tls"]?["chargerVersion"] == "TLSv1.1")
            #expect(open.fields["tls"]?["chargerMinimumVersion"] == "TLSv1.1")
        }
    }

    @Test("a backend that speaks only TLS 1.1 is refused as upstreamTLS unless the minimum is lowered for it")
    func legacyBackend() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        var backendTLS = try self.csmsTLS(certificate: certificates.serverCertificate, key: certificates.serverKey)
        backendTLS.minimumTLSVersion = .tlsv1
        backendTLS.maximumTLSVersion = .tlsv11
        try await ProxyHarness.start(
            csms: .init(tls: backendTLS), upstreamScheme: "wss", configure: { $0.upstreamTLS = .init(caFile: certificates.caCertificate) }
        ).run { harness in
            let charger = harness.charger(ChargerProfile(id: "CP-old-backend"))
            let error = await #expect(throws: OCPPConnectError.self) { try await charger.connect() }
            #expect(error?.status == 502)
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "upstreamTLS")
        }
        try await ProxyHarness.start(
            csms: .init(tls: backendTLS), upstreamScheme: "wss",
            configure: { $0.upstreamTLS = .init(caFile: certificates.caCertificate, minimumVersion: .tlsv11) }
        ).run { harness in
            try await self.runSession(harness, harness.charger(ChargerProfile(id: "CP-old-backend")))
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["tls"]?["upstreamVersion"] == "TLSv1.1")
            #expect(open.fields["tls"]?["upstreamMinimumVersion"] == "TLSv1.1")
        }
    }
}
