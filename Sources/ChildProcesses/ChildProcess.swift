import Foundation

#if os(Linux)
import CSpawn
import Glibc

/// A child process, started with `posix_spawn`: the part of Foundation's `Process` that the benchmarks
/// and the tests use, with the same names.
///
/// On Linux, `Process.run()` looks for the highest open descriptor by copying each `/proc/self/fd` entry
/// as a whole 256-byte `dirent` name, reading past glibc's buffer; with many descriptors open (a test
/// process full of sockets) that crashes now and then (swift-corelibs-foundation #5472, fixed after Swift
/// 6.3.1). This one lets the C library close what the child must not inherit
/// (`posix_spawn_file_actions_addclosefrom_np`, glibc 2.34).
package final class ChildProcess: @unchecked Sendable {
    package var executableURL: URL?
    package var arguments: [String]?
    /// The child's environment; nil: this process's.
    package var environment: [String: String]?
    package var currentDirectoryURL: URL?
    /// A `Pipe`, a `FileHandle`, or nil (or `FileHandle.nullDevice`) for /dev/null; by default the parent's own.
    package var standardInput: Any? = FileHandle.standardInput
    package var standardOutput: Any? = FileHandle.standardOutput
    package var standardError: Any? = FileHandle.standardError

    package private(set) var processIdentifier: Int32 = 0
    private let exit = NSCondition()
    private var started = false
    private var status: Int32?

    package init() {}

    package func run() throws {
        guard let path = self.executableURL?.path else { throw ChildProcessError("no executable to run") }
        guard !self.started else { throw ChildProcessError("\(path) was started already") }
        var actions = posix_spawn_file_actions_t()
        try Self.check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init")
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child's ends of pipes are closed here once it has them.
        var childEnds: [FileHandle] = []
        func connect(_ stream: Any?, to descriptor: Int32, childReads: Bool) throws {
            switch stream {
            case let pipe as Pipe:
                let end = childReads ? pipe.fileHandleForReading : pipe.fileHandleForWriting
                try Self.check(posix_spawn_file_actions_adddup2(&actions, end.fileDescriptor, descriptor), "adddup2")
                childEnds.append(end)
            case let handle as FileHandle where handle.fileDescriptor >= 0:
                // (FileHandle.nullDevice has no descriptor: it is /dev/null, below.)
                if handle.fileDescriptor != descriptor {
                    try Self.check(posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, descriptor), "adddup2")
                }
            default:
                try Self.check(
                    posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", childReads ? O_RDONLY : O_WRONLY, 0), "addopen"
                )
            }
        }
        try connect(self.standardInput, to: 0, childReads: true)
        try connect(self.standardOutput, to: 1, childReads: false)
        try connect(self.standardError, to: 2, childReads: false)
        // Nothing else of this process leaks into the child (a pipe's other end held open would keep its
        // reader from ever seeing the end of it).
        let closed = cspawn_file_actions_addclosefrom(&actions, 3)
        guard closed != ENOSYS else { throw ChildProcessError("starting \(path) needs glibc 2.34 or later (posix_spawn_file_actions_addclosefrom_np)") }
        try Self.check(closed, "addclosefrom")
        if let directory = self.currentDirectoryURL?.path {
            try Self.check(cspawn_file_actions_addchdir(&actions, directory), "addchdir \(directory)")
        }

        var attributes = posix_spawnattr_t()
        try Self.check(posix_spawnattr_init(&attributes), "posix_spawnattr_init")
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, as Foundation does; no signal blocked (threads here may block some, and a
        // child would inherit that), and SIGPIPE back to its default (this process ignores it).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        try Self.check(posix_spawnattr_setsigdefault(&attributes, &defaults), "setsigdefault")
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        try Self.check(posix_spawnattr_setsigmask(&attributes, &unblocked), "setsigmask")
        try Self.check(
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)), "setflags"
        )

        let argv = ([path] + (self.arguments ?? [])).map { strdup($0) } + [nil]
        let environment = self.environment ?? ProcessInfo.processInfo.environment
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw ChildProcessError("cannot start \(path): \(String(cString: strerror(spawned)))") }
        for end in childEnds { try? end.close() }
        self.processIdentifier = pid
        self.started = true
        // One thread per child waits for it, so that `waitUntilExit` and `isRunning` never race to reap it.
        let child = pid
        let waiter = Thread { [self] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
            self.exit.lock()
            self.status = status
            self.exit.broadcast()
            self.exit.unlock()
        }
        waiter.name = "child \(pid)"
        waiter.start()
    }

    package var isRunning: Bool {
        self.exit.lock()
        defer { self.exit.unlock() }
        return self.started && self.status == nil
    }

    package func waitUntilExit() {
        self.exit.lock()
        defer { self.exit.unlock() }
        while self.started && self.status == nil { self.exit.wait() }
    }

    /// The exit code, or the number of the signal that ended the child (as Foundation's `Process` has it).
    package var terminationStatus: Int32 {
        self.exit.lock()
        defer { self.exit.unlock() }
        guard let status = self.status else { return 0 }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : signal
    }

    /// SIGTERM.
    package func terminate() { self.signal(SIGTERM) }
    /// SIGINT.
    package func interrupt() { self.signal(SIGINT) }

    private func signal(_ number: Int32) {
        guard self.isRunning else { return }
        kill(self.processIdentifier, number)
    }

    private static func check(_ result: Int32, _ what: String) throws {
        guard result == 0 else { throw ChildProcessError("\(what): \(String(cString: strerror(result)))") }
    }
}

package struct ChildProcessError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
#else
/// Foundation's `Process`, which has no such trouble where Foundation is Apple's.
package typealias ChildProcess = Process
#endif
