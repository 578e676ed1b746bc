"""An OCPP 1.6 charge point built on the `ocpp` library from PyPI (not on OCPP Witness code).

Usage: charge_point.py URL CHARGE_POINT_ID
Connects to URL/CHARGE_POINT_ID offering ocpp1.6, runs boot, heartbeat, authorize, a transaction with
meter values, and prints one JSON line summarising what the central system answered (values that vary
from run to run, like times, are left out). Exits non-zero if anything failed.
"""
import asyncio
import json
import sys
from datetime import datetime, timezone

import websockets
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import RegistrationStatus


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class ChargePointSide(ChargePoint):
    async def session(self):
        summary = {}
        boot = await self.call(call.BootNotification(charge_point_model="PyModel", charge_point_vendor="PyVendor"))
        summary["boot"] = boot.status
        summary["bootInterval"] = boot.interval
        assert boot.status == RegistrationStatus.accepted
        heartbeat = await self.call(call.Heartbeat())
        summary["heartbeatHasTime"] = bool(heartbeat.current_time)
        await self.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        authorize = await self.call(call.Authorize(id_tag="PYTAG1"))
        summary["authorize"] = authorize.id_tag_info["status"]
        started = await self.call(call.StartTransaction(connector_id=1, id_tag="PYTAG1", meter_start=1000, timestamp=now()))
        summary["startAccepted"] = started.id_tag_info["status"]
        summary["hasTransactionId"] = isinstance(started.transaction_id, int)
        for wh in (1500, 2250):
            await self.call(
                call.MeterValues(
                    connector_id=1,
                    transaction_id=started.transaction_id,
                    meter_value=[{"timestamp": now(), "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}],
                )
            )
        stopped = await self.call(
            call.StopTransaction(meter_stop=3000, timestamp=now(), transaction_id=started.transaction_id, id_tag="PYTAG1")
        )
        summary["stop"] = (stopped.id_tag_info or {}).get("status")
        return summary


async def main():
    url, charge_point_id = sys.argv[1], sys.argv[2]
    async with websockets.connect(f"{url}/{charge_point_id}", subprotocols=["ocpp1.6"]) as websocket:
        charge_point = ChargePointSide(charge_point_id, websocket)
        listener = asyncio.create_task(charge_point.start())
        summary = await asyncio.wait_for(charge_point.session(), timeout=30)
        summary["subprotocol"] = websocket.subprotocol
        listener.cancel()
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
