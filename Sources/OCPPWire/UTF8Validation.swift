/// Whether bytes are UTF-8, as RFC 6455 5.6 requires of a text message's data.
public enum UTF8Validation {
    /// True when `bytes` are well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
    /// U+10FFFF). ASCII, nearly every OCPP message, is checked eight bytes at a time without a copy.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index + 8 <= count {
            if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
            index += 8
        }
        while index < count, bytes[index] < 0x80 { index += 1 }
        guard index < count else { return true }
        return String(validating: UnsafeRawBufferPointer(rebasing: bytes[index...]).bindMemory(to: UInt8.self), as: UTF8.self) != nil
    }
}
