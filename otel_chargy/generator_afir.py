"""Synthetic two-part networks (DATEX II v3 AFIR and OICP) of any size, from one truth: the tests'
expectations and the benchmarks' load. The truth is written here from each format's state table, not
taken from a parser.

`python -m otel_chargy.generator --format datex2 --part static --placemarks 1000 > table.json` writes
one part (see generator.main).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape, quoteattr

from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station

_TOWNS = (
    ("Berlin", "10115"),
    ("Hamburg", "20095"),
    ("München", "80331"),
    ("Köln", "50667"),
    ("Frankfurt am Main", "60311"),
    ("Stuttgart", "70173"),
    ("Düsseldorf", "40213"),
    ("Leipzig", "04109"),
    ("Dortmund", "44135"),
    ("Bremen", "28195"),
)
_PLACES = ("Bahnhof", "Rathaus", "Marktplatz", "Parkhaus Mitte", "Autohof", "Supermarkt", "Raststätte", "Hauptstraße")
_POWERS_KW = (11.0, 22.0, 22.0, 22.0, 50.0, 150.0, 300.0)


@dataclass(frozen=True)
class PublishedState:
    datex2: str
    oicp: str
    state: SimpleState | None
    """None: the refill point is planned (DATEX II) or not found (OICP): left out."""
    weight: int


STATES: tuple[PublishedState, ...] = (
    PublishedState("available", "Available", SimpleState.AVAILABLE, 50),
    PublishedState("charging", "Occupied", SimpleState.CHARGING, 20),
    PublishedState("occupied", "Occupied", SimpleState.CHARGING, 4),
    PublishedState("outOfOrder", "OutOfService", SimpleState.UNAVAILABLE, 5),
    PublishedState("faulted", "OutOfService", SimpleState.UNAVAILABLE, 2),
    PublishedState("reserved", "Reserved", SimpleState.UNAVAILABLE, 2),
    PublishedState("unknown", "Unknown", SimpleState.UNKNOWN, 8),
    PublishedState("planned", "EvseNotFound", None, 2),
)
_NEVER_GIVEN_WEIGHT = 7  # refill points no status publication names: unknown


@dataclass(frozen=True)
class GeneratedPoint:
    key: str
    """DATEX II: the refill point's internal id, which statuses name."""
    evse_id: str
    power_kw: float
    connectors: int
    status: int | None
    """Index in STATES; None: never given a status."""


@dataclass(frozen=True)
class GeneratedSite:
    site_id: str
    name: str
    street: str
    house: str
    postcode: str
    city: str
    latitude: float
    longitude: float
    points: tuple[GeneratedPoint, ...]

    @property
    def address(self) -> str:
        return f"{self.street} {self.house}, {self.postcode} {self.city}"


@dataclass(frozen=True)
class TwoPartNetwork:
    sites: tuple[GeneratedSite, ...]

    @property
    def refill_points(self) -> int:
        return sum(len(site.points) for site in self.sites)

    def truth(self, feed_format: str) -> Snapshot:
        """What a parser of `feed_format` (datex2 or oicp) must serve."""
        stations = []
        for site in self.sites:
            devices = []
            for point in site.points:
                published = None if point.status is None else STATES[point.status]
                if published is not None and published.state is None:
                    continue
                raw = (
                    "unknown" if published is None else published.datex2 if feed_format == "datex2" else published.oicp
                )
                state = SimpleState.UNKNOWN if published is None or published.state is None else published.state
                connectors = tuple(
                    Connector(f"{point.evse_id} - {n}", n, point.power_kw, raw, state)
                    for n in range(1, point.connectors + 1)
                )
                devices.append(Device(point.evse_id, connectors))
            stations.append(Station(site.name, site.address, site.latitude, site.longitude, tuple(devices)))
        return Snapshot(stations=tuple(stations))


