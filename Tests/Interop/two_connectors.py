"""A charger with two connectors charging at the same time, built on the `ocpp` library from PyPI (not on
OCPP Witness code).

Usage: two_connectors.py URL CHARGE_POINT_ID VERSION
VERSION is 1.6 or 2.0.1. Connects to URL/CHARGE_POINT_ID offering ocpp1.6 or ocpp2.0.1 and behaves as
real firmware does with two sessions overlapping: boot, status of every connector, heartbeat, two
authorizations, a transaction started on connector (EVSE) 1 and then one on connector (EVSE) 2, meter
values of the two interleaved, then the first transaction stopped and the second one. Every time comes
from this process's own clock when the message is built, and every reading lies strictly between its own
transaction's start and stop values and within its start and stop times. Prints one JSON line summarising
what the central system answered (values that vary from run to run, like transaction ids, are left out).
Exits non-zero if anything failed.

Messages sent with 1.6, in this order:
  BootNotification; StatusNotification 0, 1, 2 Available; Heartbeat; Authorize PYTAG2C1; Authorize PYTAG2C2;
  StatusNotification 1 Preparing; StartTransaction 1 (meterStart 1000) -> A; StatusNotification 1 Charging;
  StatusNotification 2 Preparing; StartTransaction 2 (meterStart 5000) -> B; StatusNotification 2 Charging;
  MeterValues 1/A 1500; MeterValues 2/B 5400; MeterValues 1/A 2000; MeterValues 2/B 5800;
  StopTransaction A (meterStop 2500); StatusNotification 1 Finishing; StatusNotification 1 Available;
  StopTransaction B (meterStop 6200); StatusNotification 2 Finishing; StatusNotification 2 Available.
Messages sent with 2.0.1, in this order:
  BootNotification (PowerUp); StatusNotification EVSE 1/1 Available; StatusNotification EVSE 2/1 Available;
  Heartbeat; Authorize PYTOK2C1; Authorize PYTOK2C2;
  TransactionEvent Started py2c-1 seqNo 0 (EVSE 1, 1000 Wh Transaction.Begin); StatusNotification 1/1 Occupied;
  TransactionEvent Started py2c-2 seqNo 0 (EVSE 2, 5000 Wh Transaction.Begin); StatusNotification 2/1 Occupied;
  TransactionEvent Updated py2c-1 seqNo 1 (1500); Updated py2c-2 seqNo 1 (5400);
  Updated py2c-1 seqNo 2 (2000); Updated py2c-2 seqNo 2 (5800);
  TransactionEvent Ended py2c-1 seqNo 3 (2500 Wh Transaction.End, stoppedReason Local); StatusNotification 1/1 Available;
  TransactionEvent Ended py2c-2 seqNo 3 (6200 Wh Transaction.End, stoppedReason Local); StatusNotification 2/1 Available.
"""
import asyncio
import json
import sys
from datetime import datetime, timezone

import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

