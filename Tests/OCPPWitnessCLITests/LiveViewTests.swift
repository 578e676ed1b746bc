import ChildProcesses
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OCPPWire
import Testing
import WitnessSim
import WitnessTestSupport

/// A server-sent-event stream read over a real socket; `text` grows as events arrive.
final class EventStream: Sendable {
    private let received = NIOLockedValueBox("")
    private let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    static func open(port: Int, path: String = "/api/events") async throws -> EventStream {
        let box = NIOLockedValueBox<EventStream?>(nil)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector { text in box.withLockedValue { $0?.received.withLockedValue { $0 += text } } })
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let stream = EventStream(channel: channel)
        box.withLockedValue { $0 = stream }
        try await channel.writeAndFlush(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"))
        return stream
    }

    var text: String { self.received.withLockedValue { $0 } }

    /// The data of every event named `name` so far, parsed. (Each event is one chunk of the response, so
    /// the chunk sizes between them do not matter; the data is one line of JSON.)
    func events(_ name: String) -> [JSONValue] {
        self.text.components(separatedBy: "event: \(name)\ndata: ").dropFirst().compactMap { rest in
            guard let end = rest.range(of: "\n") else { return nil }
            return try? JSONParser.parse(String(rest[..<end.lowerBound]))
        }
    }

    func close() { self.channel.close(promise: nil) }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let append: @Sendable (String) -> Void
        init(_ append: @escaping @Sendable (String) -> Void) { self.append = append }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { self.append(String(buffer: Self.unwrapInboundIn(data))) }
    }
}

@Suite("Live pilot view")
struct LiveViewTests {
    /// LIVE-GOOD, a simulated charger of `version` that has booted, and LIVE-BAD, a bare 1.6 connection
    /// whose messages the test writes itself, both through the proxy of `run`.
    static func connectPair(_ run: AdminRun, version: OCPPVersion) async throws -> (ChargerSimulator, OCPPEndpoint) {
        let base = try WebSocketURL(parsing: "ws://127.0.0.1:\(run.proxyPort)")
        let good = ChargerSimulator(profile: ChargerProfile(id: "LIVE-GOOD", vendor: "Good Co", version: version), baseURL: base, group: run.group)
        try await good.connect()
        try await good.boot()
        var badURL = base
        badURL.pathPrefix = "/LIVE-BAD"
        return (good, try await OCPPClient.connect(to: badURL, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: run.group))
    }

    /// The checks of the commissioning sample policy, without its faults (which delay and refuse boots).
    static func commissioningChecks() throws -> String {
        let sample = try String(contentsOfFile: WitnessBinary.root.appendingPathComponent("policies/commissioning.yaml").path, encoding: .utf8)
        let checks = try #require(sample.range(of: "\nchecks:\n"))
        return "rules: []" + sample[checks.lowerBound...]
    }

