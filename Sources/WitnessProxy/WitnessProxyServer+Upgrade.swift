import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import OCPPWire
import WitnessCapture
import WitnessChaos
import WitnessPolicy
import WitnessTransport

/// A charger's connection from accept to relay: its pipeline, the upgrade request, the dial to the backend
/// with the charger's offers, the subprotocol and extension agreed, and the relay installed on both sides.
extension WitnessProxyServer {
    func configureCharger(_ channel: any Channel) throws {
        let id = self.state.withLockedValue { state -> UInt64 in
            state.statistics.accepted += 1
            defer { state.nextConnectionID += 1 }
            return state.nextConnectionID
        }
        self.metrics.accepted.increment()
        let handshake = ChargerHandshake(
            connectionID: id, remoteAddress: channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        )
        let bound = NIOLoopBound(handshake, eventLoop: channel.eventLoop)
        let sync = channel.pipeline.syncOperations
        if let chargerTLS {
            try sync.addHandler(NIOSSLServerHandler(context: chargerTLS))
        }
        let upgrader = NIOTypedWebSocketServerUpgrader<Void>(
            maxFrameSize: self.configuration.maximumFrameBytes,
            enableAutomaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                self.dialBackend(for: bound.value, head: head, chargerChannel: channel)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture { try self.startRelay(bound.value, chargerChannel: channel) }
            }
        )
        let upgrade = NIOTypedHTTPServerUpgradeConfiguration<Void>(
            upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RefusalResponder(handshake: bound.value) { handshake, refusal, head in
                            self.recordRefusal(handshake, refusal, head: head)
                        }
                    )
                }
            }
        )
        // A charger's connection carries one request, the upgrade (or its refusal, after which the proxy
        // closes): no pipelining handler to add and remove for each connection of a storm.
        var pipeline = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgrade)
        pipeline.enablePipelining = false
        _ = try sync.configureUpgradableHTTPServerPipeline(configuration: pipeline)
        try sync.addHandler(
            UpgradeRequestObserver(handshake: handshake), position: .before(try sync.handler(type: NIOTypedHTTPServerUpgradeHandler<Void>.self))
        )
        try sync.addHandler(HandshakeFailureRecorder(handshake: handshake) { handshake, cause, detail in
            // NIO answers unparsable HTTP with 400 itself; a failed TLS handshake gets no HTTP answer.
            self.recordRefusal(
                handshake,
                ChargerHandshake.Refusal(
                    status: .badRequest, headers: [:], body: ByteBuffer(), cause: cause, detail: detail,
                    statusSent: cause == "badRequest"
                ),
                head: nil
            )
        })
        handshake.timeout = channel.eventLoop.scheduleTask(in: self.configuration.handshakeTimeout) {
            let handshake = bound.value
            guard handshake.phase.deadlinePassed() == .timedOut else { return }
            self.recordRefusal(
                handshake,
                ChargerHandshake.Refusal(
                    status: .requestTimeout, headers: [:], body: ByteBuffer(), cause: "handshakeTimeout",
                    detail: "WebSocket upgrade not completed within \(self.configuration.handshakeTimeout.nanoseconds / 1_000_000_000) s; connection closed",
                    statusSent: false
                ),
                head: nil
            )
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in
            let handshake = bound.value
            handshake.timeout?.cancel()
            handshake.apply(handshake.phase.chargerClosed())
        }
    }

    func dialBackend(
        for handshake: ChargerHandshake, head: HTTPRequestHead, chargerChannel: any Channel
    ) -> EventLoopFuture<HTTPHeaders?> {
        let target = ChargerRequestTarget(uri: head.uri)
        // From here the dialer's own timeout applies, and a slow backend gets the charger a 504.
        handshake.apply(handshake.phase.requestRead())
        handshake.upgradeAttempted = true
        handshake.target = target
        handshake.offered = ChargerHandshake.subprotocols(in: head.headers)
        handshake.requestHeaders = head.headers
        if let problem = ChargerRequestTarget.unsafePathReason(target.path) {
            handshake.refuse(.proxy(
                .badRequest, cause: "unsafePath", detail: "\(problem); refused, so that no path can reach outside the upstream prefix"
            ))
            return chargerChannel.eventLoop.makeSucceededFuture(nil)
        }
        handshake.findings = ChargerHandshake.findings(in: head)
        if self.configuration.strictWebSocket, let first = handshake.findings.first {
            handshake.refuse(.proxy(.badRequest, cause: "invalidUpgrade", detail: "\(first.detail) (\(first.clause))"))
            return chargerChannel.eventLoop.makeSucceededFuture(nil)
        }
        let session = RelaySession(
            id: handshake.connectionID, chargePoint: target.chargePointId, recorder: self.recorder, logger: self.logger,
            maximumMessageBytes: self.configuration.maximumMessageBytes, maximumFrameBytes: self.configuration.maximumFrameBytes,
            faults: self.configuration.faults,
            proxyStartNanos: self.startedNanos, limits: self.relayLimits
        ) { session in
            self.release(session)
        }
        // Outages exist only with fault injection; without it the relay skips the check entirely.
        if self.configuration.faults != nil {
            session.outages = self.outages
            session.startOutage = { chargePoint, duration, mode in self.startOutage(chargePoint: chargePoint, duration: duration, mode: mode) }
        }
        handshake.session = session
        if let mode = self.outages.active(for: target.chargePointId) {
            return self.refuseDuringOutage(handshake, mode: mode, eventLoop: chargerChannel.eventLoop)
        }
        let backendRelay = NIOLoopBound(RelayHandler(side: .backend, session: session), eventLoop: chargerChannel.eventLoop)
        handshake.backendRelay = backendRelay.value
        let requestTarget = self.configuration.upstream.requestTarget(path: target.path, query: target.query)
        let bound = NIOLoopBound(handshake, eventLoop: chargerChannel.eventLoop)
        // The charger's request line version, Connection header and key go to the backend as they came, so a
        // strict backend refuses what it would refuse without the proxy.
        let shape = WebSocketDialer.RequestShape(
            version: head.version,
            connection: handshake.findings.contains { $0.rule == "websocket.handshake.connectionHeader" }
                ? head.headers[canonicalForm: "Connection"].map(String.init) : nil,
            key: head.headers.first(name: "Sec-WebSocket-Key")
        )
        return self.dialer.dial(on: chargerChannel.eventLoop, target: requestTarget, chargerHeaders: head.headers, shape: shape) { channel in
            try RelayHandler.install(backendRelay.value, on: channel)
        }.map { outcome -> HTTPHeaders? in
            let handshake = bound.value
            switch outcome {
            case .upgraded(let backendChannel, let response):
                handshake.backendChannel = backendChannel
                handshake.backendResponse = response
                let action = handshake.phase.backendUpgraded(chargerOpen: chargerChannel.isActive)
                handshake.apply(action)
                guard action == .none else { return nil }
                return self.agreeSubprotocol(handshake, backendChannel: backendChannel)
            case .rejected(let rejection):
                let reason = rejection.status.reasonPhrase
                handshake.refuse(ChargerHandshake.Refusal(
                    status: rejection.status, headers: rejection.headers, body: rejection.body, cause: "upstreamStatus",
                    detail: "backend answered the upgrade with \(rejection.status.code) \(reason)"
                ))
                return nil
            }
        }.recover { error in
            let failure = UpstreamDialer.classify(error)
            bound.value.refuse(.proxy(failure.status, cause: failure.cause.rawValue, detail: failure.detail))
            return nil
        }
    }

    /// The charger's 101 carries the backend's choice; a choice the charger did not offer (or none, when it
    /// offered some) would be rejected by the charger, so the proxy refuses it with 502 and says why.
    func agreeSubprotocol(_ handshake: ChargerHandshake, backendChannel: any Channel) -> HTTPHeaders? {
        let chosen = handshake.chosenSubprotocol
        let offeredLowered = handshake.offered.map { $0.lowercased() }
        let agreed: Bool
        switch chosen {
        case .some(let chosen): agreed = offeredLowered.contains(chosen.lowercased())
        case .none: agreed = handshake.offered.isEmpty
        }
        guard agreed else {
            let detail =
                chosen.map { "backend chose subprotocol '\($0)', which the charger did not offer (\(handshake.offered.joined(separator: ", ")))" }
                ?? "backend accepted the upgrade without choosing any of the offered subprotocols (\(handshake.offered.joined(separator: ", ")))"
            handshake.refuse(.proxy(.badGateway, cause: "noSubprotocolAgreed", detail: detail))
            return nil
        }
        var headers = HTTPHeaders()
        if let chosen { headers.add(name: "Sec-WebSocket-Protocol", value: chosen) }
        // The backend's permessage-deflate answer goes to the charger as it is, so both hops compress alike.
        if let answer = handshake.backendResponse?.headers[canonicalForm: "Sec-WebSocket-Extensions"].joined(separator: ", "), !answer.isEmpty {
            let offered = self.configuration.forwardsCompression ? handshake.requestHeaders[canonicalForm: "Sec-WebSocket-Extensions"].map(String.init) : []
            switch PerMessageDeflate.accepted(answer, offered: offered) {
            case .success(let parameters):
                headers.add(name: "Sec-WebSocket-Extensions", value: parameters.header)
                // Under a policy with rules, messages may be changed, dropped or injected: the proxy then
                // forwards them uncompressed, which keeps both peers' contexts valid whatever it does.
                let policyInForce = !(self.configuration.faults?.engine?.policy.rules.isEmpty ?? true)
                handshake.session?.compression = RelayCompression(parameters: parameters, mode: policyInForce ? .decompressed : .passThrough)
            case .failure(let problem):
                let detail = offered.isEmpty ? "backend answered with the extension '\(answer)', which was not offered" : problem.description
                handshake.refuse(.proxy(.badGateway, cause: "extensionNotAgreed", detail: detail))
                return nil
            }
        }
        return headers
    }

    func startRelay(_ handshake: ChargerHandshake, chargerChannel: any Channel) throws {
        guard let session = handshake.session, let backendRelay = handshake.backendRelay,
            let backendChannel = handshake.backendChannel
        else {
            handshake.apply(handshake.phase.relayFailed())
            chargerChannel.close(promise: nil)
            return
        }
        let chargerRelay = RelayHandler(side: .charger, session: session)
        do {
            try RelayHandler.install(chargerRelay, on: chargerChannel)
        } catch {
            // The pair never starts: the backend's socket must not outlive the charger's.
            handshake.apply(handshake.phase.relayFailed())
            throw error
        }
        handshake.apply(handshake.phase.relayStarted())
        self.state.withLockedValue { state in
            state.pairs[session.id] = [chargerChannel, backendChannel]
            state.pairInfo[session.id] = ConnectionInfo(
                id: session.id, chargePoint: session.chargePoint, remote: handshake.remoteAddress,
                subprotocol: handshake.chosenSubprotocol, opened: Timestamp.now()
            )
            state.statistics.active += 1
        }
        self.metrics.active.increment()
        self.recordOpen(handshake, session: session, chargerChannel: chargerChannel, backendChannel: backendChannel)
        RelayHandler.link(charger: chargerRelay, backend: backendRelay)
    }

    func release(_ session: RelaySession) {
        let released = self.state.withLockedValue { state -> Bool in
            guard state.pairs.removeValue(forKey: session.id) != nil else { return false }
            state.pairInfo.removeValue(forKey: session.id)
            state.statistics.active -= 1
            state.statistics.closed += 1
            state.statistics.messagesToCSMS += session.messagesToCSMS
            state.statistics.messagesToCharger += session.messagesToCharger
            return true
        }
        guard released else { return }
        self.metrics.active.decrement()
        self.metrics.messagesToCSMS.increment(by: session.messagesToCSMS)
        self.metrics.messagesToCharger.increment(by: session.messagesToCharger)
    }
}
