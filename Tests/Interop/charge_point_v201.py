"""An OCPP 2.0.1 charging station built on the `ocpp` library from PyPI (not on OCPP Witness code).

Usage: charge_point_v201.py URL CHARGE_POINT_ID
Connects to URL/CHARGE_POINT_ID offering ocpp2.0.1, runs boot, heartbeat, status, authorize and a
transaction (Started, Updated, Ended) with meter values, each stamped by this process's own clock when it
is built, and prints one JSON line summarising what the CSMS answered. Exits non-zero if anything failed.
"""
import asyncio
import json
import sys
from datetime import datetime, timezone

import websockets
from ocpp.v201 import ChargePoint, call


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def energy(wh):
    # The reading's own timestamp comes from a second call of the clock, as in the library's examples.
    return [{"timestamp": now(), "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]


class ChargingStationSide(ChargePoint):
    async def session(self):
        summary = {}
        boot = await self.call(
            call.BootNotification(charging_station={"model": "PyModel201", "vendor_name": "PyVendor"}, reason="PowerUp")
        )
        summary["boot"] = boot.status
        heartbeat = await self.call(call.Heartbeat())
        summary["heartbeatHasTime"] = bool(heartbeat.current_time)
        await self.call(call.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1))
        token = {"id_token": "PYTAG201", "type": "ISO14443"}
        authorize = await self.call(call.Authorize(id_token=token))
        summary["authorize"] = authorize.id_token_info["status"]
        transaction = {"transaction_id": "py-tx-1"}
        started = await self.call(
            call.TransactionEvent(
                event_type="Started", timestamp=now(), trigger_reason="Authorized", seq_no=0,
                transaction_info=transaction, evse={"id": 1, "connector_id": 1}, id_token=token, meter_value=energy(1000),
            )
        )
        summary["started"] = (started.id_token_info or {}).get("status")
        await self.call(
            call.TransactionEvent(
                event_type="Updated", timestamp=now(), trigger_reason="MeterValuePeriodic", seq_no=1,
                transaction_info=transaction, meter_value=energy(1800),
            )
        )
        await self.call(
            call.TransactionEvent(
                event_type="Ended", timestamp=now(), trigger_reason="StopAuthorized", seq_no=2,
                transaction_info={"transaction_id": "py-tx-1", "stopped_reason": "Local"}, meter_value=energy(2600),
            )
        )
        summary["ended"] = True
        return summary


async def main():
    url, charge_point_id = sys.argv[1], sys.argv[2]
    async with websockets.connect(f"{url}/{charge_point_id}", subprotocols=["ocpp2.0.1"]) as websocket:
        station = ChargingStationSide(charge_point_id, websocket)
        listener = asyncio.create_task(station.start())
        summary = await asyncio.wait_for(station.session(), timeout=30)
        summary["subprotocol"] = websocket.subprotocol
        listener.cancel()
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
