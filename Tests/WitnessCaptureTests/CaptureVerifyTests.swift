import Foundation
import NIOCore
import OCPPWire
import Testing
import WitnessCapture

/// Captures written by the real writer, then changed as someone might change them; `CaptureVerifier` must
/// name what was done and where.
@Suite("Tamper-evident captures")
struct CaptureVerifyTests {
    static func frame(_ n: Int) -> CaptureEvent {
        let text = #"[2,"m\#(n)","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-12-07T10:00:00Z","sampledValue":[{"value":"\#(1000 + n)"}]}]}]"#
        let buffer = ByteBuffer(string: text)
        return .frame(
            FrameEvent(
                ts: .now(), connection: 1, chargePoint: "CP-1", direction: .toCSMS, opcode: .text, payload: buffer,
                envelope: try? OCPPEnvelope.parse(buffer).get()
            )
        )
    }

    /// A run of several parts (about 4 KiB each), closed, its seals signed with `key` when given.
    static func capture(key: SealKey? = nil, records: Int = 120) throws -> (directory: String, files: [String]) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)").path
        var configuration = CaptureWriter.Configuration(directory: directory, rotateBytes: 4 << 10, fsync: .never)
        configuration.sealKey = key
        let writer = try CaptureWriter(configuration: configuration, header: CaptureHeader(backendName: "CSMS"))
        for n in 0..<records { writer.record(Self.frame(n)) }
        writer.close()
        return (directory, try CaptureReader.captureFiles(at: directory))
    }

    static func lines(_ file: String) throws -> [String] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static func write(_ lines: [String], to file: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
    }

    @Test("a capture as the writer left it is intact: every part sealed, each header naming the seal before it, the last seal saying it is the last")
    func intact() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(files.count >= 4)
        let result = CaptureVerifier().verify(files)
        #expect(result.intact, "\(result.files.map { "\($0.verdict) \($0.firstProblem.map { "\($0)" } ?? "")" }) \(result.sequences)")
        #expect(result.files.allSatisfy { $0.sealed && $0.signature == .unsigned })
        #expect(result.files.last?.last == true && result.files.dropLast().allSatisfy { $0.last == false })
        // Every line carries its number and link, the seal the whole digest; readers still read every record.
        let first = try Self.lines(files[0])
        #expect(first[0].contains(#""kind":"header""#) && first[0].contains(#""format":2"#) && first[0].hasSuffix("\"}"))
        #expect(first[1].contains(#","n":2,"chain":""#))
        #expect(first.last!.contains(#""kind":"seal""#))
        let second = try Self.lines(files[1])
        #expect(second[0].contains(#""previousSeal":""#))
        let reader = try CaptureReader(paths: [directory])
        let records = Array(reader)
        #expect(reader.issues.isEmpty)
        #expect(records.filter { $0.kind == "frame" }.count == 120)
        #expect(records.filter { $0.kind == "seal" }.count == files.count)
    }

    @Test("a changed line: the file is altered at that line, the other parts stay intact")
    func changedLine() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lines = try Self.lines(files[1])
        // The register reading of one sample, edited in place.
        let target = try #require(lines.firstIndex { $0.contains(#""value":"10"#) && $0.contains("MeterValues") && lines.firstIndex(of: $0)! > 2 })
        let original = lines[target]
        let digit = try #require(original.range(of: #""value":"10"#))
        lines[target] = original.replacingCharacters(in: digit, with: #""value":"90"#)
        try Self.write(lines, to: files[1])
        let result = CaptureVerifier().verify(files)
        #expect(result.tampered)
        #expect(result.files[1].verdict == .altered)
        #expect(result.files[1].firstProblem?.kind == .changed)
        #expect(result.files[1].firstProblem?.line == target + 1)
        #expect(result.files[1].problems == 1)
        #expect(result.files.enumerated().allSatisfy { $0.offset == 1 || $0.element.verdict == .intact })
        #expect(result.sequences.isEmpty)
    }

    @Test("a removed line: named at the line that follows it, with the number that is missing")
    func removedLine() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lines = try Self.lines(files[2])
        lines.remove(at: 4)  // line 5
        try Self.write(lines, to: files[2])
        let result = CaptureVerifier().verify(files)
        let file = result.files[2]
        #expect(file.verdict == .altered)
        #expect(file.firstProblem?.kind == .removed && file.firstProblem?.line == 5)
        #expect(file.firstProblem?.detail == "line 5 of the file as written is missing before this line")
        #expect(file.problems == 1)
    }

    @Test("an added line: one without a link, and a copied one, are both named where they stand")
    func addedLines() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lines = try Self.lines(files[0])
        let forged = #"{"ts":"2026-12-07T10:00:00.000000Z","kind":"frame","conn":1,"chargePoint":"CP-1","dir":"toCharger","op":"text","type":3,"id":"m1","payload":{}}"#
        lines.insert(forged, at: 3)  // line 4
        try Self.write(lines, to: files[0])
        var copied = try Self.lines(files[1])
        copied.insert(copied[2], at: 5)  // line 6 repeats line 3
        try Self.write(copied, to: files[1])
        let result = CaptureVerifier().verify(files)
        #expect(result.files[0].firstProblem?.kind == .added)
        #expect(result.files[0].firstProblem?.line == 4)
        #expect(result.files[0].problems == 1)
        #expect(result.files[1].firstProblem?.kind == .added)
        #expect(result.files[1].firstProblem?.line == 6)
        #expect(result.files[1].problems == 1)
    }

    @Test("a removed middle file, and a removed last file, are named as missing parts of the run")
    func missingParts() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.removeItem(atPath: files[2])
        var result = CaptureVerifier().verify(files.filter { $0 != files[2] })
        #expect(result.tampered)
        #expect(result.sequences.map(\.part) == [3])
        #expect(result.sequences.first?.detail.contains("part 3 of the run started") == true)
        #expect(result.files.allSatisfy { $0.verdict == .intact })
        // Without its last part, the run's highest remaining part was sealed for a rotation: one must follow.
        let shortened = Array(files.dropLast()).filter { $0 != files[2] }
        result = CaptureVerifier().verify(shortened)
        #expect(result.sequences.map(\.part) == [3, files.count])
    }

    @Test("a file replaced by another with a chain of its own: the next header names a seal it does not end with")
    func replacedPart() throws {
        let (directory, files) = try Self.capture()
        let (otherDirectory, otherFiles) = try Self.capture()
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: otherDirectory)
        }
        // The other run's part 2, renamed into this run's header (a consistent file, but not this one).
        var lines = try Self.lines(otherFiles[1])
        let ownHeader = try Self.lines(files[1])[0]
        lines[0] = ownHeader
        try Self.write(lines, to: files[1])
        let result = CaptureVerifier().verify(files)
        #expect(result.tampered)
    }

    @Test("a torn last line and no seal (a crash) is unsealed, not altered; lines cut from its end look the same")
    func tornLastLine() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let last = files.last!
        var lines = try Self.lines(last)
        lines.removeLast()  // the seal
        let cut = lines.removeLast()
        try (lines.joined(separator: "\n") + "\n" + String(cut.prefix(cut.count / 2))).write(toFile: last, atomically: true, encoding: .utf8)
        let result = CaptureVerifier().verify(files)
        let file = result.files.last!
        #expect(file.verdict == .unsealed)
        #expect(file.tornLastLine == lines.count + 1)
        #expect(file.firstProblem == nil)
        #expect(!result.tampered && !result.intact)
    }

    @Test("a signed seal holds with the right public key, fails with a wrong one, and a file edited and chained again fails the signature")
    func signedSeals() throws {
        let key = SealKey.generate()
        let (directory, files) = try Self.capture(key: key)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The public half as a user gets it: a PEM file, read back.
        let publicKey = try SealKey(pem: key.publicPEM)
        #expect(!publicKey.canSign && publicKey.id == key.id)
        var result = CaptureVerifier(key: publicKey).verify(files)
        #expect(result.intact)
        #expect(result.files.allSatisfy { $0.signature == .valid && $0.key == key.id })
        #expect(CaptureVerifier().verify(files).files.allSatisfy { $0.signature == .notChecked })

        let wrong = SealKey.generate().publicHalf
        result = CaptureVerifier(key: wrong).verify(files)
        #expect(result.tampered)
        #expect(result.files.allSatisfy { $0.firstProblem?.kind == .signature })

        // Someone edits a reading and recomputes every link and the seal: the chain alone cannot tell, the
        // signature can.
        var lines = try Self.lines(files[1])
        lines[3] = lines[3].replacingOccurrences(of: #""value":"10"#, with: #""value":"20"#)
        var chain = CaptureChain()
        var rewritten: [UInt8] = []
        for line in lines {
            let cut = line.range(of: #","n":"#, options: .backwards)!.lowerBound
            var bytes = Array((String(line[..<cut]) + "}\n").utf8)
            if line.contains(#""kind":"seal""#) {
                let digest = chain.chainSeal(lineAt: 0, in: &bytes)
                let forged = try SealKey.generate().sign(digest)
                bytes += Array(#","signature":"\#(Data(forged).base64EncodedString())"}"#.utf8) + [0x0A]
            } else {
                chain.chain(lineAt: 0, in: &bytes)
            }
            rewritten += bytes
        }
        try Data(rewritten).write(to: URL(fileURLWithPath: files[1]))
        let unsigned = CaptureVerifier().verify([files[1]]).files[0]
        #expect(unsigned.verdict == .intact, "an unsigned check cannot see a recomputed chain: \(unsigned)")
        let checked = CaptureVerifier(key: publicKey).verify(files)
        #expect(checked.files[1].verdict == .altered && checked.files[1].firstProblem?.kind == .signature)
        // Part 3's header still names the seal part 2 had.
        #expect(checked.sequences.map(\.part) == [2])
    }

    @Test("what the links do not cover is caught too: members after a link, bytes after the seal, a stripped header, a part given twice, absurd numbers")
    func outsideTheLinks() throws {
        let (directory, files) = try Self.capture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A member added after the link of line 3 (a reader that keeps the last of two keys would show it).
        var lines = try Self.lines(files[0])
        lines[2] = String(lines[2].dropLast()) + #","payload":[3,"x",{}]}"#
        try Self.write(lines, to: files[0])
        // Bytes after the seal, without a line end (they would pass for a torn line).
        try (String(contentsOfFile: files[1], encoding: .utf8) + #"{"ts":"2026-12-07T10:00:00Z","kind":"fra"#).write(toFile: files[1], atomically: true, encoding: .utf8)
        // The header's link taken off, to pass the file off as one from before the chain.
        var stripped = try Self.lines(files[2])
        stripped[0] = String(stripped[0][..<stripped[0].range(of: #","n":"#)!.lowerBound]) + "}"
        try Self.write(stripped, to: files[2])
        // A line numbered beyond any file, and a header claiming a part far beyond the run.
        var absurd = try Self.lines(files[3])
        absurd[3] = absurd[3].replacingOccurrences(of: #","n":4,"#, with: #","n":9223372036854775807,"#)
        absurd[0] = absurd[0].replacingOccurrences(of: #""part":4,"#, with: #""part":4000000000,"#)
        try Self.write(absurd, to: files[3])
        let copy = directory + "/copy-of-part-5.jsonl"
        try FileManager.default.copyItem(atPath: files[4], toPath: copy)

        let result = CaptureVerifier().verify(files + [copy])
        #expect(result.tampered)
        #expect(result.files[0].firstProblem?.kind == .changed && result.files[0].firstProblem?.line == 3)
        #expect(result.files[1].firstProblem?.kind == .added && result.files[1].verdict == .altered)
        #expect(result.files[2].firstProblem?.kind == .changed && result.files[2].firstProblem?.line == 1)
        #expect(result.files[3].verdict == .altered)
        #expect(result.sequences.contains { $0.part == 5 && $0.detail.contains("given twice") })
    }

    @Test("a capture from before the chain (format 1) is unchained: nothing to check, nothing claimed")
    func formatOne() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/witness-20261101T000000Z-0001.jsonl"
        try Self.write(
            [
                #"{"ts":"2026-11-01T00:00:00.000000Z","kind":"header","format":1,"tool":"ocpp-witness 0.1.0","started":"2026-11-01T00:00:00.000000Z","part":1}"#
            ], to: file)
        let result = CaptureVerifier().verify([file])
        #expect(result.files[0].verdict == .unchained)
        #expect(!result.tampered && !result.intact)
    }

    @Test("seal keys: OpenSSL's PEM is read, a wrong file is refused with what and where")
    func keys() throws {
        let key = SealKey.generate()
        let pem = try #require(key.privatePEM)
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"))
        let back = try SealKey(pem: pem)
        #expect(back.canSign && back.id == key.id)
        #expect(throws: SealKey.LoadError.self) { try SealKey(pem: "not a key", source: "seal.pem") }
        do {
            _ = try SealKey(pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", source: "seal.pem")
            Issue.record("a certificate was taken for a key")
        } catch {
            #expect("\(error)".hasPrefix("seal.pem: a PEM 'CERTIFICATE'"))
        }
    }
}
