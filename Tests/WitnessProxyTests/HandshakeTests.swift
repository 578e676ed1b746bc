import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import OCPPWire
import Testing
import WitnessCapture
import WitnessProxy
import WitnessSim
import WitnessTestSupport

@Suite("Upgrade handshake through the proxy")
struct HandshakeTests {
    @Test("the backend's choice among several offered subprotocols reaches the charger")
    func subprotocolChoice() async throws {
        try await ProxyHarness.start(csms: .init(versions: [.v16])).run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-multi"
            let endpoint = try await OCPPClient.connect(
                to: url, options: OCPPClientOptions(subprotocols: ["ocpp2.0.1", "ocpp1.6"]), group: harness.group
            )
            #expect(endpoint.version == .v16)
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["offered"] == ["ocpp2.0.1", "ocpp1.6"])
            #expect(open.fields["chosen"] == "ocpp1.6")
            #expect(open.fields["version"] == "1.6")
            await endpoint.close()
        }
    }

    @Test("path, query and Authorization reach the backend; the password is not in the capture")
    func credentialsAndPath() async throws {
        try await ProxyHarness.start(csms: .init(requiredPassword: "s3cret-Pa55"), upstreamPrefix: "/steve/ws").run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/site%20A/CP%407?token=abc"
            let endpoint = try await OCPPClient.connect(
                to: url,
                options: OCPPClientOptions(subprotocols: ["ocpp1.6"], basicAuth: ("CP@7", "s3cret-Pa55")),
                group: harness.group
            )
            let arrival = try #require(harness.csms.arrivals.first)
            #expect(arrival.uri == "/steve/ws/site%20A/CP%407?token=abc")
            #expect(arrival.chargePoint == "CP@7")
            #expect(arrival.headers.first(name: "Authorization") == "Basic " + Base64.encode(Array("CP@7:s3cret-Pa55".utf8)))
            await endpoint.close()
            await harness.waitForClosedPairs(1)
            await harness.recorder.flush()
            let captured = try String(contentsOfFile: try #require(harness.recorder.filePaths.first), encoding: .utf8)
            #expect(!captured.contains("s3cret-Pa55"))
            #expect(!captured.contains(Base64.encode(Array("CP@7:s3cret-Pa55".utf8))))
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.chargePoint == "CP@7")
            #expect(open.fields["headers"]?["authorization"] == "Basic user=CP@7 password=<redacted>")
            #expect(open.fields["query"] == "token=abc")
        }
    }

    @Test("--capture-secrets keeps the Authorization header as sent")
    func secretsKeptWhenAsked() async throws {
        try await ProxyHarness.start(csms: .init(requiredPassword: "pw"), redactSecrets: false).run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-1"
            let endpoint = try await OCPPClient.connect(
                to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"], basicAuth: ("CP-1", "pw")), group: harness.group
            )
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["headers"]?["authorization"]?.stringValue == "Basic " + Base64.encode(Array("CP-1:pw".utf8)))
            await endpoint.close()
        }
    }

    @Test("a 401 from the backend reaches the charger and is recorded")
    func unauthorized() async throws {
        try await ProxyHarness.start(csms: .init(requiredPassword: "right")).run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-9"
            let error = await #expect(throws: OCPPConnectError.self) {
                _ = try await OCPPClient.connect(
                    to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"], basicAuth: ("CP-9", "wrong")), group: harness.group
                )
            }
            #expect(error?.status == 401)
            #expect(error?.body == "invalid charge point credentials")
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["status"] == 401)
            #expect(reject.fields["cause"] == "upstreamStatus")
            #expect(reject.chargePoint == "CP-9")
        }
    }

    @Test("an unreachable backend gives the charger 502 and a recorded reason")
    func unreachableBackend() async throws {
        // TCP port 1 (tcpmux): nothing listens there, and no test binds it. A port bound and released by the
        // test was taken, now and then, by another test's listener while the suite ran in parallel, and the
        // "unreachable" backend answered.
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:1/ocpp").run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-2"
            let error = await #expect(throws: OCPPConnectError.self) {
                _ = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
            }
            #expect(error?.status == 502)
            #expect(error?.body.contains("backend unreachable") == true)
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "upstreamUnreachable")
            #expect(reject.fields["status"] == 502)
        }
    }

    @Test("a backend that hangs up on the upgrade request gives the charger 502 and says so")
    func backendHangsUp() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let backend = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in channel.pipeline.addHandler(HangUpOnRequest()) }
            .bind(host: "127.0.0.1", port: 0).get()
        try await ProxyHarness.start(upstreamOverride: "ws://127.0.0.1:\(backend.localAddress?.port ?? 0)/ocpp").run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-4"
            let error = await #expect(throws: OCPPConnectError.self) {
                _ = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: ["ocpp1.6"]), group: harness.group)
            }
            #expect(error?.status == 502)
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "upstreamProtocol")
            #expect(reject.fields["detail"] == "backend closed without answering the upgrade")
        }
        try await backend.close()
        try await group.shutdownGracefully()
    }

    @Test("a plain HTTP request gets 426 with an explanation and a capture record")
    func notWebSocket() async throws {
        try await ProxyHarness.start().run { harness in
            let (status, body) = try await plainHTTPGet(port: harness.proxyURL.port, path: "/CP-3")
            #expect(status.hasPrefix("HTTP/1.1 426"))
            #expect(body.contains("is not a WebSocket upgrade"))
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "notWebSocket")
            #expect(reject.fields["status"] == 426)
        }
    }

    @Test("a WebSocket upgrade without a key gets 400 and a capture record")
    func invalidUpgrade() async throws {
        try await ProxyHarness.start().run { harness in
            let (status, body) = try await rawExchange(
                port: harness.proxyURL.port,
                request: "GET /CP-4 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            #expect(status.hasPrefix("HTTP/1.1 400"))
            #expect(body.contains("Sec-WebSocket-Version: 13"))
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "invalidUpgrade")
        }
    }

    @Test("a connection that never sends its upgrade is closed after the handshake timeout and recorded")
    func handshakeTimeout() async throws {
        try await ProxyHarness.start(configure: { $0.handshakeTimeout = .seconds(1) }).run { harness in
            let (status, _) = try await rawExchange(port: harness.proxyURL.port, request: "")
            #expect(status.isEmpty)
            let reject = try #require(try await harness.records().first { $0.kind == "reject" })
            #expect(reject.fields["cause"] == "handshakeTimeout")
            #expect(reject.fields["status"] == .null)
        }
    }

    @Test("a charger that offers no subprotocol is forwarded as it is")
    func noSubprotocolOffered() async throws {
        try await ProxyHarness.start().run { harness in
            var url = harness.proxyURL
            url.pathPrefix = "/CP-plain"
            let endpoint = try await OCPPClient.connect(to: url, options: OCPPClientOptions(subprotocols: []), group: harness.group)
            let reply = try await endpoint.call("Heartbeat", [:])
            #expect(reply.isResult)
            let open = try #require(try await harness.records().first { $0.kind == "open" })
            #expect(open.fields["offered"] == [])
            #expect(open.fields["chosen"] == .null)
            await endpoint.close()
        }
    }
}

