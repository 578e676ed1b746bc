import NIOCore
import OCPPWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns capture events into JSON Lines. Runs on the writer thread, never on the forwarding path.
struct CaptureSerializer {
    var redactor: Redactor
    /// The timestamps of frame records; the writer thread owns the serializer.
    var timestamps = RFC3339Writer()

    init(redactor: Redactor) { self.redactor = redactor }

    /// A `gap` record's line: records from `from` to `to` that could not be written.
    func gap(from: Timestamp, to: Timestamp, lost: Int, error: String) -> [UInt8] {
        var out: [UInt8] = []
        JSONWriter.write(
            .object([
                "ts": .string(to.rfc3339), "kind": "gap", "from": .string(from.rfc3339), "to": .string(to.rfc3339),
                "recordsLost": .int(lost), "error": .string(error),
            ]),
            into: &out
        )
        out.append(0x0A)
        return out
    }

    /// The seal that ends a file the writer closed (its chain link and signature are added by the writer).
    func seal(part: Int, last: Bool, key: String?) -> [UInt8] {
        var object = JSONObject(["ts": .string(Timestamp.now().rfc3339), "kind": "seal", "part": .int(part), "last": .bool(last)])
        if let key { object["key"] = .string(key) }
        var out: [UInt8] = []
        JSONWriter.write(.object(object), into: &out)
        out.append(0x0A)
        return out
    }

