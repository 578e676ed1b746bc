"""A charger that loses its network during a session and delivers its offline queue afterwards, built on the
`ocpp` library from PyPI (not on OCPP Witness code).

Usage: outage_session.py URL CHARGE_POINT_ID VERSION OUTAGE_SECONDS
VERSION is 1.6 or 2.0.1; OUTAGE_SECONDS is a float (e.g. 5). Connects to URL/CHARGE_POINT_ID offering ocpp1.6
or ocpp2.0.1 and behaves as correct firmware with an offline queue does: boot, status, authorize, a
transaction started online with one periodic reading sent online, then the websocket is closed (the
network is lost). Two readings are taken while offline, at OUTAGE/3 and 2*OUTAGE/3 after the close, each
stamped with the time it was taken, and queued. OUTAGE seconds after the close a new websocket is opened
(no BootNotification: a network loss is not a reboot), the queue is delivered in order with its original
timestamps, the transaction is stopped online, and the very same stop is sent a second time (identical
content, new message id), as a charger that did not get the answer would. Every reading lies strictly
between the transaction's start and stop values and every time within its start and stop times. Prints one
JSON line summarising what the central system answered (values that vary from run to run, like
transaction ids, are left out). Exits non-zero if anything failed.

Meter values (Wh): start 1000, online reading 1500, offline readings 2000 and 2500, stop 3000.

Messages sent with 1.6, in this order:
  connection 1: BootNotification; StatusNotification 1 Available; Authorize PYTAGOUT;
    StartTransaction 1 (meterStart 1000) -> T; MeterValues 1/T 1500 (Sample.Periodic); websocket closed.
  offline, queued (not sent): MeterValues 1/T 2000 at OUTAGE/3; MeterValues 1/T 2500 at 2*OUTAGE/3.
  connection 2 (opened OUTAGE after the close): MeterValues 1/T 2000; MeterValues 1/T 2500 (both with the
    times they were taken); StopTransaction T (meterStop 3000, reason Local); the same StopTransaction again
    (same fields and timestamp, new message id); StatusNotification 1 Available; websocket closed.
Messages sent with 2.0.1, in this order:
  connection 1: BootNotification (PowerUp); StatusNotification EVSE 1/1 Available; Authorize PYTOKOUT;
    TransactionEvent Started py-out-1 seqNo 0 (EVSE 1/1, 1000 Wh Transaction.Begin, Authorized);
    TransactionEvent Updated seqNo 1 (1500 Wh Sample.Periodic, MeterValuePeriodic); websocket closed.
  offline, queued (not sent): TransactionEvent Updated seqNo 2 (2000 Wh, offline true) at OUTAGE/3;
    TransactionEvent Updated seqNo 3 (2500 Wh, offline true) at 2*OUTAGE/3.
  connection 2 (opened OUTAGE after the close): Updated seqNo 2; Updated seqNo 3 (both offline true, with
    the times they were taken); TransactionEvent Ended seqNo 4 (3000 Wh Transaction.End, StopAuthorized,
    stoppedReason Local); the same Ended event again (same seqNo and timestamp, new message id);
    StatusNotification EVSE 1/1 Available; websocket closed.
"""
import asyncio
import contextlib
import json
import sys
from datetime import datetime, timezone

import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

METER_START, ONLINE_READING, OFFLINE_READINGS, METER_STOP = 1000, 1500, (2000, 2500), 3000
TAG_16 = "PYTAGOUT"
TOKEN_201 = {"id_token": "PYTOKOUT", "type": "ISO14443"}
TRANSACTION_201 = "py-out-1"


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Charger:
    """The charger's state survives the network loss; each connection gets its own websocket and ChargePoint."""

    side = None
    version = None

    def __init__(self, url, charge_point_id):
        self.url, self.charge_point_id = url, charge_point_id
        self.websocket = self.charge_point = self.listener = None
        self.connections = 0
        self.subprotocol = None
        self.timestamps = []  # every time the transaction's messages carry, in the order they were taken

    async def connect(self):
        self.websocket = await websockets.connect(f"{self.url}/{self.charge_point_id}", subprotocols=[f"ocpp{self.version}"])
        assert self.websocket.subprotocol == f"ocpp{self.version}", self.websocket.subprotocol
        self.subprotocol = self.websocket.subprotocol
        self.charge_point = self.side(self.charge_point_id, self.websocket)
        self.listener = asyncio.create_task(self.charge_point.start())
        self.connections += 1

    async def disconnect(self):
        self.listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.listener
        await self.websocket.close()
        self.websocket = self.charge_point = self.listener = None

    async def call(self, payload):
        # suppress=False: a CALLERROR raises instead of coming back as None.
        return await self.charge_point.call(payload, suppress=False)

    def stamp(self):
        timestamp = now()
        self.timestamps.append(timestamp)
        return timestamp

    async def run(self, outage):
        loop = asyncio.get_running_loop()
        summary = {}
        await self.connect()
        summary["boot"] = await self.boot()
        await self.call(self.available())
        summary["authorize"] = await self.authorize()
        summary["started"] = await self.start()
        await self.call(self.reading(ONLINE_READING, offline=False))

        # The network is lost.
        await self.disconnect()
        closed_at = loop.time()
        queue = []
        for index, wh in enumerate(OFFLINE_READINGS, start=1):
            await asyncio.sleep(max(0.0, closed_at + outage * index / 3 - loop.time()))
            queue.append(self.reading(wh, offline=True))
        await asyncio.sleep(max(0.0, closed_at + outage - loop.time()))

        # The network is back: a new connection, no BootNotification, the queue delivered in order as it was built.
        await self.connect()
        for payload in queue:
            await self.call(payload)
        summary["queued"] = len(queue)
        stop = self.stop()
        answers = [await self.call(stop), await self.call(stop)]  # the second one is the very same message again
        summary.update(self.stop_summary(answers))
        await self.call(self.available())
        await self.disconnect()

        summary["reconnected"] = self.connections == 2
        summary["subprotocol"] = self.subprotocol
        times = [datetime.fromisoformat(timestamp.replace("Z", "+00:00")) for timestamp in self.timestamps]
        assert all(earlier < later for earlier, later in zip(times, times[1:])), self.timestamps
        return summary