    @Test("the page is self-contained; state, frames and the event stream show chargers, counts and deviations as they happen, redacted")
    func liveData() async throws {
        let run = try await AdminRun.start(policy: "rules: []\n")
        defer { run.removeFiles() }

        let (pageStatus, page) = try await http("GET", port: run.adminPort, path: "/")
        #expect(pageStatus == 200)
        #expect(page.contains("<title>OCPP Witness — live</title>"))
        // Nothing loaded from elsewhere: no external scripts, styles, fonts or images.
        for outside in ["<script src", "<link", "@import", "url(", "src=\"http", "href=\"http"] {
            #expect(!page.contains(outside), "the page refers to \(outside)")
        }
        // Charger-controlled values go in as text, never as markup.
        #expect(!page.contains("innerHTML"))

        let events = try await EventStream.open(port: run.adminPort)
        defer { events.close() }
        #expect(await eventually { events.text.contains("OCPP Witness live events") })

        let (good, bad) = try await Self.connectPair(run, version: .v16)
        // A BootNotification without its required chargePointModel: a schema deviation, found live.
        _ = try? await bad.call("BootNotification", ["chargePointVendor": "Bad Co"], timeout: .seconds(5))

        #expect(await eventually(seconds: 15) { events.events("deviation").contains { $0["chargePoint"] == "LIVE-BAD" } }, "\(events.text)")
        let deviation = try #require(events.events("deviation").first { $0["chargePoint"] == "LIVE-BAD" })
        #expect(deviation["action"] == "BootNotification")
        #expect(deviation["ref"]?.stringValue?.contains(".jsonl:") == true)
        #expect(events.events("open").contains { $0["chargePoint"] == "LIVE-GOOD" })
        // Ticks carry the counts of the chargers that spoke, with who they are.
        #expect(await eventually { events.events("tick").contains { $0["counts"]?["LIVE-GOOD"]?["vendor"] == "Good Co" } })
        // And the rate of recorded messages, from the second tick on.
        #expect(await eventually { events.events("tick").contains { $0["figures"]?["messagesPerSecond"]?.intValue != nil } })

        let (_, stateText) = try await http("GET", port: run.adminPort, path: "/api/state?filter=live-")
        let state = try JSONParser.parse(stateText)
        #expect(state["connections"]?["total"] == 2)
        let rows = state["connections"]?["rows"]?.arrayValue ?? []
        let goodRow = try #require(rows.first { $0["chargePoint"] == "LIVE-GOOD" })
        #expect(goodRow["vendor"] == "Good Co" && goodRow["subprotocol"] == "ocpp1.6")
        #expect((goodRow["toCSMS"]?.intValue ?? 0) >= 3)
        #expect(state["deviations"]?["recent"]?.arrayValue?.contains { $0["chargePoint"] == "LIVE-BAD" } == true)
        #expect(try JSONParser.parse(try await http("GET", port: run.adminPort, path: "/api/state?filter=nobody").1)["connections"]?["total"] == 0)

        // The message view: the charger's last frames, the secret the backend sent redacted as in the capture.
        let atBackend = await run.csms.connection("LIVE-GOOD")
        _ = try await atBackend.call("ChangeConfiguration", ["key": "AuthorizationKey", "value": "0123456789abcdef-live-secret"])
        #expect(await eventually {
            (try? await http("GET", port: run.adminPort, path: "/api/chargers/LIVE-GOOD/frames").1.contains("ChangeConfiguration")) == true
        })
        let (_, framesText) = try await http("GET", port: run.adminPort, path: "/api/chargers/LIVE-GOOD/frames")
        #expect(!framesText.contains("live-secret"))
        let frames = try JSONParser.parse(framesText)["frames"]?.arrayValue ?? []
        #expect(frames.contains { $0["action"] == "BootNotification" && $0["dir"] == "toCSMS" && $0["msgType"] == 2 })
        #expect(frames.contains { $0["action"] == "ChangeConfiguration" && $0["redacted"] == true })

        // Read-only views need no token; changing the proxy from the page does.
        #expect(try await http("POST", port: run.adminPort, path: "/chargers/LIVE-GOOD/disconnect").0 == 401)
        #expect(try await http("POST", port: run.adminPort, path: "/chargers/LIVE-GOOD/disconnect", token: run.token).0 == 200)
        #expect(await eventually { events.events("close").contains { $0["chargePoint"] == "LIVE-GOOD" } })
        let closed = try #require(events.events("close").first { $0["chargePoint"] == "LIVE-GOOD" })
        #expect(closed["closedBy"] == "proxy" && closed["code"] == 1001, "\(closed)")
        #expect(events.events("open").first { $0["chargePoint"] == "LIVE-GOOD" }?["subprotocol"] == "ocpp1.6")
        await bad.close()
        await run.csms.stop()
        try await run.group.shutdownGracefully()
    }

    @Test("the witness checks of the policy in force resolve live: passed ones pass, one whose window is open is pending")
    func liveVerdicts() async throws {
        let run = try await AdminRun.start(policy: try Self.commissioningChecks())
        defer { run.removeFiles() }
        #expect(try JSONParser.parse(try await http("GET", port: run.adminPort, path: "/api/verdicts").1)["pairs"] == [])
        let base = try WebSocketURL(parsing: "ws://127.0.0.1:\(run.proxyPort)")
        let charger = ChargerSimulator(profile: ChargerProfile(id: "LIVE-CHECKS", vendor: "Checked Co", version: .v16), baseURL: base, group: run.group)
        try await charger.connect()
        try await charger.boot()
        func checks() async throws -> [String: JSONValue] {
            let pairs = try JSONParser.parse(try await http("GET", port: run.adminPort, path: "/api/verdicts").1)["pairs"]?.arrayValue ?? []
            let pair = pairs.first { $0["charger"]?["vendor"] == "Checked Co" }
            let area = pair?["areas"]?.arrayValue?.first { $0["area"] == "commissioning" }
            var byName: [String: JSONValue] = ["area": area?["verdict"] ?? .null]
            for check in area?["checks"]?.arrayValue ?? [] { if let name = check["name"]?.stringValue { byName[name] = check } }
            return byName
        }
        #expect(await eventually { (try? await checks()["status-after-boot"]?["verdict"]) == "pass" })
        let verdicts = try await checks()
        #expect(verdicts["boot-accepted"]?["verdict"] == "pass")
        #expect(verdicts["boot-accepted"]?["refs"]?.arrayValue?.count == 2)
        // Nothing has disproved it yet, and its five minutes are not over: pending, not pass.
        #expect(verdicts["no-boot-loop"]?["verdict"] == "pending")
        #expect(verdicts["no-boot-loop"]?["open"] == 1)
        #expect(verdicts["area"] == "pending")
        await charger.disconnect()
        await run.csms.stop()
        try await run.group.shutdownGracefully()
    }

    @Test("view serves the page over a recorded capture: every charger, its deviations, its messages from the first and the checks' verdicts; nothing changes")
    func viewCapture() async throws {
        let directory = temporaryPath("view")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let demo = try await WitnessBinary.run(["demo", "--capture", directory])
        try #require(demo.status == 0, "\(demo.errors)")
        let (process, _, errors) = try WitnessBinary.start(["view", directory, "--listen", "127.0.0.1:0"])
        defer { if process.isRunning { process.terminate() } }
        let port = try #require(WitnessBinary.announcedPorts(errors, [("the capture's view on", #":(\d+)/"#)])?.first)

        let (pageStatus, page) = try await http("GET", port: port, path: "/")
        #expect(pageStatus == 200 && page.contains("<title>OCPP Witness — live</title>"))
        let state = try JSONParser.parse(try await http("GET", port: port, path: "/api/state").1)
        #expect(state["mode"] == "capture")
        let rows = state["connections"]?["rows"]?.arrayValue ?? []
        #expect(rows.compactMap { $0["chargePoint"]?.stringValue } == ["CP-ALPHA-01", "CP-BETA-01", "CP-GAMMA-01"])
        let gamma = try #require(rows.first { $0["chargePoint"] == "CP-GAMMA-01" })
        #expect(gamma["vendor"] == "Gamma EV" && gamma["subprotocol"] == "ocpp1.6" && gamma["connected"] == false)
        #expect(gamma["transport"] == "plain")
        // The quirky charger's deviations, each with the capture line it points at.
        let deviations = state["deviations"]?["recent"]?.arrayValue ?? []
        #expect(deviations.contains { $0["chargePoint"] == "CP-GAMMA-01" && $0["ref"]?.stringValue?.contains(".jsonl:") == true })
        #expect(!deviations.contains { $0["chargePoint"] == "CP-ALPHA-01" })
        // Its messages from the first: the walk through starts at its BootNotification.
        let frames = try JSONParser.parse(try await http("GET", port: port, path: "/api/chargers/CP-GAMMA-01/frames").1)["frames"]?.arrayValue ?? []
        #expect(frames.first?["action"] == "BootNotification" && frames.first?["dir"] == "toCSMS")
        #expect(frames.count == (gamma["toCSMS"]?.intValue ?? 0) + (gamma["toCharger"]?.intValue ?? 0))
        // The checks of the policy the demo ran with (named in the capture's header), as the report judges them:
        // the charger that starts despite a refused tag fails authorization.
        let pairs = try JSONParser.parse(try await http("GET", port: port, path: "/api/verdicts").1)["pairs"]?.arrayValue ?? []
        let verdicts = Dictionary(uniqueKeysWithValues: pairs.compactMap { pair -> (String, JSONValue)? in
            guard let vendor = pair["charger"]?["vendor"]?.stringValue, let area = pair["areas"]?.arrayValue?.first(where: { $0["area"] == "authorization" }) else { return nil }
            return (vendor, area["verdict"] ?? .null)
        })
        #expect(verdicts == ["Alpha Charge": "pass", "Beta Power": "pass", "Gamma EV": "fail"], "\(pairs)")
        #expect(try await http("POST", port: port, path: "/chargers/CP-GAMMA-01/disconnect", token: "anything-at-all-here").0 == 405)
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    static let chromium = Program.find("chromium")

    @Test(
        "in a real browser the page lists the chargers, shows a deviation seconds after the faulty message, and disconnects a charger with the token",
        .enabled(if: Self.chromium != nil, "needs chromium (make setup installs it)")
    )
    func inBrowser() async throws {
        let run = try await AdminRun.start(policy: try Self.commissioningChecks())
        defer { run.removeFiles() }
        let (good, bad) = try await Self.connectPair(run, version: .v201)

        // Screenshots stay in .build for a person to look at; the rest of the browser's files go with the run.
        let shots = WitnessBinary.root.appendingPathComponent(".build/live-page").path
        try? FileManager.default.removeItem(atPath: shots)
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let python = WitnessBinary.root.appendingPathComponent(".tools/venv/bin/python").path
        let script = WitnessBinary.root.appendingPathComponent("Tests/Interop/drive_live_page.py").path
        let driver = Task {
            try await Program.run(python, [script, Self.chromium!, "http://127.0.0.1:\(run.adminPort)/", run.token, shots])
        }
        // Once the page shows the chargers, the faulty message: a BootNotification without its model.
        #expect(await eventually(seconds: 40) { FileManager.default.fileExists(atPath: shots + "/ready") })
        _ = try? await bad.call("BootNotification", ["chargePointVendor": "Bad Co"], timeout: .seconds(5))
        let result = try await driver.value
        let steps = result.output.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        #expect(result.status == 0, "\(result.output)\n\(result.errors)")
        let loaded = steps.first { $0["step"] == "loaded" }
        #expect(loaded?["ok"] == true && loaded?["text"]?.stringValue?.contains("Good Co") == true, "\(result.output)")
        // The commissioning checks of the good charger, as they stand.
        #expect(loaded?["checks"]?.stringValue?.contains("boot-accepted pass") == true, "\(result.output)")
        let shown = steps.first { $0["step"] == "deviation" }
        #expect(shown?["ok"] == true && shown?["text"]?.stringValue?.contains("schema.required") == true, "\(result.output)")
        let messages = steps.first { $0["step"] == "messages" }
        #expect(messages?["ok"] == true && messages?["text"]?.stringValue?.contains("\"chargePointVendor\": \"Bad Co\"") == true, "\(result.output)")
        let disconnected = steps.first { $0["step"] == "disconnect" }
        #expect(disconnected?["ok"] == true && disconnected?["alerts"] == [], "\(result.output)")
        // The proxy really closed it: the charger's connection is down.
        #expect(await eventually { good.endpoint?.isActive != true })
        for name in ["page-loaded.png", "deviation-shown.png", "messages-other-theme.png", "after-disconnect.png"] {
            #expect(FileManager.default.fileExists(atPath: shots + "/" + name), "\(name)")
        }
        try? FileManager.default.removeItem(atPath: shots + "/profile")
        await bad.close()
        await run.csms.stop()
        try await run.group.shutdownGracefully()
    }
}