    func header(_ header: CaptureHeader, part: Int, started: Timestamp, previousSeal: String? = nil, previousUnsealed: Bool = false) -> [UInt8] {
        var object = JSONObject([
            "ts": .string(Timestamp.now().rfc3339),
            "kind": "header",
            "format": .int(CaptureFormat.version),
            "tool": .string("ocpp-witness \(CaptureFormat.toolVersion)"),
            "started": .string(started.rfc3339),
            "part": .int(part),
            "backend": header.backendName.map(JSONValue.string) ?? .null,
            "upstream": header.upstream.map(JSONValue.string) ?? .null,
            "policy": header.policy.map(JSONValue.string) ?? .null,
            "seed": header.seed.map { .number(String($0)) } ?? .null,
            "redacted": .bool(self.redactor.enabled),
        ])
        object.members.append(contentsOf: header.extra.members)
        if part > 1 {
            object["previousSeal"] = previousSeal.map(JSONValue.string) ?? .null
            if previousUnsealed { object["previousUnsealed"] = true }
        }
        var out: [UInt8] = []
        JSONWriter.write(.object(object), into: &out)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// Appends `event`'s line. Returns true when it is a text frame whose payload went into the line as
    /// the JSON text it arrived as (what `record(of:)` builds records for).
    @discardableResult
    mutating func append(_ event: CaptureEvent, into out: inout [UInt8]) -> Bool {
        switch event {
        case .frame(let frame):
            return self.append(frame, into: &out)
        case .record(let kind, let ts, let connection, let chargePoint, let direction, let fields):
            var object = Self.common(kind: kind, ts: ts, connection: connection, chargePoint: chargePoint, direction: direction)
            object.members.append(contentsOf: fields.members)
            JSONWriter.write(.object(object), into: &out)
            out.append(UInt8(ascii: "\n"))
            return false
        }
    }

    /// Appends `frame`'s line; returns what `append(_:into:)` does.
    mutating func append(_ frame: borrowing FrameEvent, into out: inout [UInt8]) -> Bool {
        let verbatim = self.appendFrame(frame, into: &out)
        out.append(UInt8(ascii: "\n"))
        return verbatim
    }

    private static func common(
        kind: RecordKind, ts: Timestamp, connection: UInt64?, chargePoint: String?, direction: Direction?
    ) -> JSONObject {
        var object = JSONObject(["ts": .string(ts.rfc3339), "kind": .string(kind.rawValue)])
        if let connection { object["conn"] = .number(String(connection)) }
        if let chargePoint { object["chargePoint"] = .string(chargePoint) }
        if let direction { object["dir"] = .string(direction.rawValue) }
        return object
    }

    /// Frame records are most of a capture: their fields are written straight into the line, in the
    /// order docs/capture-format.md shows, without building a JSON value first.
    private mutating func appendFrame(_ frame: borrowing FrameEvent, into out: inout [UInt8]) -> Bool {
        Self.put(#"{"ts":""#, into: &out)
        self.timestamps.append(frame.ts, to: &out)
        Self.put(#"","kind":"frame","conn":"#, into: &out)
        Self.appendDecimal(frame.connection, to: &out)
        Self.put(#","chargePoint":"#, into: &out)
        JSONWriter.writeString(frame.chargePoint, into: &out)
        Self.put(#","dir":""#, into: &out)
        Self.put(frame.direction == .toCSMS ? "toCSMS" : "toCharger", into: &out)
        Self.put(#"","opcode":""#, into: &out)
        out.append(contentsOf: frame.opcode.rawValue.utf8)
        Self.put(#"","size":"#, into: &out)
        Self.appendDecimal(UInt64(frame.payload.readableBytes), to: &out)
        if frame.fragments != 1 {
            Self.put(#","fragments":"#, into: &out)
            Self.appendDecimal(UInt64(max(0, frame.fragments)), to: &out)
        }
        if frame.compressed { Self.put(#","compressed":true"#, into: &out) }
        if let envelope = frame.envelope {
            Self.put(#","msgType":"#, into: &out)
            Self.appendDecimal(UInt64(max(0, envelope.messageType.rawValue)), to: &out)
            Self.put(#","msgId":"#, into: &out)
            JSONWriter.writeString(envelope.messageId, into: &out)
            if let action = envelope.action ?? frame.correlatedAction {
                Self.put(#","action":"#, into: &out)
                JSONWriter.writeString(action, into: &out)
            }
            if let code = envelope.errorCode {
                Self.put(#","errorCode":"#, into: &out)
                JSONWriter.writeString(code, into: &out)
            }
        } else if let malformed = frame.malformed {
            var details = JSONObject(["reason": .string(malformed.reason.rawValue), "detail": .string(malformed.detail)])
            if let type = malformed.messageType { details["msgType"] = .int(type) }
            if let id = malformed.messageId { details["msgId"] = .string(id) }
            out.append(contentsOf: #","malformed":"#.utf8)
            JSONWriter.write(.object(details), into: &out)
        }
        if let latency = frame.latencyNanos {
            Self.put(#","latencyMs":"#, into: &out)
            Self.appendMilliseconds(latency, to: &out)
        }
        if frame.unmatchedResponse { Self.put(#","unmatched":true"#, into: &out) }
        if frame.injected { Self.put(#","injected":true"#, into: &out) }
        if let fault = frame.fault {
            Self.put(#","fault":"#, into: &out)
            JSONWriter.write(.object(fault), into: &out)
        }
        let verbatim = self.appendPayload(frame, into: &out)
        out.append(UInt8(ascii: "}"))
        return verbatim
    }

    /// Appends a literal's bytes in one copy.
    @inline(__always)
    static func put(_ text: StaticString, into out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// The decimal digits of `value`, without making a string.
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        guard value >= 10 else {
            out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var rest = value
            var start = 20
            while rest > 0 {
                start -= 1
                digits[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// Whether `bytes` hold a line feed or a carriage return, which would split a JSON Lines record.
    static func hasLineBreak(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return false }
        return memchr(base, 0x0A, bytes.count) != nil || memchr(base, 0x0D, bytes.count) != nil
    }

    /// The record a reader parses from `frame`'s line at `file`:`line`, built from the event instead: only
    /// its payload is parsed (not even that when the caller passes it as `parsed`), and its typed fields
    /// are known without reading them back. For the common case, an OCPP message written as it came; nil
    /// when the line holds anything else (redacted, re-written because of line breaks, malformed, control
    /// frames), and the caller parses the line. Keep in step with `appendFrame`: the writer's tests compare
    /// both for every kind of frame.
    /// `verbatim` says that `append` wrote the payload as it came (as it returned), which spares the check.
    func record(of frame: borrowing FrameEvent, message parsed: JSONValue? = nil, verbatim: Bool? = nil, file: String, line: Int) -> CaptureRecord? {
        guard frame.opcode == .text, let envelope = frame.envelope, verbatim != false else { return nil }
        let action = envelope.action ?? frame.correlatedAction
        let unknownAnswer = self.redactor.enabled && envelope.messageType == .callResult && frame.correlatedAction == nil
        if verbatim == nil, self.redactor.mayCarrySecret(action: action) || unknownAnswer { return nil }
        let message: JSONValue? = frame.payload.withUnsafeReadableBytes { bytes in
            guard verbatim == true || (!Self.hasLineBreak(bytes) && UTF8Validation.isValid(bytes)) else { return nil }
            return parsed ?? (try? JSONParser.parse(bytes))
        }
        guard let message else { return nil }
        let facts = CaptureRecord.Facts(
            // The text of `ts` is made only when asked for (`CaptureRecord.stamp`): the writer wrote it as `rfc3339`.
            kind: "frame", recordKind: .frame, timestamp: nil, ts: frame.ts, connection: frame.connection, chargePoint: frame.chargePoint,
            direction: frame.direction, opcode: .text, action: action, messageId: envelope.messageId,
            messageType: envelope.messageType, message: message,
            // The nearest double to the microseconds over 1000, as reading the written text gives.
            latencyMilliseconds: frame.latencyNanos.map { Double($0 / 1000) / 1000 }, malformed: nil, injected: frame.injected,
            faultRule: frame.fault?["rule"]?.stringValue
        )
        let details = FrameDetails(
            size: frame.payload.readableBytes, fragments: frame.fragments, compressed: frame.compressed, errorCode: envelope.errorCode,
            latencyNanos: frame.latencyNanos, unmatched: frame.unmatchedResponse, fault: frame.fault
        )
        return CaptureRecord(file: file, line: line, facts: facts, details: details)
    }

    /// Returns true when the payload went in as the JSON text it arrived as.
    private func appendPayload(_ frame: borrowing FrameEvent, into out: inout [UInt8]) -> Bool {
        let payload = frame.payload
        switch frame.opcode {
        case .close:
            var view = payload
            if let code = view.readInteger(as: UInt16.self) {
                out.append(contentsOf: ",\"code\":\(code)".utf8)
                out.append(contentsOf: ",\"reason\":".utf8)
                JSONWriter.writeString(String(decoding: view.readableBytesView, as: UTF8.self), into: &out)
            }
            return false
        case .binary, .ping, .pong, .continuation:
            // OCPP sent in a binary frame is still OCPP: one that mentions a secret keeps nothing of its payload.
            if self.redactor.enabled, payload.withUnsafeReadableBytes({ Redactor.mentionsSecret($0) }) {
                Self.put(#","redacted":true,"redaction":"whole","enc":"text","payload":"<redacted>""#, into: &out)
                return false
            }
            let bytes = payload.readableBytesView
            if frame.opcode != .binary, let text = String(validating: bytes, as: UTF8.self) {
                out.append(contentsOf: ",\"enc\":\"text\",\"payload\":".utf8)
                JSONWriter.writeString(text, into: &out)
            } else {
                out.append(contentsOf: ",\"enc\":\"base64\",\"payload\":\"".utf8)
                out.append(contentsOf: Base64.encode(bytes).utf8)
                out.append(UInt8(ascii: "\""))
            }
            return false
        case .text:
            break
        }
        return payload.withUnsafeReadableBytes { bytes -> Bool in
            // Redaction fails closed: a text that is not strict OCPP-J (five elements, a trailing `]`, broken JSON)
            // cannot be redacted field by field; if it mentions a secret-bearing name, every value after the name
            // is masked, or the whole payload when the text cannot be scanned. The record says which.
            // A capture is UTF-8 JSON Lines whatever a peer sends: a text message that is not UTF-8 (a vendor
            // string in Latin-1, C0 AF) is kept as base64 with a flag, its exact bytes for replay and export.
            guard UTF8Validation.isValid(bytes) else {
                if self.redactor.enabled, Redactor.needsFailingClosed(bytes) {
                    Self.put(#","invalidUTF8":true,"redacted":true,"redaction":"whole","enc":"text","payload":"<redacted>""#, into: &out)
                } else {
                    Self.put(#","invalidUTF8":true,"enc":"base64","payload":""#, into: &out)
                    out.append(contentsOf: Base64.encode(bytes).utf8)
                    out.append(UInt8(ascii: "\""))
                }
                return false
            }
            if frame.envelope == nil, self.redactor.enabled, Redactor.needsFailingClosed(bytes) {
                let (text, fallback) = Redactor.redactFailingClosed(bytes)
                Self.put(#","redacted":true,"redaction":""#, into: &out)
                out.append(contentsOf: fallback.rawValue.utf8)
                Self.put(#"","enc":"text","payload":"#, into: &out)
                JSONWriter.writeString(text, into: &out)
                return false
            }
            // A parsed envelope means the whole text was scanned as one JSON array with nothing after it.
            let isJSON = frame.envelope != nil || (frame.malformed?.reason != .notJSON && JSONParser.isValid(bytes))
            guard isJSON else {
                out.append(contentsOf: ",\"enc\":\"text\",\"payload\":".utf8)
                JSONWriter.writeString(String(decoding: bytes, as: UTF8.self), into: &out)
                return false
            }
            let action = frame.envelope?.action ?? frame.correlatedAction
            // An answer whose CALL the proxy does not know may be one that carries a secret.
            let unknownAnswer = self.redactor.enabled && frame.envelope?.messageType == .callResult && frame.correlatedAction == nil
            let mayCarrySecret = self.redactor.mayCarrySecret(action: action) || unknownAnswer
            if mayCarrySecret, let envelope = frame.envelope, let message = try? JSONParser.parse(bytes),
                let redacted = action.flatMap({ self.redactor.redact(message: message, action: $0, messageType: envelope.messageType) })
                    ?? (Redactor.mentionsSecret(bytes) ? Redactor.maskAroundSecretNames(message) : nil)
            {
                out.append(contentsOf: ",\"redacted\":true,\"enc\":\"json\",\"payload\":".utf8)
                JSONWriter.write(redacted, into: &out)
                return false
            }
            Self.put(#","enc":"json","payload":"#, into: &out)
            if Self.hasLineBreak(bytes) {
                // A line break between JSON tokens would split the JSON Lines record: write the value
                // compactly and keep the exact text alongside.
                if let message = try? JSONParser.parse(bytes) { JSONWriter.write(message, into: &out) }
                out.append(contentsOf: ",\"raw\":".utf8)
                JSONWriter.writeString(String(decoding: bytes, as: UTF8.self), into: &out)
                return false
            }
            out.append(contentsOf: bytes)
            return frame.envelope != nil && !mayCarrySecret
        }
    }

    /// Appends `milliseconds(nanos)`'s text without making the string.
    static func appendMilliseconds(_ nanos: UInt64, to out: inout [UInt8]) {
        let micros = nanos / 1000
        Self.appendDecimal(micros / 1000, to: &out)
        let fraction = micros % 1000
        out.append(UInt8(ascii: "."))
        out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: fraction / 100))
        out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: fraction / 10 % 10))
        out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: fraction % 10))
    }

    static func milliseconds(_ nanos: UInt64) -> String {
        var out: [UInt8] = []
        Self.appendMilliseconds(nanos, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
