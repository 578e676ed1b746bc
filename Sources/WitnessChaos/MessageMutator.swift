import OCPPWire
import WitnessPolicy

/// Applies a malformation to an OCPP-J message, and builds the answers of `respond` faults.
public enum MessageMutator {
    /// The action a CALL gets under `unknownAction`.
    public static let unknownActionName = "WitnessUnknownAction"

    /// What goes on the wire instead of `text`, and whether it goes as a binary frame.
    public static func apply(_ malformation: Malformation, to text: String) -> (text: String, binary: Bool) {
        switch malformation {
        case .truncate(let fraction):
            let bytes = Array(text.utf8)
            let keep = max(1, min(bytes.count - 1, Int(Double(bytes.count) * fraction)))
            return (String(decoding: bytes.prefix(keep), as: UTF8.self), false)
        case .invalidJSON:
            // Dropping the closing bracket leaves the array open: no JSON parser accepts it.
            return (String(text.dropLast()), false)
        case .binaryFrame:
            return (text, true)
        case .wrongType(let pointer):
            return (self.updatePayload(text, pointer) { old in
                switch old {
                case .string(let value): return .number(Int(value).map(String.init) ?? "0")
                case .number(let value): return .string(value)
                case .bool(let value): return .string(String(value))
                case .null: return .int(0)
                case .array, .object: return .string("wrong type")
                case .none: return nil
                }
            }, false)
        case .removeField(let pointer):
            return (self.updatePayload(text, pointer) { _ in nil }, false)
        case .setField(let pointer, let value):
            return (self.updatePayload(text, pointer) { _ in value }, false)
        case .wrongCaseEnum(let pointer):
            return (self.updatePayload(text, pointer) { old in
                guard case .string(let value) = old else { return old }
                let lowered = value.lowercased()
                return .string(lowered == value ? value.uppercased() : lowered)
            }, false)
        case .unknownAction:
            guard case .array(var items)? = try? JSONParser.parse(text), items.count == 4, items[0] == 2 else { return (text, false) }
            items[2] = .string(self.unknownActionName)
            return (JSONWriter.string(.array(items)), false)
        case .oversize(let bytes):
            guard case .array(var items)? = try? JSONParser.parse(text), let index = self.payloadIndex(items),
                case .object(var payload) = items[index]
            else { return (text + String(repeating: " ", count: max(0, bytes - text.utf8.count)), false) }
            let missing = max(0, bytes - text.utf8.count - 20)
            payload["witnessPadding"] = .string(String(repeating: "x", count: missing))
            items[index] = .object(payload)
            return (JSONWriter.string(.array(items)), false)
        }
    }

    /// The answer the proxy sends instead of forwarding the CALL `messageId`.
    public static func response(_ response: Response, messageId: String) -> String {
        switch response {
        case .callError(let code, let description):
            return JSONWriter.string([.int(MessageType.callError.rawValue), .string(messageId), .string(code), .string(description), [:]])
        case .callResult(let payload):
            return JSONWriter.string([.int(MessageType.callResult.rawValue), .string(messageId), payload])
        }
    }

    static func payloadIndex(_ items: [JSONValue]) -> Int? {
        guard let type = items.first?.intValue.flatMap(MessageType.init(rawValue:)) else { return nil }
        switch type {
        case .call, .send: return items.count > 3 ? 3 : nil
        case .callResult: return items.count > 2 ? 2 : nil
        case .callError, .callResultError: return items.count > 4 ? 4 : nil
        }
    }

    /// Changes the node at `pointer` inside the payload; a message that is not a readable OCPP-J array is kept.
    static func updatePayload(_ text: String, _ pointer: String, _ transform: (JSONValue?) -> JSONValue?) -> String {
        guard case .array(var items)? = try? JSONParser.parse(text), let index = self.payloadIndex(items) else { return text }
        items[index] = JSONPointer.update(items[index], at: pointer, transform)
        return JSONWriter.string(.array(items))
    }
}
