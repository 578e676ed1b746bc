/// What a capture record is, by its `kind` (docs/capture-format.md lists the fields of each).
public enum RecordKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// The first record of every file: the tool, the run, the policy.
    case header
    /// A charger's connection and its backend's, relaying.
    case open
    /// An upgrade refused, with the status the charger got and why.
    case reject
    /// One WebSocket message or control frame.
    case frame
    /// A pair closed, and by whom.
    case close
    /// Something went wrong on a connection (or, in an import, in the traffic).
    case error
    /// Records the writer could not write (a full disk), written once writing works again: from, to, how many.
    case gap
    /// The last line of a file the writer closed: its hash chain's end, and the seal key's signature.
    case seal
}
