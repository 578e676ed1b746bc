import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OCPPWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif


/// The writer thread's files: writing batches out, rotation at the size limit, fsync by policy, opening
/// the next part with its header, and errors that lose records.
extension CaptureWriter {
    func writeOut(_ buffer: inout [UInt8]) {
        guard !buffer.isEmpty else { return }
        guard self.descriptor >= 0 else {
            self.noteError("no capture file open", lost: buffer.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
            buffer.removeAll(keepingCapacity: true)
            return
        }
        do {
            try Self.writeAll(self.descriptor, buffer)
            self.currentBytes += buffer.count
            self.dirty = true
            self.condition.lock()
            self.stats.bytesWritten += buffer.count
            self.condition.unlock()
        } catch {
            self.noteError("writing \(self.files.last ?? "capture"): \(error)", lost: buffer.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// `message` is the frame's message when it has already been parsed; `verbatim` what the serializer
    /// returned for the line.
    func rotate() {
        self.closeFile()
        do {
            try self.openNextFile()
        } catch {
            // Records for the missing file are counted as lost by writeOut.
            self.noteError("\(error)", lost: 0)
        }
    }

    func syncIfDue(force: Bool) {
        guard self.dirty, self.descriptor >= 0 else { return }
        switch self.configuration.fsync {
        case .never:
            return
        case .everyBatch:
            break
        case .interval(let milliseconds):
            let elapsed = DispatchTime.now().uptimeNanoseconds - self.lastSync.uptimeNanoseconds
            if !force && elapsed < UInt64(milliseconds) * 1_000_000 { return }
        }
        fsync(self.descriptor)
        self.lastSync = DispatchTime.now()
        self.dirty = false
    }

    func openNextFile() throws {
        self.part += 1
        let name = "\(self.configuration.filePrefix)-\(self.started.fileNameStamp)-\(Self.pad(self.part)).jsonl"
        let path = self.configuration.directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OpenError(path: path, reason: String(cString: strerror(errno))) }
        self.descriptor = fd
        let headerLine = self.serializer.header(self.header, part: self.part, started: self.started)
        try Self.writeAll(fd, headerLine)
        self.currentBytes = headerLine.count
        self.headerBytes = headerLine.count
        self.currentPath = path
        self.currentLine = 1
        self.notifyObserver(headerLine)
        self.condition.lock()
        self.files.append(path)
        self.stats.filesWritten += 1
        self.stats.bytesWritten += headerLine.count
        self.condition.unlock()
    }

    func closeFile() {
        guard self.descriptor >= 0 else { return }
        if self.configuration.fsync != .never { fsync(self.descriptor) }
        closeDescriptor(self.descriptor)
        self.descriptor = -1
        self.dirty = false
    }

    func noteError(_ message: String, lost: Int) {
        self.condition.lock()
        self.stats.writeErrors += 1
        self.stats.recordsLost += lost
        self.stats.lastError = message
        self.condition.unlock()
    }

    static func writeAll(_ fd: CInt, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw OpenError(path: "fd \(fd)", reason: String(cString: strerror(errno)))
                }
                offset += written
            }
        }
    }
}
