import Foundation
import Logging
import OCPPWire
import WitnessCapture

/// Writes one JSON object per log event to standard error: `ts`, `level`, `label`, `message`, metadata.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: JSONObject = [
            "ts": .string(Timestamp.now().rfc3339), "level": .string(event.level.rawValue),
            "label": .string(self.label), "message": .string("\(event.message)"),
        ]
        let merged = self.metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() {
            if let value = merged[key] { object[key] = .string("\(value)") }
        }
        var line = Array(JSONWriter.string(.object(object)).utf8)
        line.append(0x0A)
        FileHandle.standardError.write(Data(line))
    }
}
