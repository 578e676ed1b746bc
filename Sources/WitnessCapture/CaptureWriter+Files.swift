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
    /// Writes the batch's lines. When the disk is full (or any write fails), forwarding goes on and the
    /// lines are lost: a partial write is cut back to the last whole line, the loss is counted (not as
    /// written), the episode is told when it begins, and once writing works again a `gap` record (from, to,
    /// records lost) is written after the first batch that went through, so the capture says what is missing.
    func writeOut(_ buffer: inout [UInt8]) {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        let lines = Self.countLines(buffer)
        // A part that could not be opened (the disk was full at rotation) is tried again with each batch,
        // under the same number: no series of empty parts.
        if self.descriptor < 0 {
            do {
                try self.openNextFile()
            } catch {
                self.observed.removeAll(keepingCapacity: true)
                self.lose(lines, because: "\(error)")
                return
            }
            // The batch's lines waited for this part: they follow its header in the chain.
            self.chainWaitingLines(&buffer)
        }
        var bytes = buffer
        var gapLine: [UInt8] = []
        if let failing = self.failing {
            gapLine = self.serializer.gap(from: failing.since, to: .now(), lost: failing.lost, error: failing.error)
            self.chain.chain(lineAt: 0, in: &gapLine)
            bytes += gapLine
        }
        do {
            try Self.writeAll(self.descriptor, bytes)
        } catch {
            // Nothing of the batch stays: the file ends with its last whole line, and the next batch is not
            // joined to half a record.
            _ = ftruncate(self.descriptor, off_t(self.currentBytes))
            _ = lseek(self.descriptor, off_t(self.currentBytes), SEEK_SET)
            self.currentLine = self.writtenLines
            self.chain = self.writtenChain
            // Lost with their lines: the observer never sees them.
            self.observed.removeAll(keepingCapacity: true)
            self.lose(lines, because: "writing \(self.currentPath): \(error)")
            return
        }
        self.currentBytes += bytes.count
        self.writtenChain = self.chain
        let first = self.writtenLines + 1
        self.writtenLines += lines + (gapLine.isEmpty ? 0 : 1)
        // Line numbers follow the file as written (a part reopened here, a gap record after the batch).
        self.currentLine = self.writtenLines
        self.deliverObserved(from: first)
        if !gapLine.isEmpty {
            if self.observer != nil {
                self.keepForObserver(gapLine)
                self.deliverObserved(from: self.writtenLines)
            }
            if let failing = self.failing {
                self.configuration.onWriteEpisode?(
                    "capture writing again: \(failing.lost) records lost since \(failing.since.rfc3339) (\(failing.error)); a gap record says so in \(self.currentPath)"
                )
            }
            self.failing = nil
        }
        self.dirty = true
        self.condition.lock()
        self.stats.bytesWritten += bytes.count
        self.condition.unlock()
    }

    /// Line feeds in `bytes`, found with memchr: a byte-by-byte count cost as much as a tenth of the writer's
    /// thread.
    static func countLines(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { raw in
            guard var at = raw.baseAddress else { return 0 }
            let end = at + raw.count
            var count = 0
            while at < end, let found = memchr(at, 0x0A, end - at) {
                count += 1
                at = UnsafeRawPointer(found) + 1
            }
            return count
        }
    }

    /// Counts `lines` records as lost, and tells the start of an episode of failed writes.
    func lose(_ lines: Int, because error: String) {
        self.lostInBatch += lines
        self.noteError(error, lost: lines)
        if self.failing == nil {
            self.failing = (.now(), 0, error)
            self.configuration.onWriteEpisode?("capture cannot be written (\(error)); forwarding goes on, records are lost until writing works again")
        }
        self.failing?.lost += lines
    }

    /// Closes the current part and opens the next; when that fails, `writeOut` tries again with the next batch.
    func rotate() {
        self.closeFile(last: false)
        do {
            try self.openNextFile()
        } catch {
            // Records for the missing file are counted as lost by writeOut, which tries to open it again.
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
        let part = self.part + 1
        let name = "\(self.configuration.filePrefix)-\(self.started.fileNameStamp)-\(Self.pad(part)).jsonl"
        let path = self.configuration.directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OpenError(path: path, reason: String(cString: strerror(errno))) }
        var headerLine = self.serializer.header(
            self.header, part: part, started: self.started, previousSeal: self.previousSeal.map(CaptureChain.hex),
            previousUnsealed: self.previousUnsealed
        )
        var chain = CaptureChain()
        chain.chain(lineAt: 0, in: &headerLine)
        do {
            try Self.writeAll(fd, headerLine)
        } catch {
            // A part without its header is no part: removed, and its number taken again by the next try.
            closeDescriptor(fd)
            unlink(path)
            throw OpenError(path: path, reason: "\(error)")
        }
        self.part = part
        self.descriptor = fd
        self.chain = chain
        self.writtenChain = chain
        self.writtenLines = 1
        self.currentBytes = headerLine.count
        self.headerBytes = headerLine.count
        self.currentPath = path
        self.currentLine = 1
        // Written already: handed over now, before the lines of a batch that waits for this part.
        if let observer = self.observer, var record = Self.record(ofLine: headerLine) {
            record.file = path
            record.line = 1
            observer(record)
        }
        self.condition.lock()
        self.files.append(path)
        self.stats.filesWritten += 1
        self.stats.bytesWritten += headerLine.count
        self.condition.unlock()
    }

    /// Chains the lines of `buffer`, placed while no part was open, after the header of the part just opened.
    /// The observer's copies of them are replaced by the lines as they will be written.
    func chainWaitingLines(_ buffer: inout [UInt8]) {
        var chained: [UInt8] = []
        chained.reserveCapacity(buffer.count + 64 * self.observed.count)
        var start = 0
        var index = 0
        while start < buffer.count, let end = buffer[start...].firstIndex(of: 0x0A) {
            let lineStart = chained.count
            chained.append(contentsOf: buffer[start...end])
            self.chain.chain(lineAt: lineStart, in: &chained)
            if index < self.observed.count, self.observed[index] != nil {
                let line = Array(chained[lineStart...])
                self.observed[index]?.text = line
                self.observed[index]?.chained(number: self.chain.lines, link: self.chain.link)
            }
            index += 1
            start = end + 1
        }
        buffer = chained
    }

    /// Ends the current file with its seal (signed with the seal key, when there is one) and closes it. `last`:
    /// the writer is closing, no part follows.
    func closeFile(last: Bool) {
        guard self.descriptor >= 0 else { return }
        self.previousSeal = nil
        self.previousUnsealed = true
        // A file whose last batch was lost stays unsealed: its seal would vouch for records it does not hold.
        if self.failing == nil {
            var line = self.serializer.seal(part: self.part, last: last, key: self.configuration.sealKey?.id)
            var chain = self.chain
            let digest = chain.chainSeal(lineAt: 0, in: &line)
            if let key = self.configuration.sealKey, let signature = try? key.sign(digest) {
                line.append(contentsOf: #","signature":""#.utf8)
                line.append(contentsOf: Data(signature).base64EncodedString().utf8)
                line.append(UInt8(ascii: "\""))
            }
            line.append(contentsOf: "}\n".utf8)
            do {
                try Self.writeAll(self.descriptor, line)
                self.previousSeal = digest
                self.previousUnsealed = false
                self.writtenLines += 1
                if let observer = self.observer, var record = Self.record(ofLine: line) {
                    record.file = self.currentPath
                    record.line = self.writtenLines
                    observer(record)
                }
                self.condition.lock()
                self.stats.bytesWritten += line.count
                self.condition.unlock()
            } catch {
                _ = ftruncate(self.descriptor, off_t(self.currentBytes))
                self.noteError("sealing \(self.currentPath): \(error)", lost: 0)
            }
        }
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
