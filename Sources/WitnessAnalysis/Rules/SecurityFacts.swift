import OCPPWire
import WitnessCapture

/// What an `open` record says about a connection's security.
struct SecurityFacts {
    var chargerTLS: Bool
    var clientCertificate: Bool
    var certificateCommonName: String?
    var basicUser: String?

    init(_ record: CaptureRecord) {
        let tls = record.fields["tls"]
        self.chargerTLS = tls?["charger"]?.boolValue ?? false
        let certificate = tls?["clientCertificate"]
        self.clientCertificate = certificate != nil && certificate != .null
        self.certificateCommonName = certificate?["commonName"]?.stringValue
        self.basicUser = record.fields["headers"]?["authorization"]?.stringValue.flatMap { Redactor.basicUser(recordedHeader: $0) }
    }

    /// 3 with a client certificate over TLS, 2 with Basic auth over TLS, 1 with Basic auth without TLS, 0 with neither.
    var profile: Int {
        if self.chargerTLS && self.clientCertificate { return 3 }
        if self.basicUser != nil { return self.chargerTLS ? 2 : 1 }
        return 0
    }
}