def generate_two_part_network(
    sites: int,
    seed: int = 0,
    *,
    area: tuple[float, float, float, float] = (5.87, 47.27, 15.04, 55.06),
    points_per_site: float = 2.5,
) -> TwoPartNetwork:
    """`sites` sites over `area` (west, south, east, north; Germany by default), about `points_per_site`
    refill points each, of 1 or 2 connectors."""
    rng = random.Random(seed)
    west, south, east, north = area
    weights = [state.weight for state in STATES] + [_NEVER_GIVEN_WEIGHT]
    choices: list[int | None] = [*range(len(STATES)), None]
    generated = []
    for index in range(sites):
        city, postcode = rng.choice(_TOWNS)
        points = []
        for number in range(max(1, round(rng.expovariate(1 / points_per_site)))):
            points.append(
                GeneratedPoint(
                    key=f"{index:08X}-{number:04X}-4000-8000-RP",
                    evse_id=f"DE*GEN*E{index:07d}*{number + 1}",
                    power_kw=rng.choice(_POWERS_KW),
                    connectors=rng.choice((1, 1, 2)),
                    status=rng.choices(choices, weights)[0],
                )
            )
        generated.append(
            GeneratedSite(
                site_id=f"{index:08X}-0000-4000-8000-SITE",
                name=f"{city} - {rng.choice(_PLACES)} {index}",
                street=rng.choice(_PLACES),
                house=str(rng.randint(1, 200)),
                postcode=postcode,
                city=city,
                latitude=round(rng.uniform(south, north), 6),
                longitude=round(rng.uniform(west, east), 6),
                points=tuple(points),
            )
        )
    return TwoPartNetwork(tuple(generated))


def with_new_statuses(network: TwoPartNetwork, fraction: float, seed: int = 1) -> TwoPartNetwork:
    """The network with `fraction` of its refill points given a new status (never None: it was published)."""
    rng = random.Random(seed)
    weights = [state.weight for state in STATES]
    sites = []
    for site in network.sites:
        points = tuple(
            replace(point, status=rng.choices(range(len(STATES)), weights)[0]) if rng.random() < fraction else point
            for point in site.points
        )
        sites.append(replace(site, points=points))
    return TwoPartNetwork(tuple(sites))


def _multilingual(text: str) -> dict[str, object]:
    return {"values": [{"lang": "de", "value": text}]}


def _datex2_site(site: GeneratedSite) -> dict[str, object]:
    points = [
        {
            "aegiElectricChargingPoint": {
                "idG": point.key,
                "versionG": "1",
                "externalIdentifier": [
                    {
                        "identifier": point.evse_id,
                        "typeOfIdentifier": {"value": "extendedG", "extendedValueG": "evseId"},
                    }
                ],
                "numberOfConnectors": point.connectors,
                "availableChargingPower": [point.power_kw * 1000],
                "connector": [
                    {"connectorType": {"value": "iec62196T2"}, "maxPowerAtSocket": point.power_kw * 1000}
                    for _ in range(point.connectors)
                ],
            }
        }
        for point in site.points
    ]
    address = {
        "postcode": site.postcode,
        "city": _multilingual(site.city),
        "countryCode": "DE",
        "addressLine": [
            {"order": 0, "type": {"value": "street"}, "text": _multilingual(site.street)},
            {"order": 1, "type": {"value": "houseNumber"}, "text": _multilingual(site.house)},
        ],
    }
    return {
        "idG": site.site_id,
        "versionG": "1",
        "name": _multilingual(site.name),
        "locationReference": {
            "locPointLocation": {
                "pointByCoordinates": {"pointCoordinates": {"latitude": site.latitude, "longitude": site.longitude}},
                "locLocationExtensionG": {"FacilityLocation": {"address": address}},
            }
        },
        "energyInfrastructureStation": [{"idG": f"{site.site_id}-S", "versionG": "1", "refillPoint": points}],
    }


def render_datex2_table_json(network: TwoPartNetwork) -> bytes:
    """The table publication as Mobilithek's AFIR profile shapes it: a bare `{"payload": ...}`."""
    document = {
        "payload": {
            "modelBaseVersionG": "3",
            "profileNameG": "AFIR Energy Infrastructure",
            "profileVersionG": "01-00-00",
            "aegiEnergyInfrastructureTablePublication": {
                "lang": "de",
                "publicationTime": "2026-12-01T06:00:00+01:00",
                "energyInfrastructureTable": [
                    {
                        "idG": "GENERATED",
                        "versionG": "1",
                        "energyInfrastructureSite": [_datex2_site(site) for site in network.sites],
                    }
                ],
            },
        }
    }
    return json.dumps(document, ensure_ascii=False).encode()


