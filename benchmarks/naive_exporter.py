"""The naive reference: the original chargy_exporter's way, in ~40 lines.

BeautifulSoup "xml" parses the whole feed at each refresh; a prometheus_client custom collector
builds a StateSet and an Info family for every connector at each scrape.
"""

import json
import sys
import time

import httpx
from bs4 import BeautifulSoup
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import InfoMetricFamily, StateSetMetricFamily

SIMPLE = {"AVAILABLE": "available", "CHARGING": "charging", "PREPARING": "charging", "FINISHING": "charging",
          "SUSPENDED_EV": "charging", "SUSPENDED_EVSE": "charging", "OCCUPIED": "charging"}  # fmt: skip
connectors: list[tuple[str, str, str, str, str]] = []


def refresh(url: str, interval_s: float) -> None:
    global connectors
    while True:
        started = time.perf_counter()
        soup = BeautifulSoup(httpx.get(url, timeout=120).content, "xml")
        parsed = []
        for placemark in soup.find_all("Placemark"):
            # Written as the original was: a placemark without a name or value would crash it.
            station = placemark.find("name").text  # type: ignore[union-attr]
            for data in placemark.find_all("Data", attrs={"name": "chargingdevice"}):
                device = json.loads(data.find("value").text)  # type: ignore[union-attr]
                for connector in device.get("connectors", []):
                    state = connector["description"].upper()
                    speed = str(int(connector["maxchspeed"]))
                    parsed.append((station, device["name"], connector["name"], speed, state))
        connectors = parsed
        print(json.dumps({"refresh_s": time.perf_counter() - started}), flush=True)
        time.sleep(interval_s)


class Collector:
    def collect(self):  # type: ignore[no-untyped-def]
        labels = ["station", "device", "connector", "speed"]
        states = StateSetMetricFamily("chargy_connector_state", "Connector state", labels=labels)
        details = InfoMetricFamily("chargy_connector_detailed_state", "Raw state", labels=labels)
        for station, device, connector, speed, state in connectors:
            simple = SIMPLE.get(state, "unavailable")
            values = {name: name == simple for name in ("available", "charging", "unavailable")}
            states.add_metric([station, device, connector, speed], values)
            details.add_metric([station, device, connector, speed], {"state": state})
        yield states
        yield details


if __name__ == "__main__":
    REGISTRY.register(Collector())
    start_http_server(int(sys.argv[2]), addr="127.0.0.1")
    refresh(sys.argv[1], float(sys.argv[3]))
