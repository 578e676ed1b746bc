import ChildProcesses
import Foundation

/// Certificates made by `openssl` for one test run: a CA, a server and a client certificate it signed,
/// and a self-signed server certificate nobody trusts.
package struct TestCertificates {
    package let directory: String
    package var caCertificate: String { self.directory + "/ca.pem" }
    package var serverCertificate: String { self.directory + "/server.pem" }
    package var serverKey: String { self.directory + "/server.key" }
    package var clientCertificate: String { self.directory + "/client.pem" }
    package var clientKey: String { self.directory + "/client.key" }
    package var untrustedCertificate: String { self.directory + "/untrusted.pem" }
    package var untrustedKey: String { self.directory + "/untrusted.key" }
    /// Signed by the CA, for localhost and 127.0.0.1, with an RSA key (for the suites without ECDHE).
    package var rsaServerCertificate: String { self.directory + "/rsa-server.pem" }
    package var rsaServerKey: String { self.directory + "/rsa-server.key" }
    /// Signed by the CA, but for another name (elsewhere.example) only.
    package var wrongNameCertificate: String { self.directory + "/wrong-name.pem" }
    package var wrongNameKey: String { self.directory + "/wrong-name.key" }

    package struct OpenSSLFailure: Error, CustomStringConvertible {
        package var description: String
    }

    package static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("witness-certs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        let san = directory + "/san.cnf"
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: san, atomically: true, encoding: .utf8)
        let subject = "/O=OCPP Witness Tests/CN="
        try await run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                 "-subj", subject + "Test CA", "-keyout", directory + "/ca.key", "-out", certificates.caCertificate])
        for (name, cn) in [("server", "localhost"), ("client", "CP-TLS")] {
            try await run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subject + cn,
                     "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr"])
            try await run(["x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", certificates.caCertificate,
                     "-CAkey", directory + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", san,
                     "-out", "\(directory)/\(name).pem"])
        }
        try await run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject + "localhost",
                 "-keyout", certificates.rsaServerKey, "-out", directory + "/rsa-server.csr"])
        try await run(["x509", "-req", "-in", directory + "/rsa-server.csr", "-CA", certificates.caCertificate,
                 "-CAkey", directory + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", san, "-out", certificates.rsaServerCertificate])
        let elsewhere = directory + "/elsewhere.cnf"
        try "subjectAltName=DNS:elsewhere.example\n".write(toFile: elsewhere, atomically: true, encoding: .utf8)
        try await run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subject + "elsewhere.example",
                 "-keyout", certificates.wrongNameKey, "-out", directory + "/wrong-name.csr"])
        try await run(["x509", "-req", "-in", directory + "/wrong-name.csr", "-CA", certificates.caCertificate,
                 "-CAkey", directory + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", elsewhere, "-out", certificates.wrongNameCertificate])
        try await run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                 "-subj", subject + "localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                 "-keyout", certificates.untrustedKey, "-out", certificates.untrustedCertificate])
        return certificates
    }

    package func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    private static func run(_ arguments: [String]) async throws {
        let result = try await Program.run("/usr/bin/env", ["openssl"] + arguments)
        guard result.status == 0 else {
            throw OpenSSLFailure(description: "openssl \(arguments.joined(separator: " ")) failed: \(result.errors)")
        }
    }
}
