import NIOCore
import OCPPWire
import Testing
import WitnessCapture

@testable import WitnessProxy

/// The relay's per-side data path as plain values: frames cut from reads, the read gate, held frames and their
/// timer, and the reassembly of messages for the record.
@Suite("The relay's data path, as values")
struct RelayStateTests {
    static let mask = WebSocketMask(1, 2, 3, 4)

    static func frame(_ text: String, opcode: WebSocketWireOpcode = .text, fin: Bool = true, masked: Bool = true, rsv1: Bool = false) -> ByteBuffer {
        var bytes = WebSocketFrameHeader.frame(fin: fin, opcode: opcode, maskKey: masked ? Self.mask : nil, payload: ByteBuffer(string: text))
        if rsv1 { bytes.setInteger(bytes.getInteger(at: 0, as: UInt8.self)! | 0x40, at: 0) }
        return bytes
    }

    static func wireFrame(_ text: String, opcode: WebSocketWireOpcode = .text, fin: Bool = true, rsv1: Bool = false) -> WireFrame {
        var reader = FrameReader(maximumFrameBytes: 1 << 20, maximumMessageBytes: 1 << 20)
        var bytes = Self.frame(text, opcode: opcode, fin: fin, rsv1: rsv1)
        guard case .frame(let frame) = reader.next(&bytes) else { preconditionFailure("not a frame") }
        return frame
    }

    // MARK: FrameReader

    @Test("a frame split over two reads: the first part waits, the second completes it, the next frame stays whole")
    func splitFrame() {
        var reader = FrameReader(maximumFrameBytes: 1000, maximumMessageBytes: 1000)
        var both = Self.frame("[2,\"1\",\"Heartbeat\",{}]")
        both.writeImmutableBuffer(Self.frame("[3,\"1\",{}]"))
        var first = both.readSlice(length: 10)!
        guard case .needMore = reader.next(&first) else { Issue.record("a partial frame was taken"); return }
        #expect(first.readableBytes == 10)
        reader.keep(first)
        var buffer = reader.take(both)
        #expect(reader.waiting.readableBytes == 0)
        guard case .frame(let heartbeat) = reader.next(&buffer), case .frame(let answer) = reader.next(&buffer) else {
            Issue.record("the frames did not come out whole")
            return
        }
        #expect(String(buffer: heartbeat.payload) == "[2,\"1\",\"Heartbeat\",{}]")
        #expect(String(buffer: answer.payload) == "[3,\"1\",{}]")
        #expect(buffer.readableBytes == 0)
    }

    @Test("the frame limit is decided on the header, before the payload arrives")
    func frameTooLarge() {
        var reader = FrameReader(maximumFrameBytes: 100, maximumMessageBytes: 1000)
        var bytes = Self.frame(String(repeating: "x", count: 200))
        var header = bytes.readSlice(length: 8)!
        guard case .failed(.frameTooLarge(let announced)) = reader.next(&header) else { Issue.record("not refused"); return }
        #expect(announced == 200)
    }

    @Test("control frames over 125 bytes or fragmented fail the reading, naming the frame")
    func brokenControlFrames() {
        var reader = FrameReader(maximumFrameBytes: 1000, maximumMessageBytes: 1000)
        var long = Self.frame(String(repeating: "p", count: 126), opcode: .ping)
        guard case .failed(.brokenControlFrame(let what)) = reader.next(&long) else { Issue.record("a long ping passed"); return }
        #expect(what == "a ping frame of 126 bytes (control frames carry at most 125)")
        var fragmented = Self.frame("bye", opcode: .close, fin: false)
        guard case .failed(.brokenControlFrame(let what)) = reader.next(&fragmented) else { Issue.record("a fragmented close passed"); return }
        #expect(what == "a fragmented close frame")
    }