# Per connector: the meter at start, the periodic readings, the meter at stop (Wh), each strictly above the one before.
METER = {1: (1000, (1500, 2000), 2500), 2: (5000, (5400, 5800), 6200)}
TAGS_16 = {1: "PYTAG2C1", 2: "PYTAG2C2"}
TOKENS_201 = {1: {"id_token": "PYTOK2C1", "type": "ISO14443"}, 2: {"id_token": "PYTOK2C2", "type": "ISO14443"}}


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class ChargePointSide16(ChargePoint16):
    async def status(self, connector_id, status):
        await self.call(call16.StatusNotification(connector_id=connector_id, error_code="NoError", status=status, timestamp=now()))

    async def start_on(self, connector_id):
        await self.status(connector_id, "Preparing")
        started = await self.call(
            call16.StartTransaction(
                connector_id=connector_id, id_tag=TAGS_16[connector_id], meter_start=METER[connector_id][0], timestamp=now()
            )
        )
        assert started.id_tag_info["status"] == "Accepted", started
        assert isinstance(started.transaction_id, int), started
        await self.status(connector_id, "Charging")
        return started.transaction_id

    async def meter(self, connector_id, transaction_id, wh):
        sampled = {"value": str(wh), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        await self.call(
            call16.MeterValues(
                connector_id=connector_id, transaction_id=transaction_id,
                meter_value=[{"timestamp": now(), "sampledValue": [sampled]}],
            )
        )

    async def stop_on(self, connector_id, transaction_id):
        stopped = await self.call(
            call16.StopTransaction(
                meter_stop=METER[connector_id][2], timestamp=now(), transaction_id=transaction_id,
                id_tag=TAGS_16[connector_id], reason="Local",
            )
        )
        await self.status(connector_id, "Finishing")
        await self.status(connector_id, "Available")
        return (stopped.id_tag_info or {}).get("status")

    async def session(self):
        summary = {}
        boot = await self.call(call16.BootNotification(charge_point_model="PyTwoConnectors", charge_point_vendor="PyVendor"))
        summary["boot"] = boot.status
        assert boot.status == "Accepted", boot
        for connector_id in (0, 1, 2):
            await self.status(connector_id, "Available")
        heartbeat = await self.call(call16.Heartbeat())
        assert heartbeat.current_time, heartbeat
        summary["authorize"] = []
        for connector_id in (1, 2):
            authorize = await self.call(call16.Authorize(id_tag=TAGS_16[connector_id]))
            summary["authorize"].append(authorize.id_tag_info["status"])
        transactions = {connector_id: await self.start_on(connector_id) for connector_id in (1, 2)}
        assert transactions[1] != transactions[2], transactions
        summary["transactions"] = len(set(transactions.values()))
        for round_ in range(2):
            for connector_id in (1, 2):
                await self.meter(connector_id, transactions[connector_id], METER[connector_id][1][round_])
        summary["stops"] = [await self.stop_on(connector_id, transactions[connector_id]) for connector_id in (1, 2)]
        return summary


class ChargingStationSide201(ChargePoint201):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # OCPP 2.0.1 Part 2, E. Transactions, 1.3.2 "Sequence numbers" and 1.3.2.1 "Sequence number generation"
        # (normative; E01.FR.07 points there): the station keeps one counter per EVSE, a transaction's first
        # TransactionEventRequest SHOULD carry seqNo 0 and the seqNo SHALL go up by 1 after each one. With one
        # transaction per EVSE that is 0, 1, 2, ... per transaction, independent of the other EVSE's.
        self.seq_no = {1: 0, 2: 0}

    async def status(self, evse_id, status):
        await self.call(call201.StatusNotification(timestamp=now(), connector_status=status, evse_id=evse_id, connector_id=1))

    async def event(self, evse_id, event_type, trigger_reason, transaction_info, wh, context, **extra):
        # One clock reading for both the event and its reading, so the Ended reading is not dated after the end.
        timestamp = now()
        sampled = {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}
        answer = await self.call(
            call201.TransactionEvent(
                event_type=event_type, timestamp=timestamp, trigger_reason=trigger_reason, seq_no=self.seq_no[evse_id],
                transaction_info=transaction_info, meter_value=[{"timestamp": timestamp, "sampledValue": [sampled]}], **extra,
            )
        )
        self.seq_no[evse_id] += 1
        return answer

    async def session(self):
        summary = {}
        boot = await self.call(
            call201.BootNotification(charging_station={"model": "PyTwoConnectors201", "vendor_name": "PyVendor"}, reason="PowerUp")
        )
        summary["boot"] = boot.status
        assert boot.status == "Accepted", boot
        for evse_id in (1, 2):
            await self.status(evse_id, "Available")
        heartbeat = await self.call(call201.Heartbeat())
        assert heartbeat.current_time, heartbeat
        summary["authorize"] = []
        for evse_id in (1, 2):
            authorize = await self.call(call201.Authorize(id_token=TOKENS_201[evse_id]))
            summary["authorize"].append(authorize.id_token_info["status"])
        transaction_ids = {1: "py2c-1", 2: "py2c-2"}
        summary["started"] = []
        for evse_id in (1, 2):
            started = await self.event(
                evse_id, "Started", "Authorized", {"transaction_id": transaction_ids[evse_id], "charging_state": "Charging"},
                METER[evse_id][0], "Transaction.Begin", evse={"id": evse_id, "connector_id": 1}, id_token=TOKENS_201[evse_id],
            )
            summary["started"].append((started.id_token_info or {}).get("status"))
            await self.status(evse_id, "Occupied")
        summary["transactions"] = len(set(transaction_ids.values()))
        for round_ in range(2):
            for evse_id in (1, 2):
                await self.event(
                    evse_id, "Updated", "MeterValuePeriodic", {"transaction_id": transaction_ids[evse_id]},
                    METER[evse_id][1][round_], "Sample.Periodic",
                )
        summary["ended"] = 0
        for evse_id in (1, 2):
            await self.event(
                evse_id, "Ended", "StopAuthorized", {"transaction_id": transaction_ids[evse_id], "stopped_reason": "Local"},
                METER[evse_id][2], "Transaction.End", id_token=TOKENS_201[evse_id],
            )
            summary["ended"] += 1
            await self.status(evse_id, "Available")
        return summary


async def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("1.6", "2.0.1"):
        sys.exit("usage: two_connectors.py URL CHARGE_POINT_ID 1.6|2.0.1")
    url, charge_point_id, version = sys.argv[1], sys.argv[2], sys.argv[3]
    side = {"1.6": ChargePointSide16, "2.0.1": ChargingStationSide201}[version]
    async with websockets.connect(f"{url}/{charge_point_id}", subprotocols=[f"ocpp{version}"]) as websocket:
        charger = side(charge_point_id, websocket)
        listener = asyncio.create_task(charger.start())
        summary = await asyncio.wait_for(charger.session(), timeout=30)
        summary["subprotocol"] = websocket.subprotocol
        listener.cancel()
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
