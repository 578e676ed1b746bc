import Crypto

/// The hash chain of one capture file (format 2; docs/capture-format.md, "Hash chain and seal").
///
/// Every line ends in its number in the file and its link: `…,"n":17,"chain":"<32 hex digits>"}`. The link
/// is the first 16 bytes of SHA-256 over the previous line's link (16 zero bytes before the header) and this
/// line's bytes up to, not including, `,"chain":"`: so each line is bound to the one before it, and through
/// it to every line back to the header. The seal, the last line of a file the proxy closed, carries the whole
/// 32-byte digest instead, which the next file's header names (`previousSeal`) and a seal key signs.
public struct CaptureChain: Sendable {
    /// Bytes of a link kept in a line.
    public static let linkBytes = 16

    /// The link of the last line chained: 16 bytes, as two words (in memory order).
    public private(set) var link: (UInt64, UInt64) = (0, 0)
    /// The number of the last line chained.
    public private(set) var lines = 0

    public init() {}

    /// Ends the line at `start` of `out` (serialised with its `}` and line feed) with its number and link.
    public mutating func chain(lineAt start: Int, in out: inout [UInt8]) {
        let digest = self.advance(lineAt: start, in: &out)
        digest.withUnsafeBytes { Self.appendHex(of: UnsafeRawBufferPointer(rebasing: $0[..<Self.linkBytes]), to: &out) }
        out.append(contentsOf: Self.close)
    }

    /// Ends the seal at `start` of `out` like any line, but with the whole digest as its link; returns the
    /// digest (what the next file's header names and a seal key signs). The caller closes the line
    /// (`finishSeal`), after any signature.
    public mutating func chainSeal(lineAt start: Int, in out: inout [UInt8]) -> [UInt8] {
        let digest = self.advance(lineAt: start, in: &out)
        digest.withUnsafeBytes { Self.appendHex(of: $0, to: &out) }
        out.append(UInt8(ascii: "\""))
        return Array(digest)
    }

    /// Numbers the line, hashes it with the previous link, and leaves `out` ending in `,"chain":"`.
    private mutating func advance(lineAt start: Int, in out: inout [UInt8]) -> SHA256Digest {
        precondition(out.count >= start + 3 && out[out.count - 1] == 0x0A && out[out.count - 2] == UInt8(ascii: "}"))
        out.removeLast(2)
        self.lines += 1
        out.append(contentsOf: Self.numberKey)
        CaptureSerializer.appendDecimal(UInt64(self.lines), to: &out)
        var hasher = SHA256()
        withUnsafeBytes(of: self.link) { hasher.update(bufferPointer: $0) }
        out.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[start...])) }
        let digest = hasher.finalize()
        self.link = digest.withUnsafeBytes { ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        out.append(contentsOf: Self.chainKey)
        return digest
    }

    /// The link that follows `previous` for a line whose bytes up to `,"chain":"` are `content`: what `verify`
    /// recomputes. `previous` is 16 bytes (zeros before the header).
    public static func digest(previous: [UInt8], content: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        previous.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        hasher.update(bufferPointer: content)
        return Array(hasher.finalize())
    }

    static let numberKey = Array(#","n":"#.utf8)
    static let chainKey = Array(#","chain":""#.utf8)
    static let close = Array("\"}\n".utf8)

    /// Appends lower-case hex of `bytes` (at most 32) in one append.
    static func appendHex(of bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        precondition(bytes.count <= 32)
        var digits: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { raw in
            for (index, byte) in bytes.enumerated() {
                let high = byte >> 4, low = byte & 0x0F
                raw[2 * index] = high < 10 ? 0x30 + high : 0x57 + high
                raw[2 * index + 1] = low < 10 ? 0x30 + low : 0x57 + low
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[..<(2 * bytes.count)]))
        }
    }

    /// Lower-case hex of a link kept as two words.
    public static func hex(link: (UInt64, UInt64)) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        withUnsafeBytes(of: link) { Self.appendHex(of: $0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower-case hex of `bytes` (a digest, a link or a key id: at most 32 bytes).
    public static func hex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        bytes.withUnsafeBytes { Self.appendHex(of: $0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }
}
