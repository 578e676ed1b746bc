"""A charger that the backend asks for its metering configuration and that then meters a transaction exactly as
configured, built on the `ocpp` library from PyPI (not on OCPP Witness code).

Usage: metered_session.py URL CHARGE_POINT_ID VERSION INTERVAL_SECONDS
VERSION is 1.6 or 2.0.1; INTERVAL_SECONDS is a float greater than 0 (e.g. 2). Connects to URL/CHARGE_POINT_ID
offering ocpp1.6 or ocpp2.0.1 and behaves as correct firmware does. Its configuration at power-up:
  1.6 keys:           MeterValueSampleInterval = INTERVAL (written "2" when whole, else e.g. "2.5"),
                      MeterValuesSampledData = "Energy.Active.Import.Register,Power.Active.Import",
                      ClockAlignedDataInterval = "0"
  2.0.1 variables:    SampledDataCtrlr.TxUpdatedInterval = INTERVAL, SampledDataCtrlr.TxUpdatedMeasurands = the same
                      list, AlignedDataCtrlr.Interval = "0"
(none read-only). At any time it answers the backend's
  GetConfiguration (1.6): configurationKey {key, readonly false, value} for every key, or for the keys the
    request names (keys it does not have go to unknownKey);
  GetVariables (2.0.1): a getVariableResult per requested variable, Accepted with component, variable and
    attributeValue (UnknownComponent / UnknownVariable / NotSupportedAttributeType when it is not one of the
    three, or not the Actual attribute);
  ChangeConfiguration (1.6) / SetVariables (2.0.1): Accepted, and the new value is used from then on. Values it
    cannot meter by are refused with Rejected: an interval that is not a number greater than 0, a
    measurand list that is empty or names a measurand other than the two above, a clock-aligned interval other
    than 0 (it takes no clock-aligned readings). Unknown keys: 1.6 NotSupported, 2.0.1 UnknownComponent /
    UnknownVariable.
The readings follow the configuration: each one is scheduled the interval configured at the time the previous
one (for the first: the start) was answered after that one's scheduled time (for the first: the start's), so a
change takes effect from the next wait and there is no drift; each one carries the measurands configured when it
is taken. Power is a constant 7200 W, so the register rises 2 Wh a second from 1000 Wh at the start (whether
or not the readings report it); values are computed for a reading's scheduled offset from the start, so with
INTERVAL 2 the energy readings are 1004, 1008, 1012, 1016 Wh. Every message's time is the clock when it was built.

Messages sent with 1.6, in this order:
  BootNotification; StatusNotification 1 Available; then it waits (at most 15 s, else it fails) until a
  GetConfiguration or GetVariables from the backend has arrived and been answered; Authorize PYTAGMTR;
  StartTransaction 1 (meterStart 1000) -> T; 4 times, INTERVAL s of real time apart, the first INTERVAL s after the
  start: MeterValues 1/T with one meterValue stamped with the time the reading was taken, its sampledValues
  Energy.Active.Import.Register (Wh, a decimal string, increasing) and Power.Active.Import (W), context
  Sample.Periodic; StopTransaction T right after the last answer (meterStop = the register at the last reading,
  rounded up to a whole Wh: 1016 with INTERVAL 2; reason Local, idTag PYTAGMTR); StatusNotification 1 Available;
  websocket closed.
Messages sent with 2.0.1, in this order:
  BootNotification (PowerUp); StatusNotification EVSE 1/1 Available; the same wait; Authorize PYTOKMTR;
  TransactionEvent Started py-meter-1 seqNo 0 (Authorized, EVSE 1/1, idToken, chargingState Charging, 1000 Wh
  Transaction.Begin); 4 times, spaced as above: TransactionEvent Updated seqNo 1..4 (MeterValuePeriodic, one
  meterValue stamped with the time the reading was taken, Energy.Active.Import.Register Wh and Power.Active.Import
  W, context Sample.Periodic); TransactionEvent Ended seqNo 5 right after the last answer (StopAuthorized,
  stoppedReason Local, idToken, the register at the last reading as Transaction.End: 1016 Wh with INTERVAL 2);
  StatusNotification EVSE 1/1 Available; websocket closed.
Answers to the backend's requests go out whenever those requests arrive, between the messages above.

Prints one JSON line (keys sorted) summarising the session, for example with 1.6 and INTERVAL 2:
  {"authorize": "Accepted", "boot": "Accepted", "configurationAnswered": ["ClockAlignedDataInterval",
   "MeterValueSampleInterval", "MeterValuesSampledData"], "configurationChanged": [], "configurationRequests":
   ["GetConfiguration"], "meterStart": 1000, "meterStop": 1016, "readings": [{"Energy.Active.Import.Register": 1004,
   "Power.Active.Import": 7200, "at": 2}, ... 4 entries ...], "started": "Accepted", "stop": "Accepted",
   "subprotocol": "ocpp1.6"}
"configurationRequests" lists the configuration messages from the backend in arrival order (GetConfiguration,
ChangeConfiguration, GetVariables, SetVariables), "configurationAnswered" the names (1.6 keys, 2.0.1
Component.Variable) whose values were reported, "configurationChanged" the names whose change was accepted, "at"
a reading's scheduled offset in seconds from the start. With 2.0.1 "stop" is the idTokenInfo status of the
Ended answer, or null when it has none (a CSMS need not send one). Values that vary from run to run (times,
transaction ids) are left out. Exits non-zero if anything failed.
"""
import asyncio
import contextlib
import json
import math
import sys
import traceback
from datetime import datetime, timezone

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as call_result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as call_result201