    @Test("the message limit counts continuation frames as they arrive; a new message starts the count again")
    func messageLimit() {
        var reader = FrameReader(maximumFrameBytes: 1000, maximumMessageBytes: 1000)
        var stream = Self.frame(String(repeating: "a", count: 600), fin: false)
        stream.writeImmutableBuffer(Self.frame(String(repeating: "b", count: 300), opcode: .continuation))
        stream.writeImmutableBuffer(Self.frame(String(repeating: "c", count: 600), fin: false))
        stream.writeImmutableBuffer(Self.frame(String(repeating: "d", count: 300), opcode: .continuation, fin: false))
        stream.writeImmutableBuffer(Self.frame(String(repeating: "e", count: 300), opcode: .continuation))
        var admitted = 0
        var failure: FrameReader.Failure?
        while failure == nil, case .frame(let frame) = reader.next(&stream) {
            failure = reader.admit(frame.header)
            if failure == nil { admitted += 1 }
        }
        // 600 + 300 is within the limit; the second message fails at its third frame, 1,200 bytes in.
        #expect(admitted == 4)
        #expect(failure == .messageTooLarge(bytesSoFar: 1200))
    }

    @Test("a breach is first of its kind once per connection; a stopped reader gives nothing back")
    func breachesAndStop() {
        var reader = FrameReader(maximumFrameBytes: 1000, maximumMessageBytes: 1000)
        let first = reader.isFirst(.masking), again = reader.isFirst(.masking), other = reader.isFirst(.reservedBits)
        #expect(first && !again && other)
        reader.keep(Self.frame("half"))
        reader.stop()
        #expect(reader.stopped)
        #expect(reader.takeWaiting() == nil)
    }

    // MARK: ReadGate

    @Test("a read asked for in a pause waits until every reason is gone, and goes once")
    func readGate() {
        var gate = ReadGate()
        let open = gate.readRequested()
        #expect(open)
        gate.partnerWritability(false)
        gate.recorder(behind: true)
        let duringPause = gate.readRequested()
        #expect(!duringPause)
        gate.partnerWritability(true)
        #expect(gate.paused)
        let whileRecorderBehind = gate.takeWaitingRead()
        #expect(!whileRecorderBehind)
        gate.held(overBudget: true)
        gate.recorder(behind: false)
        let whileHeldOverBudget = gate.takeWaitingRead()
        #expect(!whileHeldOverBudget)
        gate.held(overBudget: false)
        let afterPause = gate.takeWaitingRead(), twice = gate.takeWaitingRead()
        #expect(afterPause && !twice)
    }

    // MARK: HoldQueue