def _published(network: TwoPartNetwork, keys: Iterable[str] | None) -> list[tuple[GeneratedSite, list[GeneratedPoint]]]:
    wanted = None if keys is None else set(keys)
    return [
        (site, points)
        for site in network.sites
        if (points := [p for p in site.points if p.status is not None and (wanted is None or p.key in wanted)])
    ]


def render_datex2_status_json(
    network: TwoPartNetwork, *, keys: Iterable[str] | None = None, extra: Sequence[tuple[str, str]] = ()
) -> bytes:
    """The status publication in a `messageContainer`, every published status (or those of `keys`: a
    delta), and `extra` (refill point id, status) pairs the table may not hold."""
    site_statuses: list[dict[str, object]] = []
    for site, points in _published(network, keys):
        refill_statuses = [
            {
                "aegiElectricChargingPointStatus": {
                    "reference": {"targetClass": "FacilityObject", "idG": point.key, "versionG": "1"},
                    "lastUpdated": "2026-12-01T12:00:00+01:00",
                    "status": {"value": STATES[point.status].datex2},
                }
            }
            for point in points
            if point.status is not None
        ]
        site_statuses.append(
            {
                "reference": {"targetClass": "FacilityObject", "idG": site.site_id, "versionG": "1"},
                "energyInfrastructureStationStatus": [
                    {"reference": {"idG": f"{site.site_id}-S"}, "refillPointStatus": refill_statuses}
                ],
            }
        )
    if extra:
        site_statuses.append(
            {
                "reference": {"idG": "EXTRA"},
                "energyInfrastructureStationStatus": [
                    {
                        "reference": {"idG": "EXTRA-S"},
                        "refillPointStatus": [
                            {"aegiElectricChargingPointStatus": {"reference": {"idG": key}, "status": {"value": raw}}}
                            for key, raw in extra
                        ],
                    }
                ],
            }
        )
    document = {
        "messageContainer": {
            "payload": [
                {
                    "modelBaseVersionG": "3",
                    "aegiEnergyInfrastructureStatusPublication": {
                        "lang": "de",
                        "publicationTime": "2026-12-01T12:00:00+01:00",
                        "energyInfrastructureSiteStatus": site_statuses,
                    },
                }
            ],
            "exchangeInformation": {
                "exchangeContext": {"codedExchangeProtocol": {"value": "snapshotPull" if keys is None else "deltaPull"}}
            },
        }
    }
    return json.dumps(document, ensure_ascii=False).encode()


_XML_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<d2:payload xmlns:d2="http://datex2.eu/schema/3/d2Payload" xmlns:com="http://datex2.eu/schema/3/common"'
    ' xmlns:loc="http://datex2.eu/schema/3/locationReferencing"'
    ' xmlns:locx="http://datex2.eu/schema/3/locationExtension" xmlns="http://datex2.eu/schema/3/energyInfrastructure"'
    ' xmlns:fac="http://datex2.eu/schema/3/facilities" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xmlns:egi="http://datex2.eu/schema/3/energyInfrastructure" xsi:type="egi:{kind}" lang="de"'
    ' modelBaseVersion="3">\n<com:publicationTime>2026-12-01T12:00:00+01:00</com:publicationTime>\n'
)


def _xml_values(text: str) -> str:
    return f'<com:values><com:value lang="de">{escape(text)}</com:value></com:values>'


