import ChildProcesses
import Foundation

/// Other programs the tests run to completion (openssl, jq, make, python, the built binary).
package enum Program {
    package struct Result: Sendable {
        package var status: Int32
        package var output: String
        package var errors: String
    }

    /// Runs `path` with `arguments` (in `directory`, with `environment` if given, `input` on its standard
    /// input) to its end. Its output and errors are drained on threads of their own and its exit is awaited
    /// by polling: a blocking read on the concurrency pool would stall every other test for as long as the
    /// program runs (the pool has one thread per core).
    package static func run(
        _ path: String, _ arguments: [String], directory: URL? = nil, environment: [String: String]? = nil, input: Data? = nil
    ) async throws -> Result {
        let inputPipe = input.map { _ in Pipe() }
        let (process, output, errors) = try self.start(path, arguments, directory: directory, environment: environment, input: inputPipe)
        let outputReader = PipeReader(output)
        let errorReader = PipeReader(errors)
        if let inputPipe, let input {
            inputPipe.fileHandleForWriting.write(input)
            try inputPipe.fileHandleForWriting.close()
        }
        while process.isRunning || !outputReader.isDone || !errorReader.isDone {
            try await Task.sleep(for: .milliseconds(20))
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: outputReader.text(), errors: errorReader.text())
    }

    /// Starts `path` with its standard output and standard error on pipes (and its input from `input`, or
    /// /dev/null); the caller reads them and waits for it.
    package static func start(
        _ path: String, _ arguments: [String], directory: URL? = nil, environment: [String: String]? = nil, input: Pipe? = nil
    ) throws -> (process: ChildProcess, output: Pipe, errors: Pipe) {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = environment
        process.standardInput = input
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        return (process, output, errors)
    }

    /// The path of an executable on PATH, if installed.
    package static func find(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// Reads a pipe to its end on a thread of its own.
package final class PipeReader: @unchecked Sendable {
    // `collected` and `done` are guarded by `condition`.
    private let condition = NSCondition()
    private var collected = Data()
    private var done = false

    package init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            let data = handle.readDataToEndOfFile()
            self.condition.lock()
            self.collected = data
            self.done = true
            self.condition.broadcast()
            self.condition.unlock()
        }
    }

    /// Whether the writer has closed its end and everything is read.
    package var isDone: Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.done
    }

    /// What was read so far (everything, once `isDone`).
    package var data: Data {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.collected
    }

    /// Waits for the end of the pipe and returns all of it as text.
    package func text() -> String {
        self.condition.lock()
        while !self.done { self.condition.wait() }
        let data = self.collected
        self.condition.unlock()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A fresh path under the temporary folder (nothing is created there).
package func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("witness-\(name)-\(UUID().uuidString)").path
}

/// Polls `condition` until it holds or `seconds` pass; loaded machines get generous margins.
package func eventually(seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
