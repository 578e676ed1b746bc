import ChildProcesses
import Foundation
import Testing

@Suite("Child processes")
struct ChildProcessTests {
    func run(_ executable: String, _ arguments: [String], configure: (ChildProcess) -> Void = { _ in }) throws -> (status: Int32, output: String, errors: String) {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        configure(process)
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text, errorText)
    }

    @Test("runs a program with arguments, environment and folder, and reports its output and exit code")
    func exitCodeAndOutput() throws {
        let folder = FileManager.default.temporaryDirectory.resolvingSymlinksInPath()
        let result = try self.run("/bin/sh", ["-c", "echo \"$GREETING\" from $(pwd); echo oops >&2; exit 3"]) { process in
            process.environment = ["GREETING": "hello", "PATH": "/usr/bin:/bin"]
            process.currentDirectoryURL = folder
        }
        #expect(result.status == 3)
        #expect(result.output == "hello from \(folder.path)\n")
        #expect(result.errors == "oops\n")
    }

    @Test("a child ended by a signal reports the signal, and is no longer running")
    func signal() throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        process.standardOutput = nil
        try process.run()
        #expect(process.isRunning)
        process.terminate()
        process.waitUntilExit()
        #expect(!process.isRunning)
        #expect(process.terminationStatus == SIGTERM)
    }

    @Test("the child inherits only its three standard descriptors, so a pipe's reader sees its end")
    func noInheritedDescriptors() throws {
        // A pipe the child is not given: a child holding its write end would keep its reader waiting forever.
        let unrelated = Pipe()
        defer { try? unrelated.fileHandleForWriting.close() }
        let result = try self.run("/bin/ls", ["/proc/self/fd"])
        let descriptors = Set(result.output.split(separator: "\n").compactMap { Int($0) })
        // 0, 1 and 2, and the one ls reads the folder through.
        #expect(descriptors.count == 4 && descriptors.isSuperset(of: [0, 1, 2]), "\(descriptors)")
    }

    @Test("children start reliably while thousands of descriptors are open")
    func manyDescriptors() throws {
        let pipes = (0..<1000).map { _ in Pipe() }
        defer { for pipe in pipes { try? pipe.fileHandleForWriting.close() } }
        for _ in 0..<50 {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/bin/true")
            process.standardOutput = nil
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
    }

    @Test("FileHandle.nullDevice and nil are /dev/null")
    func nullDevice() throws {
        let result = try self.run("/bin/sh", ["-c", "cat; echo done"]) { process in
            process.standardInput = FileHandle.nullDevice
        }
        #expect(result.status == 0 && result.output == "done\n")
        let quiet = ChildProcess()
        quiet.executableURL = URL(fileURLWithPath: "/bin/sh")
        quiet.arguments = ["-c", "echo lost; echo kept >&2"]
        let errors = Pipe()
        quiet.standardOutput = nil
        quiet.standardError = errors
        try quiet.run()
        #expect(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "kept\n")
        quiet.waitUntilExit()
        #expect(quiet.terminationStatus == 0)
    }

    @Test("a missing program is an error that names it")
    func missing() {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/nonexistent/program")
        #expect { try process.run() } throws: { "\($0)".contains("/nonexistent/program") }
    }
}
