import Logging

/// The human log format with every control character escaped, in the message and in every metadata value.
///
/// A charge point id, a path or a vendor string comes from a peer, and a percent-encoded newline (`%0A`) in
/// a charger's URL would otherwise start a line of the peer's choosing in the log (CWE-117, log injection).
/// Escaped, a value stays on its line: `\n`, `\r`, `\t`, and `\u{1B}` for the other C0 controls, DEL, C1 and the
/// Unicode line and paragraph separators; a backslash is doubled, so `\n` in a peer's text is told from a newline. The JSON format needs none of this: JSON strings escape them.
struct EscapingLogHandler: LogHandler {
    var wrapped: any LogHandler

    var logLevel: Logger.Level {
        get { self.wrapped.logLevel }
        set { self.wrapped.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { self.wrapped.metadata }
        set { self.wrapped.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.wrapped[metadataKey: key] }
        set { self.wrapped[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(Self.escaped("\(event.message)"))"
        event.metadata = event.metadata.map { $0.mapValues(Self.escaped) }
        // Metadata set on the logger (a connection's chargePoint) is escaped as it is written too.
        var wrapped = self.wrapped
        wrapped.metadata = wrapped.metadata.mapValues(Self.escaped)
        wrapped.log(event: event)
    }

    static func escaped(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let text): return .string(Self.escaped(text))
        case .stringConvertible(let convertible): return .string(Self.escaped(convertible.description))
        case .array(let values): return .array(values.map(Self.escaped))
        case .dictionary(let values): return .dictionary(values.mapValues(Self.escaped))
        }
    }

    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { Self.needsEscape($0) || $0 == "\\" }) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where Self.needsEscape(scalar): out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }
}
