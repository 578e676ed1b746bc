import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OCPPWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif


/// Appends capture records to JSON Lines files from a thread of its own.
///
/// The event loops only enqueue; serialising, redacting, writing, rotating and fsyncing happen here,
/// many records per `write`. When the queue grows past the high watermark, `record` says so and the
/// caller stops reading from the network until `whenBelowLowWatermark` fires: the proxy slows down
/// rather than dropping records.
public final class CaptureWriter: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var directory: String
        public var filePrefix: String
        /// Start a new file once the current one reaches this size.
        public var rotateBytes: Int
        public var fsync: FsyncPolicy
        public var redactSecrets: Bool
        public var highWatermark: Int
        public var lowWatermark: Int
        /// Told, on the writer's thread, when writing starts failing (a full disk) and when it works again.
        public var onWriteEpisode: (@Sendable (String) -> Void)?
        /// Signs each file's seal (`--seal-key`); unsigned seals without it.
        public var sealKey: SealKey?

        public init(
            directory: String, filePrefix: String = "witness", rotateBytes: Int = 256 << 20,
            fsync: FsyncPolicy = .interval(milliseconds: 1000), redactSecrets: Bool = true,
            highWatermark: Int = 65_536, lowWatermark: Int = 16_384
        ) {
            self.directory = directory
            self.filePrefix = filePrefix
            self.rotateBytes = rotateBytes
            self.fsync = fsync
            self.redactSecrets = redactSecrets
            self.highWatermark = highWatermark
            self.lowWatermark = lowWatermark
        }
    }

    /// A capture file could not be created.
    public struct OpenError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot write capture file \(self.path): \(self.reason)" }
    }

    public let configuration: Configuration
    let header: CaptureHeader
    var serializer: CaptureSerializer
    let started = Timestamp.now()

    // Guarded by `condition`: 1 while there is work (or a close) to pick up.
    let condition = ConditionLock(value: 0)
    var queue: [CaptureEvent] = []
    /// Whether the writer sleeps until woken; while records keep coming it naps instead (see `run`).
    var dozing = true
    var inFlight = 0
    var closing = false
    /// The writer thread has written its last batch and ended.
    var stopped = false
    var waiters: [@Sendable () -> Void] = []
    var flushWaiters: [@Sendable () -> Void] = []
    var stats = CaptureStatistics()
    var files: [String] = []

    // Owned by the writer thread.
    var descriptor: CInt = -1
    var currentBytes = 0
    /// Lines in the current file: what `currentLine` falls back to when a write fails.
    var writtenLines = 0
    /// Writing has failed since `since` (the first failure), losing `lost` records; a `gap` record says so once
    /// writing works again.
    var failing: (since: Timestamp, lost: Int, error: String)?
    /// Records of the batch being written that were lost.
    var lostInBatch = 0
    var currentPath = ""
    var currentLine = 0
    /// The observer's records of the lines waiting in the batch's bytes, one per line (nil: a line it gets
    /// no record of), handed over only once their bytes are in the file: live analysis and the live page
    /// never cite a line a full disk lost.
    var observed: [CaptureRecord?] = []
    var headerBytes = 0
    var part = 0
    /// The current file's hash chain, to the last line placed in the batch's bytes.
    var chain = CaptureChain()
    /// The chain to the last line written: where `chain` falls back to when a write fails.
    var writtenChain = CaptureChain()
    /// The digest of the previous file's seal, which the next header names; nil for the first file, or when
    /// the previous file could not be sealed (`previousUnsealed`).
    var previousSeal: [UInt8]?
    var previousUnsealed = false
    var lastSync = DispatchTime.now()
    var dirty = false
    /// Envelopes and call correlation the proxy left to the writer thread.
    var completion: FrameCompletion
    var metrics = CaptureMetrics()

    let finished = ConditionLock(value: false)

    /// Called on the writer thread with every record once it is written (same file and line as a reader
    /// sees), so live analysis consumes exactly what an offline report will; a record that could not be
    /// written (a full disk) never reaches it.
    let observer: (@Sendable (CaptureRecord) -> Void)?

    /// Opens the first capture file (so a bad directory fails at start-up) and starts the writer thread.
    public init(
        configuration: Configuration, header: CaptureHeader, observer: (@Sendable (CaptureRecord) -> Void)? = nil
    ) throws {
        self.configuration = configuration
        self.header = header
        self.observer = observer
        self.completion = FrameCompletion(parsesMessages: observer != nil)
        self.serializer = CaptureSerializer(redactor: Redactor(enabled: configuration.redactSecrets))
        try Self.makeDirectory(configuration.directory)
        try self.openNextFile()
        let thread = Thread { [self] in
            Self.yieldToForwarding()
            Self.nameThisThread("capture-writer")
            self.run()
        }
        thread.start()
    }

    /// Enqueues an event. Returns false when the queue is above the high watermark: the caller should
    /// stop reading until `whenBelowLowWatermark` calls back. The event is queued either way.
    @discardableResult
    public func record(_ event: CaptureEvent) -> Bool {
        self.admit(event) == .accepted
    }

    /// Enqueues an event and says how full the queue is: `behind` above the high watermark, `full` at twice
    /// it. A frame event's `share`, counted in by its caller, is counted out when the frame is written, so the
    /// caller can tell a connection that filled the queue from one that did not. The event is queued either way.
    public func admit(_ event: CaptureEvent) -> RecorderAdmission {
        self.condition.lock()
        if self.closing {
            self.stats.recordsLost += 1
            self.condition.unlock()
            return .accepted
        }
        self.queue.append(event)
        let depth = self.queue.count + self.inFlight
        if depth > self.stats.maximumQueueDepth { self.stats.maximumQueueDepth = depth }
        // A napping writer comes back by itself within `napSeconds`; waking it for every record would
        // cost a context switch per message. It is woken when it sleeps, or when a large batch waits.
        if self.dozing || self.queue.count >= Self.wakeBatch {
            self.dozing = false
            self.condition.unlock(withValue: 1)
        } else {
            self.condition.unlock()
        }
        return depth < self.configuration.highWatermark ? .accepted : depth < 2 * self.configuration.highWatermark ? .behind : .full
    }

    /// Calls `callback` (on the writer thread, or at once) when the queue is below the low watermark.
    public func whenBelowLowWatermark(_ callback: @escaping @Sendable () -> Void) {
        self.condition.lock()
        let depth = self.queue.count + self.inFlight
        if depth < self.configuration.lowWatermark {
            self.condition.unlock()
            callback()
            return
        }
        self.waiters.append(callback)
        self.condition.unlock()
    }

    public var statistics: CaptureStatistics {
        self.condition.lock()
        defer { self.condition.unlock() }
        var stats = self.stats
        stats.queueDepth = self.queue.count + self.inFlight
        return stats
    }

    /// Paths of the files written so far, oldest first.
    public var filePaths: [String] {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.files
    }

    /// Waits until everything recorded so far is written (and fsynced unless the policy is `never`).
    /// After `close()` there is nothing left to write, and it returns at once.
    public func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.condition.lock()
            guard !self.stopped else {
                self.condition.unlock()
                continuation.resume()
                return
            }
            self.flushWaiters.append { continuation.resume() }
            self.condition.unlock(withValue: 1)
        }
    }

    /// Writes what is queued, syncs, closes the file and stops the thread. Later records are counted as lost.
    public func close() {
        self.condition.lock()
        self.closing = true
        self.condition.unlock(withValue: 1)
        self.finished.lock(whenValue: true)
        self.finished.unlock()
    }

    /// Closes the writer, and when it wrote nothing but file headers removes the files it created: a
    /// command that fails during start-up leaves no empty capture behind for a later report to pick up.
    /// Returns whether it removed them.
    @discardableResult
    public func closeDiscardingIfEmpty() -> Bool {
        self.close()
        self.condition.lock()
        let (written, files) = (self.stats.recordsWritten, self.files)
        self.condition.unlock()
        guard written == 0 else { return false }
        for file in files { unlink(file) }
        return true
    }

    func run() {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        // When each frame of the batch was seen (microseconds), for its latency.
        var seenTimes: [Int64] = []
        var napping = false
        while true {
            var timeout: Double
            switch self.configuration.fsync {
            case .interval(let milliseconds): timeout = Double(milliseconds) / 1000
            case .never, .everyBatch: timeout = 1
            }
            if napping { timeout = min(timeout, Self.napSeconds) }
            let gotWork = self.condition.lock(whenValue: 1, timeoutSeconds: timeout)
            if !gotWork { self.condition.lock() }
            // Records arrived since the last look: nap and take the next ones as a batch. A look that
            // finds nothing sends the writer to sleep until a record wakes it.
            napping = !self.queue.isEmpty
            self.dozing = !napping
            var batch = self.queue
            self.queue.removeAll(keepingCapacity: true)
            self.inFlight = batch.count
            let closing = self.closing
            let flushWaiters = self.flushWaiters
            self.flushWaiters.removeAll()
            self.condition.unlock(withValue: 0)

            var counts: [CaptureStatistics.MessageKey: CaptureStatistics.MessageCount] = [:]
            // Each event is moved out of the batch (a hole left in its place) and completed, written and
            // counted in place, so no event is copied and each is released while still in the cache.
            batch.withUnsafeMutableBufferPointer { events in
                for index in events.indices {
                    var event = CaptureEvent.hole
                    swap(&event, &events[index])
                    // Serialised straight into the batch's bytes; the observer gets a copy of the line.
                    var start = buffer.count
                    switch consume event {
                    case .frame(var frame):
                        let message = self.completion.complete(&frame)
                        let verbatim = self.serializer.append(frame, into: &buffer)
                        start = self.placeLine(at: start, in: &buffer)
                        if self.observer != nil {
                            self.keepForObserver(frame: frame, line: Array(buffer[start...]), message: message, verbatim: verbatim)
                        }
                        let action = frame.envelope?.action ?? frame.correlatedAction ?? frame.opcode.rawValue
                        let key = CaptureStatistics.MessageKey(direction: frame.direction.rawValue, action: action)
                        counts[key, default: .init()].add(bytes: frame.payload.readableBytes)
                        seenTimes.append(frame.ts.microseconds)
                        frame.share?.written()
                    case let record:
                        if case .record(.close, _, let connection?, _, _, _) = record { self.completion.closed(connection) }
                        self.serializer.append(record, into: &buffer)
                        start = self.placeLine(at: start, in: &buffer)
                        if self.observer != nil { self.keepForObserver(Array(buffer[start...])) }
                    }
                    if buffer.count >= 1 << 20 { self.writeOut(&buffer) }
                }
            }
            self.writeOut(&buffer)
            self.syncIfDue(force: closing || !flushWaiters.isEmpty)

            // How long the frames waited from being seen to being written.
            let now = Timestamp.now().microseconds
            var maximumLatency: Int64 = 0
            var totalLatency: Int64 = 0
            for seen in seenTimes {
                let latency = max(0, now - seen)
                maximumLatency = max(maximumLatency, latency)
                totalLatency += latency
                self.metrics.recordLatency(microseconds: latency)
            }
            var boundedCounts: [(CaptureStatistics.MessageKey, CaptureStatistics.MessageCount)] = []
            boundedCounts.reserveCapacity(counts.count)
            self.condition.lock()
            self.stats.recordsWritten += batch.count - self.lostInBatch
            self.lostInBatch = 0
            for (key, count) in counts {
                // Chargers choose action names; past the bound, new names share one key per direction so
                // that neither this table nor the metrics built from it grow without limit.
                var key = key
                if self.stats.messages[key] == nil, self.stats.messages.count >= CaptureStatistics.maximumMessageKeys {
                    key.action = CaptureStatistics.otherActions
                }
                self.stats.messages[key, default: .init()].messages += count.messages
                self.stats.messages[key, default: .init()].bytes += count.bytes
                boundedCounts.append((key, count))
            }
            self.stats.maximumRecordLatencyMicros = max(self.stats.maximumRecordLatencyMicros, maximumLatency)
            self.stats.totalRecordLatencyMicros += totalLatency
            self.stats.latencySamples += seenTimes.count
            self.inFlight = 0
            let totals = CaptureMetrics.Totals(self.stats)
            let depth = self.queue.count
            var released: [@Sendable () -> Void] = []
            if self.queue.count < self.configuration.lowWatermark {
                released = self.waiters
                self.waiters.removeAll()
            }
            let more = !self.queue.isEmpty
            self.condition.unlock(withValue: more ? 1 : 0)
            self.metrics.publish(totals, queueDepth: depth, counts: boundedCounts)
            seenTimes.removeAll(keepingCapacity: true)
            for callback in released { callback() }
            for callback in flushWaiters { callback() }
            if closing && !more {
                self.closeFile(last: true)
                // Flushes asked for after the last batch was taken are answered here: nothing will come.
                self.condition.lock()
                self.stopped = true
                let late = self.flushWaiters
                self.flushWaiters.removeAll()
                self.condition.unlock()
                for callback in late { callback() }
                self.finished.lock()
                self.finished.unlock(withValue: true)
                return
            }
        }
    }

    /// How long the writer naps between batches while records keep coming: the most a record waits for
    /// the writer, and at most this many wake-ups per second however high the message rate.
    static let napSeconds = 0.001
    /// Queued records that wake a napping writer at once.
    static let wakeBatch = 512
    /// Bytes a line's number and link add at most (`,"n":<20 digits>,"chain":"<32 hex>"`).
    static let linkAllowance = 72
    /// Bytes a seal takes at most: its time, part, key id, 64-hex digest and signature.
    static let sealAllowance = 320

    /// Counts the line just serialised at `start` of `buffer`, first rotating when it would push the file
    /// past its size (a record larger than the limit gets a file of its own). Returns where the line is now.
    func placeLine(at start: Int, in buffer: inout [UInt8]) -> Int {
        self.currentLine += 1
        // No part is open (it could not be created): `writeOut` tries again with the batch, and chains its
        // lines once the part and its header are there; no rotation before.
        guard self.descriptor >= 0 else { return start }
        // The line's link and the file's seal count against the size too.
        let limit = self.configuration.rotateBytes - Self.sealAllowance
        guard self.currentBytes + buffer.count + Self.linkAllowance > limit, self.currentBytes + start > self.headerBytes else {
            self.chain.chain(lineAt: start, in: &buffer)
            return start
        }
        let line = Array(buffer[start...])
        buffer.removeSubrange(start...)
        self.writeOut(&buffer)
        self.rotate()
        // The line is the first of the new file.
        self.currentLine += 1
        buffer.append(contentsOf: line)
        if self.descriptor >= 0 { self.chain.chain(lineAt: 0, in: &buffer) }
        return 0
    }

    /// Keeps the observer's record of a frame's line until the line is written (`deliverObserved`).
    func keepForObserver(frame: borrowing FrameEvent, line: [UInt8], message: JSONValue?, verbatim: Bool) {
        // Most frames: build the record from the event, which parses only the payload, not the whole line.
        if var record = self.serializer.record(of: frame, message: message, verbatim: verbatim, file: self.currentPath, line: self.currentLine) {
            // A copy of the line's bytes in the batch: the observer may keep it.
            record.text = line
            // The line's number and link, as the reader will find them (written out only if asked for).
            if self.descriptor >= 0 { record.chained(number: self.chain.lines, link: self.chain.link) }
            self.observed.append(record)
        } else {
            self.observed.append(Self.record(ofLine: line))
        }
    }

    /// Keeps the observer's record of another record's line until the line is written.
    func keepForObserver(_ line: [UInt8]) {
        self.observed.append(Self.record(ofLine: line))
    }

    /// A record read back from its line as written (with its line feed); its file and line are set when it
    /// is handed over.
    static func record(ofLine line: [UInt8]) -> CaptureRecord? {
        guard case .object(let fields) = try? line.withUnsafeBytes({ try JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }) else {
            return nil
        }
        var record = CaptureRecord(file: "", line: 0, fields: fields)
        record.text = line
        return record
    }

    /// Hands the observer the records of the lines just written, numbered as they stand in the file: the
    /// first of them is line `first` of `currentPath`.
    func deliverObserved(from first: Int) {
        defer { self.observed.removeAll(keepingCapacity: true) }
        guard let observer = self.observer else { return }
        for (offset, record) in self.observed.enumerated() {
            guard var record else { continue }
            record.file = self.currentPath
            record.line = first + offset
            observer(record)
        }
    }

    /// Names the calling thread for top, perf and gdb; on Linux a name given to Foundation's `Thread`
    /// before it starts is not applied.
    static func nameThisThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = try? Self.writeAll(fd, Array(name.utf8))
        closeDescriptor(fd)
    }

    /// Linux's SCHED_BATCH (`sched.h` defines it only with `_GNU_SOURCE`).
    static let batchPolicy: CInt = 3

    /// Puts the writer thread in the batch scheduling class: it gets its fair share of the CPU, so the
    /// queue still drains at full load, but waking up from its naps it no longer preempts an event loop
    /// that is forwarding. On a machine whose cores are busy, that keeps the recorder's batches out of
    /// the forwarding latency. (`ps -L -o tid,cls,comm` shows the thread as `B`.)
    static func yieldToForwarding() {
        #if os(Linux)
        var parameters = sched_param()
        parameters.sched_priority = 0
        _ = pthread_setschedparam(pthread_self(), Self.batchPolicy, &parameters)
        #endif
    }

    /// Creates `path` and its parents, like `mkdir -p`.
    static func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw OpenError(path: current, reason: String(cString: strerror(errno)))
            }
        }
    }

    static func pad(_ part: Int) -> String {
        let text = String(part)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }
}