ENERGY, POWER = "Energy.Active.Import.Register", "Power.Active.Import"
UNITS = {ENERGY: "Wh", POWER: "W"}
METER_START_WH, POWER_W = 1000, 7200
READINGS = 4
CONFIGURATION_WAIT = 15.0
TAG_16 = "PYTAGMTR"
TOKEN_201 = {"id_token": "PYTOKMTR", "type": "ISO14443"}
TRANSACTION_201 = "py-meter-1"


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def number(value):
    """A whole float as an int (2.0 -> 2), others rounded to a thousandth: for JSON and 2.0.1 values."""
    value = round(value, 3)
    return int(value) if float(value).is_integer() else value


def decimal_text(value):
    """A 1.6 sampledValue.value or configuration value: a decimal in a string, no exponent ("1004", "2.5")."""
    value = number(value)
    return str(value) if isinstance(value, int) else f"{value:.3f}".rstrip("0")


def parse_interval(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and round(value, 3) > 0 else None  # kept to a thousandth of a second


def parse_measurands(text):
    measurands = [item.strip() for item in (text or "").split(",")]
    if not measurands or any(item not in UNITS for item in measurands) or len(set(measurands)) != len(measurands):
        return None
    return measurands


class Configuration:
    """The charger's three metering settings, by 1.6 key or 2.0.1 Component.Variable name, as strings."""

    def __init__(self, interval, names):
        self.interval_name, self.measurands_name, self.aligned_name = names
        self.values = {
            self.interval_name: decimal_text(interval),
            self.measurands_name: ",".join([ENERGY, POWER]),
            self.aligned_name: "0",
        }

    @property
    def interval(self):
        return parse_interval(self.values[self.interval_name])

    @property
    def measurands(self):
        return parse_measurands(self.values[self.measurands_name])

    def acceptable(self, name, value):
        """Whether this charger can meter with `value` for `name` (a name it has)."""
        if name == self.interval_name:
            return parse_interval(value) is not None
        if name == self.measurands_name:
            return parse_measurands(value) is not None
        return value.strip() in ("0", "0.0")


class Charger:
    version = None
    side = None
    names = None

    def __init__(self, url, charge_point_id, interval):
        self.url, self.charge_point_id = url, charge_point_id
        self.configuration = Configuration(interval, self.names)
        self.configuration_asked = None  # an asyncio.Event, made by connect() inside the running loop
        self.requests, self.answered, self.changed = [], set(), set()
        self.timestamps = []
        self.charge_point = self.websocket = self.listener = None

    async def connect(self):
        self.websocket = await websockets.connect(f"{self.url}/{self.charge_point_id}", subprotocols=[f"ocpp{self.version}"])
        assert self.websocket.subprotocol == f"ocpp{self.version}", self.websocket.subprotocol
        self.charge_point = self.side(self.charge_point_id, self.websocket, self)
        self.configuration_asked = asyncio.Event()
        self.listener = asyncio.create_task(self.charge_point.start())

    async def disconnect(self):
        self.listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.listener
        await self.websocket.close()

    async def call(self, payload):
        # suppress=False: a CALLERROR raises instead of coming back as None.
        return await self.charge_point.call(payload, suppress=False)

    def stamp(self):
        timestamp = now()
        self.timestamps.append(timestamp)
        return timestamp

    def configuration_answered(self):
        """Called by the side's @after hooks, i.e. once the answer to a configuration read has been sent."""
        self.configuration_asked.set()

    @staticmethod
    def register(offset):
        """The energy register (Wh) `offset` seconds after the start, whether a reading reports it or not."""
        return METER_START_WH + POWER_W * offset / 3600

    def sample(self, offset):
        """The configured measurands' values `offset` seconds after the start."""
        values = {ENERGY: self.register(offset), POWER: POWER_W}
        return {measurand: values[measurand] for measurand in self.configuration.measurands}

    async def run(self):
        await self.connect()
        try:
            return await self.session()
        finally:
            # Also on failure: the websocket is closed properly rather than dropped when the process exits.
            if not self.listener.done():
                await self.disconnect()

    async def session(self):
        loop = asyncio.get_running_loop()
        summary = {}
        summary["boot"] = await self.boot()
        await self.call(self.available())
        try:
            await asyncio.wait_for(self.configuration_asked.wait(), CONFIGURATION_WAIT)
        except asyncio.TimeoutError:
            raise RuntimeError(
                f"the backend did not ask for the configuration ({self.read_action}) within {CONFIGURATION_WAIT:g} s"
            ) from None
        summary["authorize"] = await self.authorize()
        started_at = loop.time()  # the start's reading is taken now; the periodic ones are timed from here
        summary["started"] = await self.start()

        readings, offset = [], 0.0
        for _ in range(READINGS):
            interval = self.configuration.interval  # as configured when the wait for this reading begins
            offset += interval
            await asyncio.sleep(max(0.0, started_at + offset - loop.time()))
            values = self.sample(offset)
            await self.call(self.reading(values))
            readings.append({"at": number(offset), **{measurand: number(value) for measurand, value in values.items()}})
        summary["readings"] = readings
        summary["meterStart"] = METER_START_WH
        # The stop follows the last reading at once: the register still shows that reading's energy.
        summary["meterStop"], summary["stop"] = await self.stop(self.register(offset))
        await self.call(self.available())
        await self.disconnect()

        summary["configurationRequests"] = self.requests
        summary["configurationAnswered"] = sorted(self.answered)
        summary["configurationChanged"] = sorted(self.changed)
        summary["subprotocol"] = self.websocket.subprotocol
        times = [datetime.fromisoformat(timestamp.replace("Z", "+00:00")) for timestamp in self.timestamps]
        assert all(earlier < later for earlier, later in zip(times, times[1:])), self.timestamps
        energies = [METER_START_WH] + [reading.get(ENERGY) for reading in readings if ENERGY in reading]
        assert all(earlier < later for earlier, later in zip(energies, energies[1:])), energies
        return summary


class Side16(ChargePoint16):
    def __init__(self, charge_point_id, websocket, charger):
        super().__init__(charge_point_id, websocket)
        self.charger = charger

    @on("GetConfiguration")
    def on_get_configuration(self, key=None, **kwargs):
        self.charger.requests.append("GetConfiguration")
        values = self.charger.configuration.values
        wanted = list(values) if not key else list(dict.fromkeys(key))
        known = [name for name in wanted if name in values]
        unknown = [name for name in wanted if name not in values]
        self.charger.answered.update(known)
        return call_result16.GetConfiguration(
            configuration_key=[{"key": name, "readonly": False, "value": values[name]} for name in known] or None,
            unknown_key=unknown or None,
        )

    @after("GetConfiguration")
    def after_get_configuration(self, **kwargs):
        self.charger.configuration_answered()

    @on("ChangeConfiguration")
    def on_change_configuration(self, key, value, **kwargs):
        self.charger.requests.append("ChangeConfiguration")
        configuration = self.charger.configuration
        if key not in configuration.values:
            return call_result16.ChangeConfiguration(status="NotSupported")
        if not configuration.acceptable(key, value):
            return call_result16.ChangeConfiguration(status="Rejected")
        configuration.values[key] = value
        self.charger.changed.add(key)
        return call_result16.ChangeConfiguration(status="Accepted")


class Charger16(Charger):
    version = "1.6"
    side = Side16
    names = ("MeterValueSampleInterval", "MeterValuesSampledData", "ClockAlignedDataInterval")
    read_action = "GetConfiguration"

    async def boot(self):
        boot = await self.call(call16.BootNotification(charge_point_model="PyMetered", charge_point_vendor="PyVendor"))
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
            call16.StartTransaction(connector_id=1, id_tag=TAG_16, meter_start=METER_START_WH, timestamp=self.stamp())
        )
        assert started.id_tag_info["status"] == "Accepted", started
        assert isinstance(started.transaction_id, int), started
        self.transaction_id = started.transaction_id
        return started.id_tag_info["status"]

    def reading(self, values):
        sampled = [
            {"value": decimal_text(value), "context": "Sample.Periodic", "measurand": measurand, "unit": UNITS[measurand]}
            for measurand, value in values.items()
        ]
        return call16.MeterValues(
            connector_id=1, transaction_id=self.transaction_id, meter_value=[{"timestamp": self.stamp(), "sampledValue": sampled}]
        )

    async def stop(self, energy):
        meter_stop = math.ceil(round(energy, 3))  # meterStop is an integer in 1.6
        stopped = await self.call(
            call16.StopTransaction(
                meter_stop=meter_stop, timestamp=self.stamp(), transaction_id=self.transaction_id, id_tag=TAG_16, reason="Local"
            )
        )
        return meter_stop, (stopped.id_tag_info or {}).get("status")


