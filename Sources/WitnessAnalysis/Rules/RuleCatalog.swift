import OCPPSchema

/// A deviation rule: a stable id users can script against, its severity and what it means.
public struct RuleInfo: Sendable, Hashable {
    public var id: String
    public var severity: Severity
    /// Rule family: `schema`, `rpc` or `tx`; JUnit output has one test case per pair and family.
    public var family: String { String(self.id.prefix(while: { $0 != "." })) }
    /// The specification clause the rule rests on (OCPP, OCPP-J, RFC 6455, JSON Schema).
    public var clause: String
    public var summary: String
    public var meaning: String
}

/// Every rule the analyzer applies. `docs/rules.md` is generated from this list (`ocpp-witness rules`).
public enum RuleCatalog {
    public static let all: [RuleInfo] = [
        // Schema
        RuleInfo(id: "schema.type", severity: .error, clause: "JSON Schema draft-04 5.5.2, draft-06 6.25; OCPP 2.0.1 Part 4 4.1.7", summary: "wrong JSON type",
                 meaning: "A field has a JSON type its schema does not allow, such as a number where OCPP 1.6 wants a string (`sampledValue.value`)."),
        RuleInfo(id: "schema.required", severity: .error, clause: "JSON Schema draft-04 5.4.3, draft-06 6.17; OCPP 2.0.1 Part 4 4.1.7", summary: "required field missing",
                 meaning: "A field the schema requires is absent. The path points at the missing field."),
        RuleInfo(id: "schema.additionalProperties", severity: .error, clause: "JSON Schema draft-04 5.4.4, draft-06 6.20; OCPP-J 1.6 errata 3.2", summary: "unknown field",
                 meaning: "A field the schema does not define, in an object that allows no others. Vendor extensions belong in `DataTransfer` or `customData`."),
        RuleInfo(id: "schema.enum", severity: .error, clause: "JSON Schema draft-04 5.5.1, draft-06 6.23; OCPP 1.6 2.2", summary: "value outside its enumeration",
                 meaning: "A value that is not one of the listed ones. In the lenient profile a value that differs only in letter case is a warning."),
        RuleInfo(id: "schema.maxLength", severity: .error, clause: "JSON Schema draft-04 5.2.1, draft-06 6.6", summary: "string too long",
                 meaning: "A string with more characters than its `maxLength` (counted in Unicode code points). A warning in the lenient profile."),
        RuleInfo(id: "schema.minLength", severity: .error, clause: "JSON Schema draft-04 5.2.2, draft-06 6.7", summary: "string too short", meaning: "A string shorter than its `minLength`."),
        RuleInfo(id: "schema.minimum", severity: .error, clause: "JSON Schema draft-04 5.1.3, draft-06 6.4", summary: "number below its minimum", meaning: "A number smaller than the schema's `minimum`."),
        RuleInfo(id: "schema.maximum", severity: .error, clause: "JSON Schema draft-04 5.1.2, draft-06 6.2", summary: "number above its maximum", meaning: "A number larger than the schema's `maximum`."),
        RuleInfo(id: "schema.multipleOf", severity: .error, clause: "JSON Schema draft-04 5.1.1, draft-06 6.1; OCPP 1.6 7.14", summary: "number not a multiple of its step",
                 meaning: "A number that is not a multiple of `multipleOf` (charging limits in steps of 0.1), compared on the exact decimal text."),
        RuleInfo(id: "schema.minItems", severity: .error, clause: "JSON Schema draft-04 5.3.3, draft-06 6.12", summary: "array too short", meaning: "An array with fewer items than `minItems`."),
        RuleInfo(id: "schema.maxItems", severity: .error, clause: "JSON Schema draft-04 5.3.2, draft-06 6.11", summary: "array too long", meaning: "An array with more items than `maxItems`."),
        RuleInfo(id: "schema.format", severity: .error, clause: "RFC 3339 5.6; OCPP 1.6 3.15; OCPP 2.0.1 Part 2 2.1.4", summary: "date-time or URI malformed",
                 meaning: "A `date-time` that is not RFC 3339 (a date-time without a time zone is a warning in the lenient profile), or a `uri` without a scheme."),
        // RPC
        RuleInfo(id: "rpc.malformed", severity: .error, clause: "OCPP-J 1.6 4.1.2, 4.2; OCPP 2.0.1 Part 4 4.1.2, 4.2", summary: "message is not OCPP-J",
                 meaning: "A text message that is not JSON, not an array, has the wrong number of elements, or fields of the wrong type. The detail gives the precise reason."),
        RuleInfo(id: "rpc.unknownMessageType", severity: .error, clause: "OCPP-J 1.6 4.1.3; OCPP 2.0.1 Part 4 4.1.3, 4.4", summary: "unknown message type",
                 meaning: "A message whose type is not 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR) or, in 2.1, 5 (CALLRESULTERROR) or 6 (SEND)."),
        RuleInfo(id: "rpc.messageTypeNotInVersion", severity: .error, clause: "OCPP 2.1 Part 4 4.1.3; OCPP 2.0.1 Part 4 4.1.3", summary: "2.1-only message type",
                 meaning: "CALLRESULTERROR (5) or SEND (6) used on a 1.6 or 2.0.1 connection. The message is not judged further against that version (its action is not also reported as unknown)."),
        RuleInfo(id: "rpc.binaryFrame", severity: .error, clause: "OCPP-J 1.6 4.1.2; OCPP 2.0.1 Part 4 4.1.2; RFC 6455 5.6", summary: "binary WebSocket frame",
                 meaning: "OCPP-J messages travel in text frames; a binary frame is not an OCPP message."),
        RuleInfo(id: "rpc.unknownMessageId", severity: .error, clause: "OCPP-J 1.6 4.1.4; OCPP 2.0.1 Part 4 4.1.4", summary: "answer to no outstanding CALL",
                 meaning: "A CALLRESULT or CALLERROR whose id matches no CALL the other side has outstanding: a late, duplicated or invented answer."),
        RuleInfo(id: "rpc.duplicateMessageId", severity: .error, clause: "OCPP-J 1.6 4.1.4, 4.2.3; OCPP 2.0.1 Part 4 4.1.4", summary: "message id reused while outstanding",
                 meaning: "A CALL with the id of a CALL from the same side that has not been answered yet."),
        RuleInfo(id: "rpc.concurrentCall", severity: .warning, clause: "OCPP-J 1.6 4.1.1; OCPP 2.0.1 Part 4 4.1.1", summary: "second CALL while one is outstanding",
                 meaning: "A side sent a CALL before its previous CALL was answered or timed out, which the specifications ask senders not to do."),
        RuleInfo(id: "rpc.timeout", severity: .error, clause: "OCPP-J 1.6 4.1.1; OCPP 2.0.1 Part 4 4.1.1", summary: "no answer in time",
                 meaning: "A CALL not answered within the response timeout (30 s unless configured)."),
        RuleInfo(id: "rpc.messageIdTooLong", severity: .error, clause: "OCPP-J 1.6 4.1.4; OCPP 2.0.1 Part 4 4.1.4", summary: "message id over 36 characters",
                 meaning: "OCPP-J limits message ids to 36 characters. Reported on the CALL that chose the id, not again on the answer that has to repeat it."),
        RuleInfo(id: "rpc.unknownAction", severity: .error, clause: "OCPP-J 1.6 4.2.1, 4.2.3; OCPP 2.0.1 Part 4 4.1.6, 4.1.7", summary: "action unknown to the version",
                 meaning: "A CALL whose action has no schema in the negotiated OCPP version (a 1.6 action on a 2.0.1 connection, a typo)."),
        RuleInfo(id: "rpc.unknownErrorCode", severity: .error, clause: "OCPP-J 1.6 4.2.3; OCPP 2.0.1 Part 4 4.3", summary: "CALLERROR code not in the version's list",
                 meaning: "An error code the negotiated version does not define, such as 1.6's `FormationViolation` on 2.0.1 or 2.0.1's `FormatViolation` on 1.6."),
        RuleInfo(id: "rpc.notImplementedRequired", severity: .error, clause: "OCPP 1.6 3.3; OCPP 2.0.1 Part 5 2", summary: "NotImplemented for a required action",
                 meaning: "A CALLERROR `NotImplemented` answering a valid CALL of an action every implementation of the version must support (1.6 Core profile, 2.0.1/2.1 core functional blocks)."),
        RuleInfo(id: "rpc.noSubprotocol", severity: .warning, clause: "OCPP-J 1.6 3.1.2; OCPP 2.0.1 Part 4 3.1.2", summary: "no OCPP subprotocol negotiated",
                 meaning: "The connection was opened without an OCPP subprotocol; messages are checked as OCPP 1.6."),
        // WebSocket (RFC 6455), found by the proxy on the upgrade request and on frames
        RuleInfo(id: "websocket.handshake.httpVersion", severity: .warning, clause: "RFC 6455 4.1 (2), 4.2.1 (1)", summary: "upgrade request older than HTTP/1.1",
                 meaning: "RFC 6455 4.1 (2) and 4.2.1 (1): the opening handshake is an HTTP/1.1 request. The proxy forwards the request line as it came (a strict backend refuses it) or, with `--strict-websocket`, refuses it with 400."),
        RuleInfo(id: "websocket.handshake.connectionHeader", severity: .warning, clause: "RFC 6455 4.1 (6), 4.2.1 (4)", summary: "upgrade request without Connection: Upgrade",
                 meaning: "RFC 6455 4.1 (6) and 4.2.1 (4): the request's Connection header must include the token `Upgrade`. The proxy forwards the charger's Connection header as it came, so the pilot shows whether the backend tolerates it; `--strict-websocket` refuses it with 400."),
        RuleInfo(id: "websocket.handshake.key", severity: .warning, clause: "RFC 6455 4.1 (7), 4.2.1 (5)", summary: "Sec-WebSocket-Key not 16 bytes",
                 meaning: "RFC 6455 4.1 (7) and 4.2.1 (5): the key is 16 random bytes in base64. The proxy forwards the key as it came; `--strict-websocket` refuses it with 400."),
        RuleInfo(id: "websocket.handshake.version", severity: .error, clause: "RFC 6455 4.2.2 (4), 4.4", summary: "unsupported Sec-WebSocket-Version",
                 meaning: "RFC 6455 4.2.2 (4) and 4.4: a version other than 13. The proxy cannot carry another version across and answers as the RFC says: 426 with `Sec-WebSocket-Version: 13`."),
        RuleInfo(id: "websocket.unmaskedFrame", severity: .error, clause: "RFC 6455 5.1", summary: "charger sent an unmasked frame",
                 meaning: "RFC 6455 5.1: a client masks every frame it sends. Forwarded as it came (the backend should fail the connection with 1002) and recorded once per connection; `--strict-websocket` fails it with 1002 on both sides."),
        RuleInfo(id: "websocket.maskedFrame", severity: .error, clause: "RFC 6455 5.1", summary: "backend sent a masked frame",
                 meaning: "RFC 6455 5.1: a server never masks its frames. Forwarded as it came and recorded once per connection; `--strict-websocket` fails it with 1002 on both sides."),
        RuleInfo(id: "websocket.reservedBits", severity: .error, clause: "RFC 6455 5.2; RFC 7692 6", summary: "reserved bits set without an extension",
                 meaning: "RFC 6455 5.2: RSV1, RSV2 and RSV3 are zero unless a negotiated extension defines them; permessage-deflate (RFC 7692 6) defines RSV1 on a message's first frame only. Forwarded as it came and recorded once per connection; `--strict-websocket` fails it with 1002 on both sides."),
        RuleInfo(id: "websocket.invalidUTF8", severity: .error, clause: "RFC 6455 5.6, 8.1; OCPP-J 1.6 4.1.2", summary: "text message that is not UTF-8",
                 meaning: "RFC 6455 5.6 and 8.1: a text message's data is UTF-8, and an endpoint that finds it is not fails the connection (1007). Forwarded as it came (a strict backend closes with 1007, and that is on record); the capture keeps its exact bytes as base64 with `invalidUTF8: true`; `--strict-websocket` fails it with 1007 on both sides."),
        // Connectors and EVSEs (the charger model)
        RuleInfo(id: "connector.transactionBusy", severity: .error, clause: "OCPP 1.6 4.9, 7.7, errata 3.16; OCPP 2.0.1 E01.FR.14", summary: "second transaction on a busy connector",
                 meaning: "A transaction started (1.6 StartTransaction, 2.0.1 TransactionEvent Started) on a connector (1.6) or EVSE (2.0.1) on which another transaction was still running. At most one transaction is active on an EVSE (2.0.1 E, E01.FR.14); in 1.6 a new transaction on a connector follows the previous one's stop. The earlier transaction is not reported again as `tx.notStopped`. A start sent again with the same content is `tx.resent`, not this."),
        RuleInfo(id: "connector.mismatch", severity: .error, clause: "OCPP 1.6 4.7, errata 3.16; OCPP 2.0.1 E01.FR.14, E01.FR.16", summary: "message names another connector than its transaction's",
                 meaning: "1.6 MeterValues whose `connectorId` is not the connector their `transactionId` runs on (\"the Transaction that is ongoing on that connector\", errata 3.16); a 2.0.1 TransactionEvent whose `evse` is not its transaction's EVSE."),
        RuleInfo(id: "connector.statusDuringTransaction", severity: .warning, clause: "OCPP 1.6 7.7, 4.9", summary: "connector Available while its transaction runs (1.6)",
                 meaning: "1.6: a StatusNotification Available (\"available for a new user\") on a connector whose transaction began before the status and stopped after it, by the messages' own timestamps: a charger that delivers queued transaction messages after its live statuses is not flagged. Judged at the stop; a transaction that never stops is `tx.notStopped` alone. Not applied to 2.0.1, where the connector status follows the cable and a transaction may run without one (TxStartPoint, G01.FR.03/04)."),
        RuleInfo(id: "connector.zeroStatus", severity: .error, clause: "OCPP 1.6 4.9, 7.7, Appendix A.1", summary: "connector 0 reported a connector-only status (1.6)",
                 meaning: "1.6: a StatusNotification for connector 0 (the charge point as a whole) with a status other than Available, Unavailable or Faulted."),
        // Security
        RuleInfo(id: "security.basicUserMismatch", severity: .error, clause: "OCPP 1.6 Security White Paper A00.FR.204; OCPP 2.0.1 A00.FR.204", summary: "Basic-auth user is not the charge point id",
                 meaning: "Security profiles 1 and 2 use the charge point id as the Basic-auth user name; a connection authenticated as another user."),
        RuleInfo(id: "security.certificateMismatch", severity: .error, clause: "OCPP 1.6 Security White Paper A00.FR.405; OCPP 2.0.1 A00.FR.405", summary: "client certificate CN names another charger",
                 meaning: "Security profile 3: the subject common name of the charger's client certificate holds its serial number (A00.FR.405, A00.FR.511); many sites use the charge point id instead. A certificate whose CN is neither the charge point id nor the serial number of the charger's BootNotification on that connection (or, when the connection's first message is another one, the serial number it gave last), or that has no CN. Judged at the BootNotification, the connection's first other message or its end; with no serial number to compare with at all it is `info`. The finding points at the connection's open record."),
        RuleInfo(id: "security.downgrade", severity: .error, clause: "OCPP 1.6 Security White Paper A00.FR.001, .005; OCPP 2.0.1 A00.FR.005", summary: "connected without TLS after TLS",
                 meaning: "A charge point seen over TLS earlier in the capture connected without TLS: a downgrade of its security profile."),
        // Transactions and metering
        RuleInfo(id: "tx.registerBackwards", severity: .error, clause: "OCPP 1.6 7.31; OCPP 2.0.1 J02.FR.16", summary: "energy register went backwards",
                 meaning: "An `Energy.Active.Import.Register` reading lower than an earlier one of the same transaction, ordered by the readings' own timestamps (arrival order for readings without one): a reading dated before the latest one must not be above it. The Transaction.Begin reading that a 1.6 StopTransaction's transactionData repeats is judged against the meter start only. Bills computed from such readings do not reconcile."),
        RuleInfo(id: "tx.sampleOutOfRange", severity: .error, clause: "OCPP 1.6 6.45, 6.49, 7.31", summary: "meter reading outside start..stop",
                 meaning: "A register reading below the transaction's meter start or above its meter stop."),
        RuleInfo(id: "tx.timestampOutside", severity: .error, clause: "OCPP 1.6 4.7, errata 3.16; OCPP 2.0.1 J02.FR.10", summary: "meter reading timestamped outside the transaction",
                 meaning: "A meter value whose timestamp is before the transaction started or after it stopped, by more than the clock tolerance (1 s; `report --clock-tolerance`): readings taken within one message, or by a clock of whole seconds, are not a deviation."),
        RuleInfo(id: "tx.timestampInFuture", severity: .error, clause: "OCPP 1.6 3.15, 6.45, 6.49; OCPP 2.0.1 Part 2 2.1.4", summary: "timestamp in the future",
                 meaning: "A transaction or meter timestamp more than 60 s after the moment the proxy saw the message."),
        RuleInfo(id: "tx.unknownTransactionId", severity: .error, clause: "OCPP 1.6 6.49, errata 3.18; OCPP 2.0.1 Part 2 1.60.1", summary: "transaction id not the one assigned",
                 meaning: "1.6: MeterValues or StopTransaction with a transaction id the CSMS never assigned to this charger (the id -1, which a charger that never got its id sends, is allowed: 1.6 errata 3.18). 2.0.1: an Updated or Ended event for a transaction that never started. Both: a message for a transaction that stopped which is neither a resend (`tx.resent`) nor readings dated before the stop (`tx.deliveredAfterStop`): a second, different stop, or readings dated after the stop; the detail names the stop's line. A transaction the capture never saw begin may have begun before it (the proxy put in during a pilot): named on a connector on which no transaction began in view (1.6) or none runs (2.0.1, whose events may arrive before their Started event, which then fills in the start), it is `info`, once, and followed from that message on; a message naming no connector is adopted so only while no other transaction runs. Late messages of a transaction released after the state retention belong to the `tx.notStopped` reported then."),
        RuleInfo(id: "tx.energyMismatch", severity: .error, clause: "OCPP 1.6 6.45, 6.49, 7.35; OCPP 2.0.1 E01.FR.09, E06.FR.11", summary: "start/stop disagree with meter readings",
                 meaning: "The transaction's begin or end register reading differs from its meter start or stop by more than the tolerance (0.5%, at least 10 Wh)."),
        RuleInfo(id: "tx.resent", severity: .info, clause: "OCPP 1.6 3.7.1, 9.1.31; OCPP 2.0.1 E13.FR.01-04", summary: "transaction message sent again",
                 meaning: "A transaction message (1.6 StartTransaction, MeterValues, StopTransaction; 2.0.1 TransactionEvent) with the same content as one of the same transaction seen before: the charger sent it again because it did not get the answer, as OCPP asks it to. Listed with both lines (`related`) and not judged a second time; a resent start's answer assigns the id the charger goes on with."),
        RuleInfo(id: "tx.deliveredAfterStop", severity: .warning, clause: "OCPP 1.6 3.7; OCPP 2.0.1 E 1.3.2", summary: "readings delivered after their transaction's stop",
                 meaning: "A message of a transaction that stopped, dated before the stop but delivered after it. 1.6 asks chargers to deliver transaction messages in chronological order (warning). 2.0.1 expects reordering after retries and orders events by `seqNo`: an event numbered below the Ended event's is `info`; one numbered above it is `tx.unknownTransactionId`."),
        RuleInfo(id: "tx.seqNoGap", severity: .error, clause: "OCPP 2.0.1 Part 2 E 1.3.2 (seqNo)", summary: "events of a 2.0.1 transaction never arrived",
                 meaning: "2.0.1/2.1: the seqNo of a transaction's events, from its Started event's (or the lowest seen, for a transaction the capture joined mid-way) to the highest, has a gap: events the backend never got. Events may arrive late and out of order (E 1.3.2), so it is decided for a transaction that ended, when no late event can come any more: at the end of the capture, when the charge point is released after the state retention, or when 8 later transactions of the charger have stopped (a transaction that never ended is `tx.notStopped`, not this). A message the proxy's own drop fault kept back is in the capture and counts as seen; a resend with the same seqNo is no repeat. A charger seen numbering per station (a Started event other than 0 while another of its transactions runs) is judged with the numbers its other transactions used. Numbers below 0 or from 2^24 are not followed, nor a transaction whose numbers fall into more than 64 separate runs."),
        RuleInfo(id: "tx.seqNoTimeOrder", severity: .warning, clause: "OCPP 2.0.1 Part 2 E 1.3.2, 1.60.1 (timestamp)", summary: "2.0.1 events numbered in one order and dated in another",
                 meaning: "2.0.1/2.1: an event whose seqNo is above the highest so far but dated before that event (or below it and dated after), by more than the clock tolerance: queued events keep their order and the times they happened."),
        RuleInfo(id: "tx.offlineNotFlagged", severity: .warning, clause: "OCPP 2.0.1 Part 2 1.60.1 (offline)", summary: "2.0.1 event that happened offline without offline: true",
                 meaning: "2.0.1/2.1: a TransactionEvent dated inside an outage of its charger (a period of one proxy run in which the proxy had no connection of it, the clock tolerance kept clear of both ends) that does not say `offline: true`, judged on the proxy's clock: the charger's timestamps are moved by how far behind they ran on its live events. Once per transaction and outage, on its first such event. The detail names the open record that ended the outage."),
        RuleInfo(id: "tx.stampedAtDelivery", severity: .error, clause: "OCPP 1.6 3.7, 4.7, 4.8; OCPP 2.0.1 1.60.1 (timestamp)", summary: "queued start stamped when delivered",
                 meaning: "A transaction whose start is dated after an outage of its charger (a period of one proxy run without a connection of it) while readings of that transaction are dated inside the outage (from its start to the reconnection less the clock tolerance): the queued start was stamped when it was delivered, not when it happened. Reported once, on the first such reading, instead of `tx.timestampOutside` for each. Second form: a transaction whose start (1.6 meterStart, 2.0.1 the Started event's reading) arrived within 5 minutes of a reconnection and is dated at or after it (the last outage without a connection that ended before the reading arrived, less the clock tolerance), and a later reading, the stop's included, with more energy since the start than 1 MW delivers in the time between their timestamps plus a second (or the clock tolerance): the queue was stamped as it went out. A transaction whose identifier was authorized online on its connection (an Authorize answered Accepted, a remote start; 2.0.1 a Started event not flagged offline) was not queued and is not judged so. A charger that re-bases its meter start to 0 while its readings carry the absolute register would look the same; none is known. A session that truly began at the reconnection, whose readings follow its start in time, is flagged by neither."),
        RuleInfo(id: "tx.notStopped", severity: .info, clause: "OCPP 1.6 4.10; OCPP 2.0.1 Part 2 1.60.1", summary: "transaction still open at the end of the capture",
                 meaning: "A transaction that started but had not stopped when the capture ended; it may still be running, or its stop was lost. Also reported, and no longer followed, when its charge point has been gone longer than the state retention (`--state-retention`, a day by default), or when a 65th transaction of the same charge point begins while 64 are open."),
        // Metering
        RuleInfo(id: "meter.interval", severity: .warning, clause: "OCPP 1.6 3.16.1, 9.1.19; OCPP 2.0.1 J02.FR.11, SampledDataCtrlr.TxUpdatedInterval", summary: "periodic readings not at the configured interval",
                 meaning: "A stopped transaction whose periodic readings (context `Sample.Periodic`: 1.6 MeterValues, 2.0.1 TransactionEvent Updated), by their own timestamps, came at a median interval that differs from the configured sample interval by more than the interval tolerance (10% of it unless `--interval-tolerance` or the site's `intervalTolerance` says otherwise, never less than the clock tolerance). The interval is the charger's as the capture shows it (GetConfiguration, an accepted ChangeConfiguration, GetVariables, an accepted SetVariables, NotifyReport), else the site's declaration; one changed while the transaction ran, or 0 (no sampled data), judges nothing. Needs at least three intervals; intervals overlapping an outage or crossing proxy runs are left out of the median, and a transaction whose queue was stamped at delivery (`tx.stampedAtDelivery`) is not judged. Reported once per transaction, on its last periodic reading."),
        RuleInfo(id: "meter.gap", severity: .warning, clause: "OCPP 1.6 3.16.1, 9.1.19; OCPP 2.0.1 J02.FR.11", summary: "periodic readings stopped for more than two intervals",
                 meaning: "A stopped transaction with more than twice the configured interval (plus the tolerance) without a periodic reading while the charger was connected: between two readings, from the last reading to the stop, from a 1.6 start to the first reading (a 2.0.1 start may precede the charging, E01.FR.17), or a whole transaction without one; a gap that overlaps an outage is shown in the cadence table, not reported (queuing readings while offline is a SHOULD). The worst such gap, once per transaction; not reported when `meter.interval` already is."),
        RuleInfo(id: "meter.offGrid", severity: .warning, clause: "OCPP 1.6 3.16.2, 9.1.5; OCPP 2.0.1 J01.FR.22, AlignedDataCtrlr.Interval", summary: "clock-aligned reading off its grid",
                 meaning: "A reading with context `Sample.Clock` in a transaction whose time is not on the configured clock-aligned interval's grid from midnight (in the time zone its timestamp names), beyond the clock tolerance. Once per transaction, with how many were off."),
        RuleInfo(id: "meter.measurandMissing", severity: .warning, clause: "OCPP 1.6 3.16.1, 3.16.3, 9.1.17, 9.1.27; OCPP 2.0.1 J02.FR.11, SampledDataCtrlr.TxUpdatedMeasurands, TxEndedMeasurands", summary: "configured measurand missing",
                 meaning: "Periodic readings of a transaction that lack a configured sampled measurand (1.6 MeterValuesSampledData, 2.0.1 TxUpdatedMeasurands; an entry with a phase, `Voltage.L1`, needs that phase), or readings carried by its end (1.6 StopTransaction `transactionData`, 2.0.1 the Ended event) that lack a configured stop measurand (StopTxnSampledData, TxEndedMeasurands); an end carrying no readings is not judged. Once per transaction and kind, on the first reading that lacks one, listing all missing."),
        RuleInfo(id: "meter.notDecimal", severity: .error, clause: "OCPP 1.6 7.43", summary: "1.6 reading that is not a decimal number",
                 meaning: "A 1.6 `sampledValue.value` that is neither a decimal number (`1234`, `-0.5`) nor `format: SignedData`: the schema allows any string, billing cannot read it. Once per transaction; the cadence table counts the rest. (2.0.1 values are JSON numbers, checked by the schema.)"),
        RuleInfo(id: "meter.signatureInvalid", severity: .error, clause: "OCMF (SAFE e.V.) signature section; OCPP 1.6 7.45 (SignedData); OCPP 2.0.1 2.46 SignedMeterValueType", summary: "signed meter value that does not verify",
                 meaning: "A signed meter value (1.6 `format: SignedData`, 2.0.1 `signedMeterValue`) whose OCMF signature (ECDSA-secp256r1-SHA256 or ECDSA-brainpoolP256r1-SHA256, over the payload section as it stands) does not verify with the public key the message carries, else the charger's configured MeterPublicKey, else the report's `--meter-key`. Signed data in another format than OCMF (1.6 allows any), values without a key, and other algorithms are not judged (docs/billing.md)."),
        RuleInfo(id: "meter.signedMismatch", severity: .error, clause: "OCMF RD (RV, RU); OCPP 1.6 7.45; OCPP 2.0.1 J02 (signed and unsigned values of one meter value)", summary: "signed reading differs from the unsigned one",
                 meaning: "A signed meter value whose last energy reading (RV of the 1.8.0 register in kWh or Wh, kWh with three decimals; other readings such as cable loss are not compared) differs by more than 1 Wh from the unsigned Energy.Active.Import.Register reading of the same meter value and context (2.0.1: the same sampled value): the bill and the calibrated meter disagree."),
        RuleInfo(id: "meter.signedMissing", severity: .warning, clause: "OCMF pagination and TX markers (the first record of a transaction B, the last E)", summary: "signed values without a signed start or end",
                 meaning: "A transaction with signed meter values none of which is its begin (TX B) or none of which is its end (TX E): the signed values cannot prove the energy from start to stop. Reported at the stop."),
        RuleInfo(id: "meter.signedPagination", severity: .warning, clause: "OCMF PG (pagination: the transaction counter T counts up by one per record)", summary: "signed values not paginated upwards",
                 meaning: "A signed value of a transaction whose transaction pagination (`PG` T<n>) is not above that of an earlier signed value of the same transaction: a record repeated or replayed. Records left out between two values are not judged (a charger may send only the begin and the end). Once per transaction."),
        RuleInfo(id: "meter.keyChanged", severity: .warning, clause: "OCMF: all records of a transaction from one signing source", summary: "signing key changes within a transaction",
                 meaning: "A transaction whose signed meter values come with another public key than its first signed value. Once per transaction."),
        // Remote commands
        RuleInfo(id: "command.notCarriedOut", severity: .warning, clause: "OCPP 1.6 5.2, 5.11, 5.12, 5.14, 5.17, 5.18; OCPP 2.0.1 B11.FR.03, F01, F03, F05, F06, G03", summary: "accepted command without its effect",
                 meaning: "A command the backend (or a policy) sent and the charger accepted whose effect did not follow within the command window (120 s unless `report --command-window` says otherwise): no BootNotification after a Reset; no transaction after a remote start (on its connector, or tied by 2.0.1 remoteStartId); the transaction not ended after a remote stop, or after an UnlockConnector while it ran; no status Unavailable / operative after a ChangeAvailability; no message asked for by a TriggerMessage. Commands whose effect the wire cannot show are counted `notObservable`, not reported: a Reset OnIdle while a transaction runs, an answer Scheduled, an UnlockConnector on a connector without a transaction, a ChangeAvailability to the state the connector has, a configuration change or charging profile. Reported on the answer, citing the command; one still within its window when the capture or proxy run ends is `undecided`."),
        // Features claimed and observed
        RuleInfo(id: "feature.claimedButRefused", severity: .warning, clause: "OCPP 1.6 3.3, 9.1.29 (SupportedFeatureProfiles); OCPP-J 1.6 4.2.3 and OCPP 2.0.1 Part 4 4.3 (NotSupported, NotImplemented); OCPP 2.0.1 Part 2 Referenced Components and Variables (Available), K01.FR.29", summary: "feature claimed, then refused",
                 meaning: "A feature the charger claims (1.6 SupportedFeatureProfiles, or a profile's configuration keys; 2.0.1/2.1 a controller's `Available` true, or its `Enabled`), that its vendor declares supported or implemented (`report --declaration`), or that the version requires, whose CALL the charger answered CALLERROR NotSupported or NotImplemented, or with the status that refuses the feature (1.6 SendLocalList NotSupported, GetLocalListVersion -1, SetChargingProfile NotSupported). A business `Rejected` is no refusal, and a feature its configuration shows disabled may be refused. Once per pair and feature, on the first refusal, citing the claim."),
        RuleInfo(id: "feature.usedNotClaimed", severity: .info, clause: "OCPP 1.6 3.3, 9.1.29 (SupportedFeatureProfiles); OCPP 2.0.1 Part 2 Referenced Components and Variables (Available)", summary: "feature used though not claimed",
                 meaning: "A feature the charger says it lacks (1.6 SupportedFeatureProfiles without it; 2.0.1/2.1 `Available` false) or its vendor declares unsupported, used and answered without a refusal: the claim under-reports what the charger does. Features every implementation of the version must support are never reported. Once per pair and feature, on the first use that worked, citing the claim."),
        // Billing
        RuleInfo(id: "billing.priceMismatch", severity: .error, clause: "The site's tariff (policy `site.tariff`); OCPP 2.0.1 I03, I05 (totalCost includes taxes)", summary: "backend's price differs from the site's tariff",
                 meaning: "A stopped transaction whose cost the backend told (2.0.1 `totalCost` in its answer to the Ended TransactionEvent, else its latest running cost: CostUpdated, or an answer to an Updated event) differs from the price the site's tariff gives for the transaction's register energy, time charging and time parked after the grace period, with the session fee and tax, by more than half the tariff's rounding step. Reported on the stop, citing the start and the cost, with the arithmetic."),
        RuleInfo(id: "billing.energyMismatch", severity: .warning, clause: "OCPP 1.6 3.16.3, 7.31; OCPP 2.0.1 J02, Part 2 Appendix 7 (Energy.Active.Import.Interval)", summary: "interval energy disagrees with the register",
                 meaning: "A stopped transaction whose Energy.Active.Import.Interval readings add up to another energy than its register gives from start to stop (meterStop − meterStart in 1.6, the last register reading less the first in 2.0.1), by more than 1% or 10 Wh: the charger's own figures do not reconcile. Reported on the stop."),
        // Offline authorization and site declarations
        RuleInfo(id: "auth.offlineNotAllowed", severity: .warning, clause: "OCPP 1.6 3.5, 3.5.4, 9.1.1; OCPP 2.0.1 C13.FR.02, C15", summary: "transaction started offline with an identifier not allowed",
                 meaning: "A transaction started while its charger was offline (1.6: a StartTransaction dated inside an outage; 2.0.1: a Started event with `offline: true` or dated inside one) with an identifier the capture shows the charger could not know as valid: the local list holds it as not valid (while the list is not switched off: rejected whatever else is allowed, 1.6 3.5.4); or, while offline transactions for unknown identifiers are not allowed, the backend answered it Blocked, Invalid, Expired or (2.0.1) Unknown and never accepted it since, or the charger's cache was cleared (ClearCache) and the identifier was not accepted since nor is in a local list the capture knows whole (AllowOfflineTxForUnknownId / OfflineTxForUnknownIdEnabled false, from the capture or the site's declaration). Where the capture cannot show it (an authorization cache is invisible on the wire) there is no finding, and an `offlineAuthorization` check is inconclusive."),
        RuleInfo(id: "site.configurationConflict", severity: .warning, clause: "The site's declaration (policy `site:`); OCPP 1.6 9.1, 9.2; OCPP 2.0.1 Part 2 Appendices (controller variables)", summary: "charger configured otherwise than the site declares",
                 meaning: "A setting the site declares (sample interval, clock-aligned interval, measurands, local authorization offline, unknown identifiers offline, local list, stop on invalid identifier) that the charger reports or accepts with another value: in a GetConfiguration or GetVariables answer, an accepted ChangeConfiguration or SetVariables, or a NotifyReport. Once for each value the charger changes to (a charger that keeps reporting the same value is reported once); the charger's value is what metering and offline authorization are then judged by."),
    ]