extension CallResponse {
    var isResult: Bool {
        if case .result = self { return true }
        return false
    }
}

/// Sends a plain HTTP GET over a raw socket and returns the status line and body.
func plainHTTPGet(port: Int, path: String) async throws -> (String, String) {
    try await rawExchange(port: port, request: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

/// Writes `request` to 127.0.0.1:`port` and reads until the server closes.
func rawExchange(port: Int, request: String) async throws -> (String, String) {
    let group = MultiThreadedEventLoopGroup.singleton
    let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
    }
    var response = ""
    do {
        try await channel.executeThenClose { inbound, outbound in
            if !request.isEmpty { try await outbound.write(ByteBuffer(string: request)) }
            for try await chunk in inbound { response += String(buffer: chunk) }
        }
    } catch let error as ChannelError where !response.isEmpty && (error == .ioOnClosedChannel || error == .alreadyClosed) {
        // The proxy answered and closed first; closing our side then finds the channel closed. The answer counts.
    }
    let parts = response.components(separatedBy: "\r\n\r\n")
    return (parts.first?.components(separatedBy: "\r\n").first ?? "", parts.dropFirst().joined(separator: "\r\n\r\n"))
}

/// A backend that reads the upgrade request and closes the connection without a word.
private final class HangUpOnRequest: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.close(promise: nil)
    }
}