class Charger16(Charger):
    side = ChargePoint16
    version = "1.6"

    async def boot(self):
        boot = await self.call(call16.BootNotification(charge_point_model="PyOutage", charge_point_vendor="PyVendor"))
        assert boot.status == "Accepted", boot
        return boot.status

    def available(self):
        return call16.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now())

    async def authorize(self):
        authorize = await self.call(call16.Authorize(id_tag=TAG_16))
        assert authorize.id_tag_info["status"] == "Accepted", authorize
        return authorize.id_tag_info["status"]

    async def start(self):
        started = await self.call(
            call16.StartTransaction(connector_id=1, id_tag=TAG_16, meter_start=METER_START, timestamp=self.stamp())
        )
        assert started.id_tag_info["status"] == "Accepted", started
        assert isinstance(started.transaction_id, int), started
        self.transaction_id = started.transaction_id
        return started.id_tag_info["status"]

    def reading(self, wh, offline):
        # 1.6 has no offline flag: a queued MeterValues is the same message, delivered later with its own time.
        sampled = {"value": str(wh), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        return call16.MeterValues(
            connector_id=1, transaction_id=self.transaction_id, meter_value=[{"timestamp": self.stamp(), "sampledValue": [sampled]}]
        )

    def stop(self):
        return call16.StopTransaction(
            meter_stop=METER_STOP, timestamp=self.stamp(), transaction_id=self.transaction_id, id_tag=TAG_16, reason="Local"
        )

    def stop_summary(self, answers):
        return {"stops": [(answer.id_tag_info or {}).get("status") for answer in answers]}


class Charger201(Charger):
    side = ChargePoint201
    version = "2.0.1"

    def __init__(self, *args):
        super().__init__(*args)
        # OCPP 2.0.1 Part 2, E. Transactions, 1.3.2 "Sequence numbers": the first TransactionEventRequest of a
        # transaction carries seqNo 0 and each one after goes up by 1, queued ones included.
        self.seq_no = 0

    async def boot(self):
        boot = await self.call(
            call201.BootNotification(charging_station={"model": "PyOutage201", "vendor_name": "PyVendor"}, reason="PowerUp")
        )
        assert boot.status == "Accepted", boot
        return boot.status

    def available(self):
        return call201.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1)

    async def authorize(self):
        authorize = await self.call(call201.Authorize(id_token=TOKEN_201))
        assert authorize.id_token_info["status"] == "Accepted", authorize
        return authorize.id_token_info["status"]

    def event(self, event_type, trigger_reason, transaction_info, wh, context, **extra):
        # One clock reading for both the event and its reading: the reading is taken when the event is built.
        timestamp = self.stamp()
        sampled = {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}
        payload = call201.TransactionEvent(
            event_type=event_type, timestamp=timestamp, trigger_reason=trigger_reason, seq_no=self.seq_no,
            transaction_info=transaction_info, meter_value=[{"timestamp": timestamp, "sampledValue": [sampled]}], **extra,
        )
        self.seq_no += 1
        return payload

    async def start(self):
        started = await self.call(
            self.event(
                "Started", "Authorized", {"transaction_id": TRANSACTION_201, "charging_state": "Charging"}, METER_START,
                "Transaction.Begin", evse={"id": 1, "connector_id": 1}, id_token=TOKEN_201,
            )
        )
        status = (started.id_token_info or {}).get("status")
        assert status == "Accepted", started
        return status

    def reading(self, wh, offline):
        extra = {"offline": True} if offline else {}
        return self.event("Updated", "MeterValuePeriodic", {"transaction_id": TRANSACTION_201}, wh, "Sample.Periodic", **extra)

    def stop(self):
        return self.event(
            "Ended", "StopAuthorized", {"transaction_id": TRANSACTION_201, "stopped_reason": "Local"}, METER_STOP,
            "Transaction.End", id_token=TOKEN_201,
        )

    def stop_summary(self, answers):
        return {"ended": len(answers)}


async def main():
    usage = "usage: outage_session.py URL CHARGE_POINT_ID 1.6|2.0.1 OUTAGE_SECONDS"
    if len(sys.argv) != 5 or sys.argv[3] not in ("1.6", "2.0.1"):
        sys.exit(usage)
    url, charge_point_id, version = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        outage = float(sys.argv[4])
    except ValueError:
        sys.exit(usage)
    if not outage >= 0:
        sys.exit(usage)
    charger = {"1.6": Charger16, "2.0.1": Charger201}[version](url, charge_point_id)
    summary = await asyncio.wait_for(charger.run(outage), timeout=30 + outage)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
