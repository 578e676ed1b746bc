"""An OCPP 1.6 and 2.0.1 central system built on the `ocpp` library from PyPI (not on OCPP Witness code).

Usage: central_system.py PORT_FILE [SECONDS]
Listens on 127.0.0.1 on a port chosen by the OS, writes that port to PORT_FILE, answers chargers like a
well-behaved CSMS, and exits after SECONDS (default 60).

Opt-in: with the environment variable OCPP_CS_ASK_CONFIGURATION=1 the central system also asks each charger
for its metering configuration once it has answered the charger's BootNotification, from a task of its own
that starts after the answer went out: with 1.6 a GetConfiguration naming no keys (so: all of them), with
2.0.1 a GetVariables for SampledDataCtrlr.TxUpdatedInterval, SampledDataCtrlr.TxUpdatedMeasurands and
AlignedDataCtrlr.Interval (attributeType left out, i.e. Actual). It does nothing with the answer; a failed
request (CALLERROR, timeout) is reported on stderr, a charger that went away is not. Without the variable
(any other value, or unset) nothing is sent to chargers, as before.
"""
import asyncio
import os
import sys
from datetime import datetime, timezone

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as call_result201

NEXT_TRANSACTION = [500]
ASK_CONFIGURATION = os.environ.get("OCPP_CS_ASK_CONFIGURATION") == "1"
METERING_VARIABLES_201 = [
    ("SampledDataCtrlr", "TxUpdatedInterval"),
    ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    ("AlignedDataCtrlr", "Interval"),
]
TASKS = set()  # the configuration requests under way (the event loop keeps only weak references to tasks)


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def ask_configuration(side, request):
    """Sends `request` to the charger of `side` from a new task: called by an @after hook, i.e. once the
    library has sent the BootNotification's answer, so the request always follows that answer on the wire."""

    async def ask():
        try:
            await side.call(request, suppress=False)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as error:  # noqa: BLE001 - reported, the central system goes on serving
            print(f"central_system.py: {type(request).__name__} to {side.id} failed: {error!r}", file=sys.stderr)

    task = asyncio.create_task(ask())
    TASKS.add(task)
    task.add_done_callback(TASKS.discard)


class CentralSystemSide(ChargePoint):
    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(current_time=now(), interval=300, status=RegistrationStatus.accepted)

    @after(Action.boot_notification)
    def after_boot(self, **kwargs):
        if ASK_CONFIGURATION:
            ask_configuration(self, call.GetConfiguration())

    @on(Action.heartbeat)
    def on_heartbeat(self):
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    def on_status(self, **kwargs):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag):
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        NEXT_TRANSACTION[0] += 1
        return call_result.StartTransaction(
            transaction_id=NEXT_TRANSACTION[0], id_tag_info={"status": AuthorizationStatus.accepted}
        )

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop(self, meter_stop, timestamp, transaction_id, **kwargs):
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})


class CentralSystemSide201(ChargePoint201):
    @on("BootNotification")
    def on_boot(self, charging_station, reason, **kwargs):
        return call_result201.BootNotification(current_time=now(), interval=300, status="Accepted")

    @after("BootNotification")
    def after_boot(self, **kwargs):
        if ASK_CONFIGURATION:
            data = [
                {"component": {"name": component}, "variable": {"name": variable}} for component, variable in METERING_VARIABLES_201
            ]
            ask_configuration(self, call201.GetVariables(get_variable_data=data))

    @on("Heartbeat")
    def on_heartbeat(self):
        return call_result201.Heartbeat(current_time=now())

    @on("StatusNotification")
    def on_status(self, **kwargs):
        return call_result201.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token, **kwargs):
        return call_result201.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    def on_transaction_event(self, event_type, **kwargs):
        if event_type == "Started":
            return call_result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return call_result201.TransactionEvent()


async def on_connect(websocket):
    sides = {"ocpp1.6": CentralSystemSide, "ocpp2.0.1": CentralSystemSide201}
    if websocket.subprotocol not in sides:
        await websocket.close()
        return
    charge_point_id = websocket.request.path.strip("/").split("/")[-1]
    try:
        await sides[websocket.subprotocol](charge_point_id, websocket).start()
    except websockets.exceptions.ConnectionClosed:
        pass


async def main():
    port_file = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    server = await websockets.serve(on_connect, "127.0.0.1", 0, subprotocols=["ocpp1.6", "ocpp2.0.1"])
    port = server.sockets[0].getsockname()[1]
    with open(port_file, "w") as handle:
        handle.write(str(port))
    await asyncio.sleep(seconds)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
