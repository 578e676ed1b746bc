import ArgumentParser
import ChildProcesses
import Foundation
import OCPPWire
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process started for the benchmark, stopped with SIGTERM (then SIGKILL).
final class Child: @unchecked Sendable {
    let process = ChildProcess()
    var pid: Int32 { self.process.processIdentifier }
    /// Where its output and errors go.
    private(set) var log = ""

    static func start(_ path: String, _ arguments: [String], log: String) throws -> Child {
        let child = Child()
        child.log = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        child.process.executableURL = URL(fileURLWithPath: path)
        child.process.arguments = arguments
        child.process.standardOutput = FileHandle(forWritingAtPath: log)
        child.process.standardError = FileHandle(forWritingAtPath: log)
        try child.process.run()
        return child
    }

    func stop() {
        guard self.process.isRunning else { return }
        kill(self.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(15)
        while self.process.isRunning && Date() < deadline { usleep(20_000) }
        if self.process.isRunning { kill(self.pid, SIGKILL) }
        self.process.waitUntilExit()
    }
}

/// CPU seconds a process spent in its own code and in the kernel on its behalf (system calls, and on
/// loopback the TCP work of the packets it sends).
struct CPUTime {
    var user: Double = 0
    var kernel: Double = 0

    var total: Double { self.user + self.kernel }

    static func - (lhs: CPUTime, rhs: CPUTime) -> CPUTime {
        CPUTime(user: lhs.user - rhs.user, kernel: lhs.kernel - rhs.kernel)
    }

    /// "total (user + kernel)" seconds per million of `messages`.
    func perMillion(_ messages: Int) -> String {
        let millions = max(1, Double(messages)) / 1e6
        return String(format: "%.1f (%.1f + %.1f)", self.total / millions, self.user / millions, self.kernel / millions)
    }
}

/// CPU time and resident memory of a process (and its children, for nginx's workers), from /proc.
struct ProcessProbe {
    var pid: Int32
    var includeChildren: Bool

    private var pids: [Int32] {
        guard self.includeChildren else { return [self.pid] }
        var result = [self.pid]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let candidate = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { continue }
            let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == self.pid { result.append(candidate) }
        }
        return result
    }

    var cpuTime: CPUTime {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return self.pids.reduce(CPUTime()) { total, pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.range(of: ")")
            else { return total }
            let fields = stat[close.upperBound...].split(separator: " ")
            // After the command: state(0) ppid(1) ... utime(11) stime(12)
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return total }
            return CPUTime(user: total.user + user / ticks, kernel: total.kernel + system / ticks)
        }
    }

    var residentBytes: Int {
        self.pids.reduce(0) { total, pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
            else { return total }
            return total + kib * 1024
        }
    }
}

/// This executable, which the benchmark starts again as the CSMS simulator and the proxy.
func selfPath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// `SOCK_STREAM` as `socket(2)` takes it: an enum case in Glibc, a plain constant on Darwin.
#if canImport(Glibc)
private let streamSocketType = Int32(SOCK_STREAM.rawValue)
#else
private let streamSocketType = SOCK_STREAM
#endif

/// 127.0.0.1:`port` as the socket calls take it.
private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return address
}

