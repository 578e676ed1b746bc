import Foundation

/// Standard base64 (Foundation's), for binary frames in captures and for Basic-auth headers.
public enum Base64 {
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        Data(bytes).base64EncodedString()
    }

    /// Decodes standard or URL-safe base64, padded or not, ignoring line breaks; nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        var normalized: [UInt8] = []
        normalized.reserveCapacity(text.utf8.count + 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "-"): normalized.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): normalized.append(UInt8(ascii: "/"))
            case UInt8(ascii: "="), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            default: normalized.append(byte)
            }
        }
        guard normalized.count % 4 != 1 else { return nil }
        while normalized.count % 4 != 0 { normalized.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(normalized)).map { [UInt8]($0) }
    }
}
