import ArgumentParser
import ChildProcesses
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A set of CPUs in the notation `taskset -c` and `/proc/<pid>/status` use: `0-3,6`.
struct CPUList: Equatable, CustomStringConvertible {
    let cpus: [Int]

    init(parsing text: String, option: String) throws {
        var cpus = Set<Int>()
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(bounds.count), let first = bounds.first ?? nil, let last = bounds.last ?? nil, first <= last else {
                throw ValidationError("\(option) '\(text)': expected CPU numbers and ranges such as 0-3,6")
            }
            guard last < online else {
                throw ValidationError("\(option) '\(text)': CPU \(last) does not exist; this machine has CPUs 0-\(online - 1)")
            }
            cpus.formUnion(first...last)
        }
        self.cpus = cpus.sorted()
    }

    /// Reads the CPUs a process may run on, from its `Cpus_allowed_list`.
    init?(allowedFor pid: Int32) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
            let list = try? CPUList(parsing: String(line.dropFirst("Cpus_allowed_list:".count)).trimmingCharacters(in: .whitespaces), option: "")
        else { return nil }
        self = list
    }

    var description: String {
        var ranges: [String] = []
        var index = 0
        while index < self.cpus.count {
            var end = index
            while end + 1 < self.cpus.count && self.cpus[end + 1] == self.cpus[end] + 1 { end += 1 }
            ranges.append(end == index ? "\(self.cpus[index])" : "\(self.cpus[index])-\(self.cpus[end])")
            index = end + 1
        }
        return ranges.joined(separator: ",")
    }

    /// Restricts every thread of this process, and the threads and processes it starts later, to these CPUs.
    func pinCurrentProcess() throws {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: try Self.taskset())
        process.arguments = ["--all-tasks", "--cpu-list", "--pid", self.description, String(getpid())]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ValidationError("--load-cpus \(self): taskset could not pin the load generator: \(reason)")
        }
    }

    private static func taskset() throws -> String {
        guard let taskset = ["/usr/bin/taskset", "/bin/taskset"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw ValidationError("pinning to CPUs needs taskset (Debian package util-linux)")
        }
        return taskset
    }

    /// The command that starts `path` on these CPUs: through `taskset`, so that processes it forks (nginx's
    /// workers) start there too.
    func command(_ path: String, _ arguments: [String]) throws -> (path: String, arguments: [String]) {
        (try Self.taskset(), ["--cpu-list", self.description, path] + arguments)
    }
}