    @Test("in-order frames wait behind a delayed one and go together, in arrival order; overtakable ones go at their own time")
    func holdOrder() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var queue = HoldQueue()
        #expect(queue.hold(ByteBuffer(string: "delayed"), until: t0 + .milliseconds(100), overtakable: false) == 7 + HeldFrame.overhead)
        _ = queue.hold(ByteBuffer(string: "behind"), until: t0, overtakable: false)
        _ = queue.hold(ByteBuffer(string: "reordered"), until: t0 + .milliseconds(10), overtakable: true)
        #expect(queue.holdsInOrder)
        #expect(queue.cost == 7 + 6 + 9 + 3 * HeldFrame.overhead)
        var sent: [String] = []
        #expect(queue.release(now: t0 + .milliseconds(50)) { sent.append(String(buffer: $0)) } == 9 + HeldFrame.overhead)
        #expect(sent == ["reordered"])
        _ = queue.release(now: t0 + .milliseconds(100)) { sent.append(String(buffer: $0)) }
        #expect(sent == ["reordered", "delayed", "behind"])
        #expect(queue.isEmpty && queue.cost == 0 && !queue.holdsInOrder)
    }

    @Test("the release timer is set for the earliest deadline, moved only earlier, and set again after it fires")
    func releaseTimer() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var queue = HoldQueue()
        #expect(queue.timerNeeded() == nil)
        _ = queue.hold(ByteBuffer(string: "a"), until: t0 + .milliseconds(100), overtakable: false)
        #expect(queue.timerNeeded() == t0 + .milliseconds(100))
        _ = queue.hold(ByteBuffer(string: "b"), until: t0 + .milliseconds(300), overtakable: true)
        #expect(queue.timerNeeded() == nil)
        _ = queue.hold(ByteBuffer(string: "c"), until: t0 + .milliseconds(20), overtakable: true)
        #expect(queue.timerNeeded() == t0 + .milliseconds(20))
        queue.timerFired()
        _ = queue.release(now: t0 + .milliseconds(20)) { _ in }
        #expect(queue.timerNeeded() == t0 + .milliseconds(100))
    }

    @Test("the bandwidth fault paces messages one after another on the link, not each from now")
    func pacing() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var queue = HoldQueue()
        _ = queue.pace(ByteBuffer(string: "one"), now: t0, taking: .milliseconds(100))
        _ = queue.pace(ByteBuffer(string: "two"), now: t0 + .milliseconds(10), taking: .milliseconds(100))
        var sent: [String] = []
        _ = queue.release(now: t0 + .milliseconds(150)) { sent.append(String(buffer: $0)) }
        #expect(sent == ["one"])
        _ = queue.release(now: t0 + .milliseconds(200)) { sent.append(String(buffer: $0)) }
        #expect(sent == ["one", "two"])
        // The link was free again: a message long after starts from its own time.
        _ = queue.pace(ByteBuffer(string: "three"), now: t0 + .seconds(5), taking: .milliseconds(100))
        #expect(queue.timerNeeded() == t0 + .seconds(5) + .milliseconds(100))
        #expect(queue.removeAll() == 5 + HeldFrame.overhead)
        #expect(queue.isEmpty && queue.cost == 0)
    }

    // MARK: Reassembly

    @Test("a message of three frames is recorded whole, with its fragments; a lone continuation is named")
    func reassembly() {
        var message = MessageAssembly()
        guard case .complete(.text, let single, 1) = message.begin(.text, payload: ByteBuffer(string: "[2]"), fin: true) else {
            Issue.record("a single frame is not a message")
            return
        }
        #expect(String(buffer: single) == "[2]" && !message.inMessage)
        guard case .partial = message.begin(.binary, payload: ByteBuffer(string: "ab"), fin: false) else { Issue.record(); return }
        #expect(message.inMessage)
        guard case .partial = message.add(ByteBuffer(string: "cd"), fin: false) else { Issue.record(); return }
        guard case .complete(.binary, let data, 3) = message.add(ByteBuffer(string: "ef"), fin: true) else { Issue.record(); return }
        #expect(String(buffer: data) == "abcdef" && !message.inMessage)
        guard case .orphanContinuation = message.add(ByteBuffer(string: "gh"), fin: true) else { Issue.record(); return }
    }

    @Test("permessage-deflate: frames of a compressed message are collected unmasked; uncompressed messages and control frames go the plain way")
    func deflateAssembly() {
        var deflate = DeflateAssembly()
        guard case .plain = deflate.add(Self.wireFrame("plain", fin: false)) else { Issue.record(); return }
        guard case .plain = deflate.add(Self.wireFrame("rest", opcode: .continuation)) else { Issue.record(); return }
        guard case .partial = deflate.add(Self.wireFrame("zz", fin: false, rsv1: true)) else { Issue.record(); return }
        guard case .plain = deflate.add(Self.wireFrame("", opcode: .ping)) else { Issue.record(); return }
        guard case .complete(let message) = deflate.add(Self.wireFrame("yy", opcode: .continuation)) else { Issue.record(); return }
        #expect(String(buffer: message.data) == "zzyy")
        #expect(message.fragments == 2 && message.opcode == .text && message.mask == Self.mask)
        guard case .plain = deflate.add(Self.wireFrame("after", opcode: .continuation)) else { Issue.record(); return }
    }
}