/// Connects `fd` to 127.0.0.1:`port`; whether it worked.
private func connectLoopback(_ fd: CInt, port: Int) -> Bool {
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, streamSocketType, 0)
    guard fd >= 0 else { throw ValidationError("cannot create a socket") }
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ValidationError("cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// One `GET path` to 127.0.0.1:`port` over a plain socket, read to the server's close; returns the status
/// and the size of the whole response.
func httpGet(port: Int, path: String) throws -> (status: Int, bytes: Int) {
    let fd = socket(AF_INET, streamSocketType, 0)
    guard fd >= 0 else { throw ValidationError("cannot open a socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard connectLoopback(fd, port: port) else { throw ValidationError("cannot connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
        throw ValidationError("cannot send to 127.0.0.1:\(port)")
    }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response.append(contentsOf: chunk[..<count])
    }
    let statusLine = String(decoding: response.prefix(while: { $0 != 0x0D }), as: UTF8.self)
    return (Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0, response.count)
}

extension Child {
    /// Waits until the child accepts connections on `port`; one that does not is stopped, not left behind.
    func waitUntilListening(on port: Int) async throws {
        do {
            try await waitForPort(port, startedBy: self)
        } catch {
            self.stop()
            throw error
        }
    }
}

/// Returns once something accepts connections on 127.0.0.1:`port`; gives up after 30 s. When `child` (the
/// process meant to listen there) ends first, says so with the end of its log rather than waiting it out.
func waitForPort(_ port: Int, startedBy child: Child? = nil) async throws {
    let deadline = Date().addingTimeInterval(30)
    while Date() < deadline {
        if let child, !child.process.isRunning {
            let log = (try? String(contentsOfFile: child.log, encoding: .utf8)) ?? ""
            let tail = log.split(separator: "\n").suffix(5).joined(separator: "\n  ")
            throw ValidationError(
                "\(child.process.executableURL?.lastPathComponent ?? "a child") ended (status \(child.process.terminationStatus)) before listening on 127.0.0.1:\(port); the end of its log:\n  \(tail)"
            )
        }
        let fd = socket(AF_INET, streamSocketType, 0)
        let connected = connectLoopback(fd, port: port)
        close(fd)
        if connected { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw ValidationError("nothing listens on 127.0.0.1:\(port) after 30 s")
}

/// Cores and CPU model, for the benchmark's title line.
func machineDescription() -> String {
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    return "\(System.coreCount) cores, \(cpu)"
}

func fmtMs(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }
func fmtMiB(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

/// nginx as the benchmarks' peer: a WebSocket reverse proxy to the CSMS simulator, as an operator would
/// configure one (HTTP/1.1 upstream, Upgrade and Connection passed on, no buffering, no access log).
struct NginxProxyConfiguration {
    /// Terminating the chargers' TLS and opening nginx's own to the backend.
    struct TLS {
        var certificate: String
        var key: String
        /// The CA the backend's certificate is verified against.
        var caCertificate: String
        /// `proxy_ssl_session_reuse`: resume TLS sessions to the backend (nginx's default).
        var sessionReuse: Bool
    }

    var port: Int
    var backendPort: Int
    /// Where nginx keeps its pid, logs and temporary files.
    var directory: String
    var tls: TLS?

    var text: String {
        let listen = "listen 127.0.0.1:\(self.port)\(self.tls == nil ? "" : " ssl") backlog=4096;"
        let serverTLS = self.tls.map { "ssl_certificate \($0.certificate); ssl_certificate_key \($0.key);" } ?? ""
        let upstreamTLS = self.tls.map {
            "proxy_ssl_trusted_certificate \($0.caCertificate); proxy_ssl_verify on; proxy_ssl_name localhost; proxy_ssl_server_name on; "
                + "proxy_ssl_session_reuse \($0.sessionReuse ? "on" : "off");"
        } ?? ""
        return """
            daemon off;
            worker_processes auto;
            worker_rlimit_nofile 65536;
            pid \(self.directory)/nginx.pid;
            error_log \(self.directory)/error.log warn;
            events { worker_connections 32768; }
            http {
                access_log off;
                client_body_temp_path \(self.directory); proxy_temp_path \(self.directory); fastcgi_temp_path \(self.directory);
                uwsgi_temp_path \(self.directory); scgi_temp_path \(self.directory);
                map $http_upgrade $connection_upgrade { default upgrade; '' close; }
                server {
                    \(listen)
                    \(serverTLS)
                    location / {
                        proxy_pass \(self.tls == nil ? "http" : "https")://127.0.0.1:\(self.backendPort);
                        \(upstreamTLS)
                        proxy_http_version 1.1;
                        proxy_set_header Upgrade $http_upgrade;
                        proxy_set_header Connection $connection_upgrade;
                        proxy_set_header Host $host;
                        proxy_read_timeout 3600s;
                        proxy_buffering off;
                    }
                }
            }
            """
    }

    /// Writes `nginx.conf` into the directory and returns its path.
    func write() throws -> String {
        let path = self.directory + "/nginx.conf"
        try self.text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// The recorder's queue peak and losses, from the statistics the proxy wrote when it stopped: the
/// recorder keeps up when its queue stays far below the high watermark (65,536 records), above which
/// chargers are paused.
func recorderReport(statistics: String, log: String) -> String {
    guard let text = try? String(contentsOfFile: statistics, encoding: .utf8), let json = try? JSONParser.parse(text),
        let peak = json["recorder"]?["maximumQueueDepth"]?.intValue, let lost = json["recorder"]?["recordsLost"]?.intValue
    else {
        return "the proxy did not write its statistics (see \(log))"
    }
    return "recorder queue peaked at \(peak) records (chargers are paused above 65536), \(lost) records lost"
}