def render_datex2_table_xml(network: TwoPartNetwork) -> bytes:
    parts = [_XML_HEAD.replace("{kind}", "EnergyInfrastructureTablePublication")]
    parts.append('<energyInfrastructureTable id="GENERATED" version="1">\n')
    for site in network.sites:
        parts.append(
            f'<energyInfrastructureSite id={quoteattr(site.site_id)} version="1">'
            f"<fac:name>{_xml_values(site.name)}</fac:name>"
            '<fac:locationReference xsi:type="loc:PointLocation"><loc:pointByCoordinates><loc:pointCoordinates>'
            f"<loc:latitude>{site.latitude}</loc:latitude><loc:longitude>{site.longitude}</loc:longitude>"
            "</loc:pointCoordinates></loc:pointByCoordinates><loc:_locationReferenceExtension>"
            f"<locx:facilityLocation><locx:address><locx:postcode>{escape(site.postcode)}</locx:postcode>"
            f"<locx:city>{_xml_values(site.city)}</locx:city>"
            f'<locx:addressLine order="0"><locx:type>street</locx:type><locx:text>{_xml_values(site.street)}'
            f'</locx:text></locx:addressLine><locx:addressLine order="1"><locx:type>houseNumber</locx:type>'
            f"<locx:text>{_xml_values(site.house)}</locx:text></locx:addressLine></locx:address>"
            "</locx:facilityLocation></loc:_locationReferenceExtension></fac:locationReference>"
            f'<energyInfrastructureStation id={quoteattr(site.site_id + "-S")} version="1">'
        )
        for point in site.points:
            watts = f"{point.power_kw * 1000:g}"
            parts.append(
                f'<refillPoint xsi:type="egi:ElectricChargingPoint" id={quoteattr(point.key)} version="1">'
                f"<evseId>{escape(point.evse_id)}</evseId><numberOfConnectors>{point.connectors}</numberOfConnectors>"
                f"<availableChargingPower>{watts}</availableChargingPower>"
                + "".join(
                    f"<connector><connectorType>iec62196T2</connectorType><maxPowerAtSocket>{watts}</maxPowerAtSocket>"
                    "</connector>"
                    for _ in range(point.connectors)
                )
                + "</refillPoint>"
            )
        parts.append("</energyInfrastructureStation></energyInfrastructureSite>\n")
    parts.append("</energyInfrastructureTable></d2:payload>\n")
    return "".join(parts).encode()


def render_datex2_status_xml(network: TwoPartNetwork, *, keys: Iterable[str] | None = None) -> bytes:
    parts = [_XML_HEAD.replace("{kind}", "EnergyInfrastructureStatusPublication")]
    for site, points in _published(network, keys):
        parts.append(
            "<energyInfrastructureSiteStatus>"
            f'<fac:reference targetClass="fac:FacilityObject" id={quoteattr(site.site_id)} version="1"/>'
            f"<energyInfrastructureStationStatus><fac:reference id={quoteattr(site.site_id + '-S')}/>"
        )
        for point in points:
            assert point.status is not None
            parts.append(
                '<refillPointStatus xsi:type="ElectricChargingPointStatus">'
                f'<fac:reference targetClass="fac:FacilityObject" id={quoteattr(point.key)} version="1"/>'
                f"<status>{STATES[point.status].datex2}</status></refillPointStatus>"
            )
        parts.append("</energyInfrastructureStationStatus></energyInfrastructureSiteStatus>\n")
    parts.append("</d2:payload>\n")
    return "".join(parts).encode()


def render_oicp_data(network: TwoPartNetwork) -> bytes:
    """EVSEData as Switzerland publishes it: names in several languages, powers as numbers or text."""
    records = []
    for site in network.sites:
        for point in site.points:
            power: object = point.power_kw if point.connectors == 1 else f"{point.power_kw:g}"
            records.append(
                {
                    "EvseID": point.evse_id,
                    "ChargingStationId": point.evse_id,
                    "ChargingStationNames": [
                        {"lang": "de", "value": site.name},
                        {"lang": "fr", "value": f"{site.name} (fr)"},
                    ],
                    "Address": {
                        "Country": "CHE",
                        "City": site.city,
                        "Street": site.street,
                        "HouseNum": site.house,
                        "PostalCode": site.postcode,
                    },
                    "GeoCoordinates": {"Google": f"{site.latitude} {site.longitude}"},
                    "Plugs": ["Type 2 Outlet"] * point.connectors,
                    "ChargingFacilities": [{"power": power, "powertype": "AC_3_PHASE"}],
                    "IsOpen24Hours": True,
                }
            )
    document = {"EVSEData": [{"OperatorID": "CH*GEN", "OperatorName": "Generated", "EVSEDataRecord": records}]}
    return json.dumps(document, ensure_ascii=False).encode()


def render_oicp_status(network: TwoPartNetwork, *, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    records = [
        {"EvseID": point.evse_id, "EVSEStatus": STATES[point.status].oicp}
        for site, points in _published(network, None)
        for point in points
        if point.status is not None
    ] + [{"EvseID": evse_id, "EVSEStatus": status} for evse_id, status in extra]
    document = {"EVSEStatuses": [{"OperatorID": "CH*GEN", "OperatorName": "Generated", "EVSEStatusRecord": records}]}
    return json.dumps(document, ensure_ascii=False).encode()