class Side201(ChargePoint201):
    def __init__(self, charge_point_id, websocket, charger):
        super().__init__(charge_point_id, websocket)
        self.charger = charger

    def lookup(self, component, variable, attribute_type):
        """The name Component.Variable and a status: Accepted only for a variable this charger has, Actual attribute."""
        name = f"{component.get('name')}.{variable.get('name')}"
        components = {known.split(".")[0] for known in self.charger.configuration.values}
        if component.get("name") not in components or "instance" in component:
            return name, "UnknownComponent"
        if name not in self.charger.configuration.values or "instance" in variable:
            return name, "UnknownVariable"
        if attribute_type not in (None, "Actual"):
            return name, "NotSupportedAttributeType"
        return name, "Accepted"

    @on("GetVariables")
    def on_get_variables(self, get_variable_data, **kwargs):
        self.charger.requests.append("GetVariables")
        results = []
        for data in get_variable_data:
            name, status = self.lookup(data["component"], data["variable"], data.get("attribute_type"))
            result = {"attribute_status": status, "component": data["component"], "variable": data["variable"]}
            if "attribute_type" in data:
                result["attribute_type"] = data["attribute_type"]
            if status == "Accepted":
                result["attribute_value"] = self.charger.configuration.values[name]
                self.charger.answered.add(name)
            results.append(result)
        return call_result201.GetVariables(get_variable_result=results)

    @after("GetVariables")
    def after_get_variables(self, **kwargs):
        self.charger.configuration_answered()

    @on("SetVariables")
    def on_set_variables(self, set_variable_data, **kwargs):
        self.charger.requests.append("SetVariables")
        configuration = self.charger.configuration
        results = []
        for data in set_variable_data:
            name, status = self.lookup(data["component"], data["variable"], data.get("attribute_type"))
            if status == "Accepted" and not configuration.acceptable(name, data["attribute_value"]):
                status = "Rejected"
            if status == "Accepted":
                configuration.values[name] = data["attribute_value"]
                self.charger.changed.add(name)
            result = {"attribute_status": status, "component": data["component"], "variable": data["variable"]}
            if "attribute_type" in data:
                result["attribute_type"] = data["attribute_type"]
            results.append(result)
        return call_result201.SetVariables(set_variable_result=results)


