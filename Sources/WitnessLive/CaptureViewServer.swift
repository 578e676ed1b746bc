import NIOCore
import NIOHTTP1
import OCPPWire
import WitnessProxy

/// The live page over a recorded capture (`ocpp-witness view`): the same page and data endpoints as the
/// admin server's, answered from a board filled from the capture's records, so that a dispute can be walked
/// through charger by charger and message by message after the fact, with the checks' verdicts as the report
/// gives them. Nothing can be changed from it.
public final class CaptureViewServer: AdminEndpoints {
    let board: LiveBoard?
    private let sources: [String]
    /// The checks' verdicts per pair, as the report gives them.
    private let verdicts: JSONValue
    private let host: String
    private let port: Int
    let allowedHosts: [String]
    private let group: any EventLoopGroup
    private let channel = NIOLockedValueBoxChannel()

    /// `sources`: the capture files or folders the board was filled from, named on the page.
    public init(
        board: LiveBoard, sources: [String], verdicts: JSONValue = .array([]), host: String, port: Int, allowedHosts: [String] = [],
        group: any EventLoopGroup
    ) {
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
        self.board = board
        self.sources = sources
        self.verdicts = verdicts
        self.host = host
        self.port = port
        self.group = group
    }

    @discardableResult
    public func start() async throws -> SocketAddress {
        let channel = try await self.bind(host: self.host, port: self.port, group: self.group)
        self.channel.set(channel)
        guard let address = channel.localAddress else { throw ProxyStartupError("view listener has no address") }
        return address
    }

    public func stop() async {
        try? await self.channel.get()?.close()
    }

    func handle(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: String) -> AdminServer.Reply {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let query = AdminServer.parameters(uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? "")
        guard method == .GET || method == .HEAD, let board = self.board else {
            return AdminServer.error(.methodNotAllowed, "this is the view of a recorded capture: nothing here changes anything")
        }
        let segments = path.split(separator: "/").map(String.init)
        switch segments {
        case []:
            return AdminServer.Reply(status: .ok, contentType: "text/html; charset=utf-8", body: LivePage.html)
        case ["api", "state"]:
            let filter = query["filter"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
            let offset = max(0, query["offset"].flatMap(Int.init) ?? 0)
            let limit = min(max(1, query["limit"].flatMap(Int.init) ?? 200), 1000)
            let page = board.chargerRows(filter: filter, offset: offset, limit: limit)
            let deviations = board.deviations(limit: LiveBoard.deviationsKept)
            let state: JSONValue = [
                "mode": "capture", "sources": .array(self.sources.map(JSONValue.string)),
                "connections": ["total": .int(page.total), "offset": .int(offset), "rows": .array(page.rows)],
                "deviations": ["seen": .int(deviations.seen), "recent": .array(deviations.recent)],
                "figures": .object(board.recordedFigures),
            ]
            return AdminServer.Reply(status: .ok, body: JSONWriter.string(state))
        case ["api", "verdicts"]:
            return AdminServer.Reply(status: .ok, body: JSONWriter.string(["pairs": self.verdicts]))
        case ["api", "events"]:
            // A capture does not change: the stream stays open and quiet, so the page shows no outage.
            return AdminServer.Reply(status: .ok, contentType: "text/event-stream", body: "", stream: true)
        case let parts where parts.count == 4 && parts[0] == "api" && parts[1] == "chargers" && parts[3] == "frames":
            let id = ChargerRequestTarget.percentDecodeComponent(parts[2])
            return AdminServer.Reply(status: .ok, body: #"{"chargePoint":"# + JSONWriter.string(.string(id)) + #","frames":"# + board.framesJSON(id) + "}")
        default:
            return AdminServer.error(.notFound, "no such page of a capture's view: \(path); see docs/admin-api.md")
        }
    }
}