    public static let byId: [String: RuleInfo] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })

    /// Markdown for `docs/rules.md`.
    public static var markdown: String {
        var lines = [
            "# Deviation rules",
            "",
            "Generated by `ocpp-witness rules` from the analyzer's rule catalogue; do not edit by hand.",
            "Rule ids are stable: reports, JUnit output and scripts use them.",
            "",
            "Each rule names the clause it rests on, also in every deviation of a report (`clause`): OCPP 1.6 edition 2 and its",
            "errata sheet (sections), OCPP-J 1.6, the OCPP 1.6 Security White Paper, OCPP 2.0.1 edition 3 (Part 2 requirement",
            "ids such as E01.FR.14, Part 4 sections), OCPP 2.1, RFC 6455 and the JSON Schema validation drafts 04 (1.6 schemas)",
            "and 06 (2.0.1 and 2.1 schemas).",
            "",
        ]
        for family in ["schema", "rpc", "websocket", "security", "tx", "connector", "meter", "billing", "command", "feature", "auth", "site"] {
            let title = [
                "schema": "Schema (the official OCA JSON schemas)", "rpc": "RPC framework (OCPP-J)", "websocket": "WebSocket (RFC 6455), found by the proxy",
                "security": "Security profiles", "tx": "Transactions and metering", "connector": "Connectors and EVSEs (the charger model)",
                "meter": "Meter cadence and format", "command": "Remote commands", "feature": "Features claimed and observed", "billing": "Billing", "auth": "Offline authorization", "site": "Site declarations",
            ][family] ?? family
            lines += ["## " + title, "", "| rule | severity | clause | meaning |", "|---|---|---|---|"]
            for rule in all where rule.family == family {
                lines.append("| `\(rule.id)` | \(rule.severity.rawValue) | \(rule.clause) | **\(rule.summary).** \(rule.meaning) |")
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}