class Charger201(Charger):
    version = "2.0.1"
    side = Side201
    names = ("SampledDataCtrlr.TxUpdatedInterval", "SampledDataCtrlr.TxUpdatedMeasurands", "AlignedDataCtrlr.Interval")
    read_action = "GetVariables"

    def __init__(self, *args):
        super().__init__(*args)
        # OCPP 2.0.1 E. Transactions, "Sequence numbers": seqNo 0 for the first event of a transaction, then +1.
        self.seq_no = 0

    async def boot(self):
        boot = await self.call(
            call201.BootNotification(charging_station={"model": "PyMetered201", "vendor_name": "PyVendor"}, reason="PowerUp")
        )
        assert boot.status == "Accepted", boot
        return boot.status

    def available(self):
        return call201.StatusNotification(timestamp=now(), connector_status="Available", evse_id=1, connector_id=1)

    async def authorize(self):
        authorize = await self.call(call201.Authorize(id_token=TOKEN_201))
        assert authorize.id_token_info["status"] == "Accepted", authorize
        return authorize.id_token_info["status"]

    def event(self, event_type, trigger_reason, transaction_info, values, context, **extra):
        # One clock reading for both the event and its reading: the reading is taken when the event is built.
        timestamp = self.stamp()
        sampled = [
            {"value": number(value), "context": context, "measurand": measurand, "unitOfMeasure": {"unit": UNITS[measurand]}}
            for measurand, value in values.items()
        ]
        payload = call201.TransactionEvent(
            event_type=event_type, timestamp=timestamp, trigger_reason=trigger_reason, seq_no=self.seq_no,
            transaction_info=transaction_info, meter_value=[{"timestamp": timestamp, "sampledValue": sampled}], **extra,
        )
        self.seq_no += 1
        return payload

    async def start(self):
        started = await self.call(
            self.event(
                "Started", "Authorized", {"transaction_id": TRANSACTION_201, "charging_state": "Charging"},
                {ENERGY: METER_START_WH}, "Transaction.Begin", evse={"id": 1, "connector_id": 1}, id_token=TOKEN_201,
            )
        )
        status = (started.id_token_info or {}).get("status")
        assert status == "Accepted", started
        return status

    def reading(self, values):
        return self.event("Updated", "MeterValuePeriodic", {"transaction_id": TRANSACTION_201}, values, "Sample.Periodic")

    async def stop(self, energy):
        ended = await self.call(
            self.event(
                "Ended", "StopAuthorized", {"transaction_id": TRANSACTION_201, "stopped_reason": "Local"}, {ENERGY: energy},
                "Transaction.End", id_token=TOKEN_201,
            )
        )
        return number(energy), (ended.id_token_info or {}).get("status")


async def main():
    usage = "usage: metered_session.py URL CHARGE_POINT_ID 1.6|2.0.1 INTERVAL_SECONDS"
    if len(sys.argv) != 5 or sys.argv[3] not in ("1.6", "2.0.1"):
        sys.exit(usage)
    url, charge_point_id, version = sys.argv[1], sys.argv[2], sys.argv[3]
    interval = parse_interval(sys.argv[4])
    if interval is None:
        sys.exit(usage)
    charger = {"1.6": Charger16, "2.0.1": Charger201}[version](url, charge_point_id, interval)
    try:
        summary = await asyncio.wait_for(charger.run(), timeout=30 + CONFIGURATION_WAIT + (READINGS + 1) * interval)
    except Exception as error:  # noqa: BLE001 - any failure: the reason on stderr, exit status 1
        traceback.print_exc()
        sys.exit(f"metered_session.py: {error or type(error).__name__}")
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
