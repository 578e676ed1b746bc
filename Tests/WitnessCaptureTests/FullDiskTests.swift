import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OCPPWire
import Testing
import WitnessCapture

#if canImport(Glibc)
import Glibc
#endif

/// A real full disk: a 256 KiB tmpfs (mounting needs root, as the packet-capture tests do).
@Suite("A full disk")
struct FullDiskTests {
    static let canMount = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/mount")

    static func run(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/\(arguments[0])")
        process.arguments = Array(arguments.dropFirst())
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func frame(_ n: Int) -> CaptureEvent {
        let text = #"[2,"m\#(n)","DataTransfer",{"vendorId":"fill","data":"\#(String(repeating: "x", count: 200))"}]"#
        let buffer = ByteBuffer(string: text)
        return .frame(FrameEvent(ts: .now(), connection: 1, chargePoint: "CP-1", direction: .toCSMS, opcode: .text, payload: buffer, envelope: try? OCPPEnvelope.parse(buffer).get()))
    }

    @Test(
        "records that cannot be written are lost whole, counted as lost, logged when it begins and ends, and named by a gap record once space returns",
        .enabled(if: canMount, "needs root to mount a small tmpfs")
    )
    func fullDisk() async throws {
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer {
            _ = Self.run(["umount", mountPoint])
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        try #require(Self.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mountPoint]) == 0)
        // Most of the space is taken by something else.
        let filler = mountPoint + "/filler"
        try Data(count: 160 << 10).write(to: URL(fileURLWithPath: filler))

        let episodes = NIOLockedValueBox<[String]>([])
        var configuration = CaptureWriter.Configuration(directory: mountPoint + "/capture", rotateBytes: 64 << 10, fsync: .never)
        configuration.onWriteEpisode = { message in episodes.withLockedValue { $0.append(message) } }
        // What live analysis would be handed: only records whose lines are in the files.
        let observed = NIOLockedValueBox<[String]>([])
        let writer = try CaptureWriter(configuration: configuration, header: CaptureHeader()) { record in
            let name = URL(fileURLWithPath: record.file).lastPathComponent
            observed.withLockedValue { $0.append("\(name):\(record.line) \(record.kind ?? "?") \(record.messageId ?? "")") }
        }
        // About 250 KiB of records into 96 KiB of space, over several parts.
        for n in 0..<1000 {
            writer.record(self.frame(n))
            if n % 100 == 99 { await writer.flush() }
        }
        await writer.flush()
        let full = writer.statistics
        #expect(full.recordsLost > 0)
        #expect(full.recordsWritten + full.recordsLost == 1000, "written \(full.recordsWritten), lost \(full.recordsLost)")
        // Nearly full, a smaller batch may still fit: episodes can end and begin again, each told.
        #expect(episodes.withLockedValue { $0.first?.contains("cannot be written") } == true)

        // Space returns.
        try FileManager.default.removeItem(atPath: filler)
        for n in 1000..<1010 { writer.record(self.frame(n)) }
        writer.close()
        let told = episodes.withLockedValue { $0 }
        #expect(told.count % 2 == 0 && told.count >= 2, "\(told)")
        #expect(told.last?.contains("writing again") == true)
        #expect(writer.statistics.recordsLost == full.recordsLost)

        // Every line of every part is a whole record; no part is empty; the gap record counts what was lost.
        let files = try CaptureReader.captureFiles(at: mountPoint + "/capture")
        for file in files {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.hasSuffix("\n"), "\(file) ends mid-record")
            #expect(text.contains(#""kind":"header""#), "\(file) has no header")
        }
        let reader = try CaptureReader(paths: [mountPoint + "/capture"])
        let records = Array(reader)
        #expect(reader.issues.isEmpty, "\(reader.issues)")
        let gaps = records.filter { $0.kind == "gap" }
        // One gap record per episode, together naming every lost record.
        #expect(gaps.count == told.count / 2)
        #expect(gaps.compactMap { $0.fields["recordsLost"]?.intValue }.reduce(0, +) == full.recordsLost)
        let frames = records.filter { $0.kind == "frame" }
        #expect(frames.count == 1010 - full.recordsLost)
        #expect(frames.last?.messageId == "m1009")
        // The observer was handed exactly the records in the files, at their lines: none that a full disk lost.
        let inFiles = records.map { "\(URL(fileURLWithPath: $0.file).lastPathComponent):\($0.line) \($0.kind ?? "?") \($0.messageId ?? "")" }
        let handed = observed.withLockedValue { $0 }
        #expect(handed.count == inFiles.count)
        let same = handed == inFiles
        #expect(same, "first difference: \(zip(handed, inFiles).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "in length")")

        // What was lost is a gap, not tampering: every link holds; a part the disk could not take a seal for is
        // unsealed, and the header after it says so.
        let verified = CaptureVerifier().verify(files)
        #expect(!verified.tampered, "\(verified.files.compactMap(\.firstProblem)) \(verified.sequences)")
        #expect(verified.files.allSatisfy { $0.verdict == .intact || $0.verdict == .unsealed })
        #expect(verified.files.last?.verdict == .intact)
        #expect(verified.files.flatMap(\.gaps).map(\.recordsLost).reduce(0, +) == full.recordsLost)
    }
}
