/// When the writer forces captured data to disk.
public enum FsyncPolicy: Sendable, Hashable {
    /// Leave it to the operating system (fastest; a power cut can lose the last seconds).
    case never
    /// After every batch (safest, slowest at high message rates).
    case everyBatch
    /// At most once per interval, and always when a file is rotated or closed.
    case interval(milliseconds: Int)

    /// Parses `never`, `batch`, or a number of milliseconds.
    public init?(_ text: String) {
        switch text {
        case "never": self = .never
        case "batch", "always": self = .everyBatch
        default:
            guard let milliseconds = Int(text), milliseconds > 0 else { return nil }
            self = .interval(milliseconds: milliseconds)
        }
    }
}
