import CompressNIO
import NIOCore

/// permessage-deflate (RFC 7692) as a charger and a backend negotiated it: what the backend's 101 said.
///
/// OCPP-J 2.0.1 and 2.1 (section 3.4) ask the CSMS to support it; chargers of every version may offer it.
/// The proxy forwards the charger's offers and the backend's answer, so both hops agree on the same
/// parameters, and inflates each direction only to read what was said.
package struct PerMessageDeflate: Sendable, Hashable {
    package static let name = "permessage-deflate"

    /// The charger (the client) starts every message with an empty window.
    package var clientNoContextTakeover = false
    /// The backend (the server) starts every message with an empty window.
    package var serverNoContextTakeover = false
    package var clientMaxWindowBits: Int?
    package var serverMaxWindowBits: Int?
    /// The extension exactly as the backend answered it, for the charger's 101 and the capture.
    package var header: String

    /// The permessage-deflate offers among a request's `Sec-WebSocket-Extensions` values, each as written;
    /// offers of other extensions (which the proxy could not read) are left out.
    package static func offers(in values: [String]) -> [String] {
        values.flatMap { Self.split($0, on: ",") }.filter { offer in
            Self.split(offer, on: ";").first?.lowercased() == Self.name
        }
    }

    /// Reads a 101's `Sec-WebSocket-Extensions` value: exactly one permessage-deflate, with parameters a
    /// server may answer (RFC 7692 section 7.1), each once. `offered` is what the charger offered: the
    /// backend may set client_max_window_bits only when the charger offered it.
    package static func accepted(_ value: String, offered: [String]) -> Result<PerMessageDeflate, DeflateNegotiationError> {
        let extensions = Self.split(value, on: ",")
        guard extensions.count == 1, let only = extensions.first else {
            return .failure(DeflateNegotiationError("the backend accepted \(extensions.count) extensions (\(value)); the proxy forwards permessage-deflate alone"))
        }
        let parts = Self.split(only, on: ";")
        guard parts.first?.lowercased() == Self.name else {
            return .failure(DeflateNegotiationError("the backend accepted the extension '\(parts.first ?? "")', which was not offered"))
        }
        var result = PerMessageDeflate(header: value.trimmingCharacters)
        var seen: Set<String> = []
        let clientOfferedBits = offers(in: offered).contains { $0.lowercased().contains("client_max_window_bits") }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters }
            let key = pair[0].lowercased()
            let raw = pair.count > 1 ? pair[1].trimmingQuotes : nil
            guard seen.insert(key).inserted else {
                return .failure(DeflateNegotiationError("the backend's permessage-deflate gives \(key) twice"))
            }
            switch key {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard raw == nil else { return .failure(DeflateNegotiationError("\(key) takes no value, the backend gave '\(raw ?? "")'")) }
                if key == "server_no_context_takeover" { result.serverNoContextTakeover = true } else { result.clientNoContextTakeover = true }
            case "server_max_window_bits", "client_max_window_bits":
                guard let raw, let bits = Int(raw), (8...15).contains(bits) else {
                    return .failure(DeflateNegotiationError("\(key) must be 8 to 15, the backend gave '\(raw ?? "")'"))
                }
                if key == "client_max_window_bits" {
                    guard clientOfferedBits else {
                        return .failure(DeflateNegotiationError("the backend set client_max_window_bits, which the charger did not offer"))
                    }
                    result.clientMaxWindowBits = bits
                } else {
                    result.serverMaxWindowBits = bits
                }
            default:
                return .failure(DeflateNegotiationError("the backend's permessage-deflate has the unknown parameter '\(key)'"))
            }
        }
        return .success(result)
    }

    /// Whether the sender in `direction` keeps its window from one message to the next.
    package func contextTakeover(_ direction: Direction) -> Bool {
        direction == .toCSMS ? !self.clientNoContextTakeover : !self.serverNoContextTakeover
    }

    private static func split(_ text: String, on separator: Character) -> [String] {
        // Quoted values (RFC 7692 allows client_max_window_bits="10") do not contain separators here.
        text.split(separator: separator).map { String($0).trimmingCharacters }.filter { !$0.isEmpty }
    }
}

package struct DeflateNegotiationError: Error, CustomStringConvertible, Sendable {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// Inflates the compressed messages of one sender, in order, keeping its window between messages unless
/// the sender starts each one afresh.
package final class MessageInflater {
    private let decompressor: ZlibDecompressor
    private let contextTakeover: Bool

    package init(contextTakeover: Bool) throws {
        // A 32 KiB window reads a stream made with any smaller one.
        self.decompressor = try ZlibDecompressor(algorithm: .deflate, windowSize: 15)
        self.contextTakeover = contextTakeover
    }

    package enum Failure: Error, Equatable {
        /// The message inflates to more than the limit.
        case tooLarge
        /// The bytes are not a deflate stream that follows from the earlier messages.
        case corrupt
    }

    /// The text of one whole compressed message (its frames' payloads, unmasked, joined).
    package func inflate(_ message: ByteBuffer, maximumBytes: Int) -> Result<ByteBuffer, Failure> {
        var input = message
        // The sender removed the final empty block's 00 00 FF FF (RFC 7692 section 7.2.1).
        input.writeBytes([0x00, 0x00, 0xFF, 0xFF])
        defer { if !self.contextTakeover { try? self.decompressor.reset() } }
        do {
            // Room for one byte over the limit tells "too large" from "exactly the limit".
            let text = try input.decompressStream(with: self.decompressor, maxSize: maximumBytes + 1, allocator: ByteBufferAllocator())
            return text.readableBytes > maximumBytes ? .failure(.tooLarge) : .success(text)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            return .failure(.tooLarge)
        } catch {
            try? self.decompressor.reset()
            return .failure(.corrupt)
        }
    }
}

/// Compresses messages as a permessage-deflate sender does: for tests and simulated peers.
package final class MessageDeflater {
    private let compressor: ZlibCompressor
    private let contextTakeover: Bool

    package init(contextTakeover: Bool, windowBits: Int = 15) throws {
        self.compressor = try ZlibCompressor(algorithm: .deflate, configuration: ZlibConfiguration(windowSize: Int32(max(9, windowBits))))
        self.contextTakeover = contextTakeover
    }

    package func deflate(_ text: ByteBuffer) throws -> ByteBuffer {
        var input = text
        var output = try input.compressStream(with: self.compressor, flush: .sync, allocator: ByteBufferAllocator())
        if !self.contextTakeover { try self.compressor.reset() }
        // A sync flush ends with 00 00 FF FF, which the sender leaves off.
        output.moveWriterIndex(to: output.writerIndex - 4)
        return output
    }
}

extension String {
    fileprivate var trimmingCharacters: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    fileprivate var trimmingQuotes: String {
        self.count >= 2 && self.hasPrefix("\"") && self.hasSuffix("\"") ? String(self.dropFirst().dropLast()) : self
    }
}
