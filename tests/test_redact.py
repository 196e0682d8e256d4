"""The feed's key never shows: in the query, the user part or the password part, in any spelling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_chargy.fetch import HttpSource, Validators
from otel_chargy.generator import generate_network, render_kml
from otel_chargy.model import Connector, Device, SimpleState, Snapshot, Station
from otel_chargy.outcome import FeedError
from otel_chargy.redact import Redactor, redact_snapshot, redact_url, secrets_of_url
from tests.conftest import TEST_API_KEY
from tests.feedserver import FeedResponse, FeedServer
from tests.service import ServiceProcess, free_port

KEY = TEST_API_KEY


def with_key(url: str, form: str) -> str:
    """The feed URL with the key in the query, in the user part, or in the password part."""
    if form == "query":
        return url + ("&" if "?" in url else "?") + f"API-KEY={KEY}"
    userinfo = {"user": KEY, "password": f"chargy:{KEY}"}[form]
    return url.replace("://", f"://{userinfo}@", 1)


FORMS = ("query", "user", "password")


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://h/kml?API-KEY=abc&x=1", "https://h/kml?API-KEY=REDACTED&x=1"),
        ("https://abc@h/kml", "https://REDACTED@h/kml"),
        ("https://abc:@h/kml", "https://REDACTED@h/kml"),
        ("https://chargy:abc@h:8443/kml?a=b#f", "https://chargy:REDACTED@h:8443/kml?a=b#f"),
        ("https://h/kml?access_token=abc&apikey=d&sig=e&Password=f&auth=g", None),
        ("https://h/kml?api%2Dkey=abc", "https://h/kml?api%2Dkey=REDACTED"),
        # Invalid URLs are redacted too: they are shown in the error that refuses them.
        ("htps://abc@h/kml?API-KEY=abc", "htps://REDACTED@h/kml?API-KEY=REDACTED"),
        ("http://abc@[::1/kml?token=abc", "http://REDACTED@[::1/kml?token=REDACTED"),
        ("http://abc@h:99999/kml", "http://REDACTED@h:99999/kml"),
        ("https://h/kml?a=1;API-KEY=abc&b", "https://h/kml?a=1;API-KEY=REDACTED&b"),
        ("https://h/cb#access_token=abc&state=s", "https://h/cb#access_token=REDACTED&state=s"),
        ("https://h/kml?x=a%26b&API-KEY=abc=d", "https://h/kml?x=a%26b&API-KEY=REDACTED"),
        ("/tmp/feed.kml", "/tmp/feed.kml"),
        ("file:///tmp/feed.kml?x=1", "file:///tmp/feed.kml?x=1"),
    ],
)
def test_redact_url_keeps_everything_but_the_secrets(url: str, redacted: str | None) -> None:
    assert "abc" not in redact_url(url)
    if redacted is not None:
        assert redact_url(url) == redacted


@pytest.mark.parametrize("form", FORMS)
def test_secrets_of_url_hold_every_spelling(form: str) -> None:
    key = "k/e y+=é"
    encoded = "k%2Fe%20y%2B%3D%C3%A9"
    url = with_key("https://h/kml", form).replace(KEY, encoded)
    secrets = set(secrets_of_url(url))
    assert {encoded, key, "k%2fe%20y%2b%3d%c3%a9"} <= secrets
    redactor = Redactor(list(secrets))
    for spelling in (key, encoded, "k%2fe%20y%2b%3d%c3%a9", "k%2Fe+y%2B%3D%C3%A9"):
        assert redactor(f"GET {spelling} failed") == "GET REDACTED failed"


def documented_secret_words() -> list[str]:
    """The words docs/security.md promises: a query parameter whose name holds one is a secret."""
    page = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    sentence = " ".join(page.split("any parameter whose name holds ", 1)[1].split(", in the query", 1)[0].split())
    return re.findall(r"`([a-z]+)`", sentence)


def test_the_documented_secret_words_are_read_from_the_docs() -> None:
    assert documented_secret_words() == ["key", "token", "secret", "sig", "pass", "auth", "credential"]


@pytest.mark.parametrize("word", documented_secret_words())
@pytest.mark.parametrize("spelling", ["{}", "{}%5Fv2", "X-{}-Id", "my_{}"])
@pytest.mark.parametrize("upper", [False, True])
def test_every_documented_secret_word_hides_its_value_in_the_query_and_fragment(
    word: str, spelling: str, upper: bool
) -> None:
    name = spelling.format(word.upper() if upper else word)
    value = f"v4lue-of-{word}"
    for url, redacted in (
        (f"https://h/kml?a=1&{name}={value}&b=2", f"https://h/kml?a=1&{name}=REDACTED&b=2"),
        (f"https://h/kml?{name}={value}#{name}={value}", f"https://h/kml?{name}=REDACTED#{name}=REDACTED"),
    ):
        assert redact_url(url) == redacted
        assert value in secrets_of_url(url)
        assert Redactor(secrets_of_url(url))(f"GET {url} failed: {value}") == f"GET {redacted} failed: REDACTED"


@pytest.mark.parametrize("form", FORMS)
def test_a_secret_in_each_form_is_hidden_and_the_rest_kept(form: str) -> None:
    url = with_key("https://feed.example:8443/kml?x=1", form)
    redacted = {
        "query": "https://feed.example:8443/kml?x=1&API-KEY=REDACTED",
        "user": "https://REDACTED@feed.example:8443/kml?x=1",
        "password": "https://chargy:REDACTED@feed.example:8443/kml?x=1",
    }[form]
    assert redact_url(url) == redacted
    assert Redactor(secrets_of_url(url))(f"{url} {KEY}") == f"{redacted} REDACTED"


@pytest.mark.parametrize("name", ["x", "page", "city", "format", "kml", "id"])
def test_a_parameter_named_without_a_secret_word_is_kept(name: str) -> None:
    url = f"https://h/kml?{name}=visible"
    assert redact_url(url) == url and secrets_of_url(url) == []


def test_secrets_of_url_lists_every_secret_in_every_part() -> None:
    """A password, two query secrets and one in the fragment only: each is listed, none replaces another."""
    url = "https://chargy:pw-1@h/kml?API-KEY=key-2&x=1&token=tok-3#access_token=frag-4&state=s"
    assert {"pw-1", "key-2", "tok-3", "frag-4"} <= set(secrets_of_url(url))
    assert Redactor(secrets_of_url(url))("pw-1 key-2 tok-3 frag-4 s") == "REDACTED REDACTED REDACTED REDACTED s"


def test_a_user_with_a_password_is_not_a_secret() -> None:
    assert secrets_of_url("https://chargy:abc@h/") == ["abc"]


@pytest.mark.parametrize("secrets", [["abc", "abcdef"], ["def", "abcdef"], ["bcd", "abcdef"]])
def test_redactor_replaces_a_longer_secret_whole(secrets: list[str]) -> None:
    """A secret that holds another (at its start, its end, its middle) is replaced whole, in any order."""
    shorter = secrets[0]
    for given in (secrets, secrets[::-1]):
        assert Redactor(given)(f"x abcdef {shorter}") == "x REDACTED REDACTED"


def test_a_raw_at_sign_in_the_password_stays_in_the_secret() -> None:
    """The host follows the last @, as clients read it: all of the password before it is hidden."""
    url = "https://chargy:p@ss@feed.example/kml"
    assert redact_url(url) == "https://chargy:REDACTED@feed.example/kml"
    assert "p@ss" in secrets_of_url(url)


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def span_texts(exporter: InMemorySpanExporter) -> str:
    texts = []
    for span in exporter.get_finished_spans():
        texts += [span.name, str(span.attributes), str(span.status.description)]
        texts += [f"{event.name} {event.attributes}" for event in span.events]
    return "\n".join(texts)


@pytest.mark.parametrize("form", FORMS)
def test_spans_of_failed_and_good_fetches_hold_no_key(
    form: str, feed: FeedServer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    good = HttpSource(with_key(feed.url(), form), timeout_s=5, max_bytes=10_000_000, tracer=tracer)
    unreachable = HttpSource(
        with_key(f"http://127.0.0.1:{free_port()}/kml", form), timeout_s=5, max_bytes=10_000_000, tracer=tracer
    )
    try:
        assert KEY not in good.description and "REDACTED" in good.description
        feed.serve(FeedResponse(render_kml(generate_network(3))))
        assert good.fetch(Validators()).body
        feed.serve(FeedResponse(b"down", status=502))
        with pytest.raises(FeedError):
            good.fetch(Validators())
        with pytest.raises(FeedError):
            unreachable.fetch(Validators())
    finally:
        good.close()
        unreachable.close()
    assert len(exporter.get_finished_spans()) == 3
    texts = span_texts(exporter)
    assert "HTTP 502" in texts and "REDACTED" in texts
    # The key as the test wrote it, not as the code under test lists its spellings.
    assert KEY not in texts


@pytest.mark.parametrize("form", ["user", "password"])
def test_service_shows_no_key_of_the_user_part(form: str, feed: FeedServer) -> None:
    feed.serve(FeedResponse(render_kml(generate_network(5))))
    with ServiceProcess(["--kml-url", with_key(feed.url(), form), "--refresh-interval", "0.5"]) as service:
        service.wait_for_refreshes("success", 1)
        feed.serve(FeedResponse(b"down", status=502))
        service.wait_for_refreshes("http_error", 1)
        pages = [service.get(path).text for path in ("/", "/readyz", "/metrics")]
    output = service.logs() + "".join(pages)
    assert "REDACTED@127.0.0.1" in output
    assert KEY not in output


def test_a_secret_cut_short_is_redacted_from_its_8th_character() -> None:
    redactor = Redactor([KEY, "short"])
    for cut in (8, 20, 40, len(KEY)):
        assert redactor(f"keys: ({KEY[:cut]}), x") == "keys: (REDACTED), x", cut
    assert redactor(KEY[:7]) == KEY[:7]  # seven characters say too little to be taken for the key
    assert redactor("a brief secret: short, shor") == "a brief secret: REDACTED, shor"


def test_redaction_never_makes_two_labels_one() -> None:
    connectors = tuple(
        Connector(name, 1, 22.0, "AVAILABLE", SimpleState.AVAILABLE) for name in (f"C {KEY}", "C REDACTED")
    )
    devices = (Device(f"D {KEY}", connectors), Device("D REDACTED", connectors[:1]))
    stations = tuple(Station(name, "", None, None, devices) for name in (f"S {KEY}", "S REDACTED", "S REDACTED (2)"))
    redacted = redact_snapshot(Snapshot(stations), Redactor([KEY]))
    assert [station.name for station in redacted.stations] == ["S REDACTED", "S REDACTED (3)", "S REDACTED (2)"]
    for station in redacted.stations:
        assert [device.name for device in station.devices] == ["D REDACTED", "D REDACTED (2)"]
        assert [connector.name for connector in station.devices[0].connectors] == ["C REDACTED", "C REDACTED (2)"]
    assert KEY not in repr(redacted)


def test_a_snapshot_without_a_secret_is_served_as_it_came() -> None:
    network = generate_network(20)
    assert redact_snapshot(network, Redactor([KEY])) is network
    assert redact_snapshot(network, Redactor([])) is network


def test_a_short_secret_is_redacted_where_it_stands_alone_and_garbles_no_word() -> None:
    """A one-character header value (a tenant id `1`) is hidden where it stands alone, not inside other
    words and numbers, which it would garble."""
    redactor = Redactor(["1"])
    assert redactor("time=2026-12-03T20:01 tenant=1 id: 1") == "time=2026-12-03T20:01 tenant=REDACTED id: REDACTED"
