import ChildProcesses
import Foundation

/// Certificates made by `openssl` for one test run: a CA, a server and a client certificate it signed,
/// and a self-signed server certificate nobody trusts.
struct TestCertificates {
    let directory: String
    var caCertificate: String { self.directory + "/ca.pem" }
    var serverCertificate: String { self.directory + "/server.pem" }
    var serverKey: String { self.directory + "/server.key" }
    var clientCertificate: String { self.directory + "/client.pem" }
    var clientKey: String { self.directory + "/client.key" }
    var untrustedCertificate: String { self.directory + "/untrusted.pem" }
    var untrustedKey: String { self.directory + "/untrusted.key" }

    struct OpenSSLFailure: Error, CustomStringConvertible {
        var description: String
    }

    static func make() throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("witness-certs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        let san = directory + "/san.cnf"
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: san, atomically: true, encoding: .utf8)
        let subject = "/O=OCPP Witness Tests/CN="
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                 "-subj", subject + "Test CA", "-keyout", directory + "/ca.key", "-out", certificates.caCertificate])
        for (name, cn) in [("server", "localhost"), ("client", "CP-TLS")] {
            try run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", subject + cn,
                     "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr"])
            try run(["x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", certificates.caCertificate,
                     "-CAkey", directory + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", san,
                     "-out", "\(directory)/\(name).pem"])
        }
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                 "-subj", subject + "localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                 "-keyout", certificates.untrustedKey, "-out", certificates.untrustedCertificate])
        return certificates
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    private static func run(_ arguments: [String]) throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw OpenSSLFailure(description: "openssl \(arguments.joined(separator: " ")) failed: \(message)")
        }
    }
}
