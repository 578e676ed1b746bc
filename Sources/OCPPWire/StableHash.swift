/// FNV-1a, 64 bits: a hash that is the same in every run and on every machine (Swift's `Hasher` is seeded per
/// process). Seeds the fault engine's generators per charge point and pseudonymises tags in handover exports.
public enum StableHash {
    public static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
