import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessPolicy

/// What the proxy records of each connection: opened (with TLS facts and the negotiated extension) or refused.
extension WitnessProxyServer {
    /// What a security review needs of one TLS hop: the version negotiated and the certificate the peer presented.
    /// Runs on the channel's event loop (the handler's state is not thread-safe).
    static func tlsFacts(_ channel: any Channel) -> (version: String?, peer: JSONValue) {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLHandler.self) else { return (nil, .null) }
        let version = handler.tlsVersion.map(TLSSuites.name)
        guard let certificate = handler.peerCertificate else { return (version, .null) }
        func distinguished(_ names: [SSLCertificateName]) -> String {
            names.map { name in
                let key: String
                switch name.type {
                case .commonName: key = "CN"
                case .organization: key = "O"
                case .organizationalUnit: key = "OU"
                case .country: key = "C"
                case .state: key = "ST"
                case .city: key = "L"
                default: key = "attribute"
                }
                return key + "=" + name.value
            }.joined(separator: ",")
        }
        let commonName = certificate.subjectName.last { $0.type == .commonName }?.value
        return (
            version,
            [
                "subject": .string(distinguished(certificate.subjectName)), "issuer": .string(distinguished(certificate.issuerName)),
                "commonName": commonName.map(JSONValue.string) ?? .null,
            ]
        )
    }

    func recordOpen(_ handshake: ChargerHandshake, session: RelaySession, chargerChannel: any Channel, backendChannel: any Channel) {
        let chargerHop = Self.tlsFacts(chargerChannel)
        let backendHop = Self.tlsFacts(backendChannel)
        let target = handshake.target ?? ChargerRequestTarget(uri: "/")
        let chosen = handshake.chosenSubprotocol
        let version = chosen.flatMap(OCPPVersion.init(subprotocol:))
        var tls = JSONObject([
            "charger": .bool(self.chargerTLS != nil),
            "chargerClientCertificate": .bool(self.configuration.chargerTLS?.clientCAFile != nil),
            "upstream": .bool(self.configuration.upstream.secure),
            "chargerVersion": chargerHop.version.map(JSONValue.string) ?? .null,
            "upstreamVersion": backendHop.version.map(JSONValue.string) ?? .null,
            "clientCertificate": chargerHop.peer,
        ])
        // A minimum lowered below TLS 1.2 for a legacy peer is part of what this connection proves.
        if let chargerTLS = self.configuration.chargerTLS, chargerTLS.minimumVersion != .tlsv12 {
            tls["chargerMinimumVersion"] = .string(TLSSuites.name(chargerTLS.minimumVersion))
        }
        if self.configuration.upstream.secure, self.configuration.upstreamTLS.minimumVersion != .tlsv12 {
            tls["upstreamMinimumVersion"] = .string(TLSSuites.name(self.configuration.upstreamTLS.minimumVersion))
        }
        var fields = JSONObject([
            "path": .string(target.path),
            "query": target.query.map(JSONValue.string) ?? .null,
            "remote": .string(handshake.remoteAddress),
            "upstream": .string(
                self.configuration.upstream.description.prefix(while: { $0 != "/" }) + "//" + self.configuration.upstream.hostHeader
                    + self.configuration.upstream.requestTarget(path: target.path, query: target.query)
            ),
            "offered": .array(handshake.offered.map(JSONValue.string)),
            "chosen": chosen.map(JSONValue.string) ?? .null,
            "version": version.map { .string($0.rawValue) } ?? .null,
            "headers": .object(self.redactor.recordedHeaders(handshake.requestHeaders.map { ($0.name, $0.value) })),
            "compression": session.compression.map { compression in
                .object(JSONObject(["extension": .string(compression.parameters.header), "mode": .string(compression.mode.rawValue)]))
            } ?? .null,
            "tls": .object(tls),
        ])
        if let backendName = self.configuration.backendName { fields["backend"] = .string(backendName) }
        if !handshake.findings.isEmpty {
            fields["findings"] = handshake.findingsJSON
            session.logger.warning("upgrade request breaks RFC 6455, forwarded as it came: \(handshake.findings.map(\.detail).joined(separator: "; "))")
        }
        session.logger.info(
            "connection open",
            metadata: ["path": "\(target.path)", "subprotocol": "\(chosen ?? "none")", "remote": "\(handshake.remoteAddress)"]
        )
        _ = session.record(.connection(.open, connection: session.id, chargePoint: session.chargePoint, fields: fields))
    }

    func recordRefusal(_ handshake: ChargerHandshake, _ refusal: ChargerHandshake.Refusal, head: HTTPRequestHead?) {
        self.state.withLockedValue { $0.statistics.refused += 1 }
        self.metrics.refused.increment()
        let target = handshake.target ?? head.map { ChargerRequestTarget(uri: $0.uri) }
        var fields = JSONObject([
            "path": target.map { .string($0.path) } ?? .null,
            "remote": .string(handshake.remoteAddress),
            "status": refusal.statusSent ? .int(Int(refusal.status.code)) : .null,
            "cause": .string(refusal.cause),
            "detail": .string(refusal.detail),
        ])
        if !handshake.offered.isEmpty { fields["offered"] = .array(handshake.offered.map(JSONValue.string)) }
        if refusal.cause == "upstreamStatus", refusal.body.readableBytes > 0 {
            fields["body"] = .string(String(buffer: refusal.body))
        }
        if let head { fields["headers"] = .object(self.redactor.recordedHeaders(head.headers.map { ($0.name, $0.value) })) }
        if !handshake.findings.isEmpty { fields["findings"] = handshake.findingsJSON }
        self.logger.warning(
            "upgrade refused",
            metadata: [
                "conn": "\(handshake.connectionID)", "chargePoint": "\(target?.chargePointId ?? "?")",
                "status": "\(refusal.status.code)", "cause": "\(refusal.cause)", "detail": "\(refusal.detail)",
            ]
        )
        self.recorder?.record(
            .connection(.reject, connection: handshake.connectionID, chargePoint: target?.chargePointId, fields: fields)
        )
    }
}
