"""Settings: flags over environment over defaults, bounds, and one line naming the setting per error."""

from __future__ import annotations

import os
from pathlib import Path

import bcrypt
import pytest

from otel_chargy.config import DEFAULT_KML_URL, SETTINGS, ConfigError, ListenAddress, build_parser, load_config
from otel_chargy.main import main
from tests.conftest import TEST_API_KEY

KEY = TEST_API_KEY


def config_error(argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(argv, environ)
    return str(raised.value)


def test_defaults() -> None:
    config = load_config([], {})
    assert config.kml_url == DEFAULT_KML_URL
    assert config.refresh_interval_s == 300
    assert config.listen_address == ListenAddress("0.0.0.0", 9000)
    assert config.telemetry_path == "/metrics"
    assert config.max_staleness_s == 900
    assert config.fetch_timeout_s == 30
    assert (config.max_bytes, config.max_connectors) == (50_000_000, 40_000)
    assert (config.demo, config.log_level, config.log_format) == (False, "info", "logfmt")
    assert (config.otlp_metrics_protocol, config.otlp_traces_protocol) == ("grpc", "grpc")
    assert config.check_source is None


def test_environment_fallbacks_and_flags_over_them() -> None:
    environ = {
        "KML_URL": "file:///tmp/feed.kml",
        "CHARGY_REFRESH_INTERVAL": "2.5",
        "CHARGY_LISTEN": "[::1]:9100",
        "CHARGY_MAX_STALENESS": "60",
        "CHARGY_FETCH_TIMEOUT": "5",
        "CHARGY_MAX_BYTES": "1_000",
        "CHARGY_MAX_CONNECTORS": "200_000",
        "CHARGY_LOG_LEVEL": "DEBUG",
        "CHARGY_LOG_FORMAT": "json",
    }
    config = load_config([], environ)
    assert config.kml_url == "file:///tmp/feed.kml"
    assert config.refresh_interval_s == 2.5
    assert config.listen_address == ListenAddress("::1", 9100)
    assert (config.max_staleness_s, config.fetch_timeout_s, config.max_bytes) == (60, 5, 1000)
    assert config.max_connectors == 200_000
    assert (config.log_level, config.log_format) == ("debug", "json")
    assert config.written_as["refresh_interval_s"] == "CHARGY_REFRESH_INTERVAL"
    flagged = load_config(["--refresh-interval", "7", "--kml-url", "/x.kml", "--log.format=logfmt"], environ)
    assert (flagged.refresh_interval_s, flagged.kml_url, flagged.log_format) == (7, "/x.kml", "logfmt")
    assert flagged.written_as["refresh_interval_s"] == "--refresh-interval"
    assert load_config([], {"CHARGY_DEMO": "1"}).demo and load_config(["--demo"], {}).demo
    assert not load_config([], {"CHARGY_DEMO": "no"}).demo


def test_the_events_go_as_logs_where_otel_logs_exporter_says_and_their_bound_is_a_setting() -> None:
    assert load_config([], {}).logs_exporters == ()
    assert load_config([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}).logs_exporters == ("otlp",)
    assert load_config([], {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:4318/v1/logs"}).logs_exporters == ("otlp",)
    assert load_config([], {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}).logs_exporters == ()
    assert load_config([], {"OTEL_LOGS_EXPORTER": "console"}).logs_exporters == ("console",)
    endpoint_but_none = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_LOGS_EXPORTER": "none"}
    assert load_config([], endpoint_but_none).logs_exporters == ()
    protocols = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"}
    assert load_config([], protocols).otlp_logs_protocol == "http/protobuf"
    assert config_error([], {"OTEL_LOGS_EXPORTER": "loki"}).startswith("OTEL_LOGS_EXPORTER 'loki'")
    assert load_config([], {}).events_max == 100_000
    assert load_config(["--events.max", "200"], {}).events_max == 200
    assert load_config([], {"CHARGY_EVENTS_MAX": "1000"}).events_max == 1000
    assert config_error(["--events.max", "10"], {}).startswith("--events.max '10'")
    assert "MiB at the default" in build_parser().format_help()


def test_exporter_choices_follow_the_otel_variables() -> None:
    assert load_config([], {}).metrics_exporters == ("prometheus",)
    assert load_config([], {}).traces_exporters == ()
    both = load_config([], {"OTEL_METRICS_EXPORTER": "prometheus, otlp"})
    assert both.metrics_exporters == ("prometheus", "otlp")
    assert load_config([], {"OTEL_METRICS_EXPORTER": "none"}).metrics_exporters == ()
    with_endpoint = load_config([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert with_endpoint.traces_exporters == ("otlp",)
    assert load_config([], {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}).traces_exporters == (
        "otlp",
    )
    assert load_config([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}).traces_exporters == ("otlp",)
    assert load_config(["--traces-exporter", "console"], {}).traces_exporters == ("console",)
    protocols = load_config(
        [], {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    )
    assert (protocols.otlp_metrics_protocol, protocols.otlp_traces_protocol) == ("http/protobuf", "grpc")


def test_an_empty_otel_variable_is_unset_as_the_specification_says() -> None:
    config = load_config([], {"OTEL_METRICS_EXPORTER": "", "OTEL_EXPORTER_OTLP_PROTOCOL": " "})
    assert (config.metrics_exporters, config.otlp_metrics_protocol) == (("prometheus",), "grpc")


def test_push_interval_is_the_sdk_default_capped_at_the_refresh_interval() -> None:
    assert load_config([], {}).metric_export_interval_s == 60
    assert load_config(["--refresh-interval", "20"], {}).metric_export_interval_s == 20
    assert load_config([], {"OTEL_METRIC_EXPORT_INTERVAL": "15000"}).metric_export_interval_s == 15


def test_otlp_header_values_are_secrets() -> None:
    config = load_config([], {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%3D123,x-team=core"})
    assert set(config.otlp_header_values) >= {"abc%3D123", "abc=123", "core"}
    assert "abc" not in repr(config)


def test_max_staleness_defaults_to_three_refresh_intervals() -> None:
    assert load_config(["--refresh-interval", "10"], {}).max_staleness_s == 30


def test_config_repr_hides_the_feed_url() -> None:
    assert "486ac6e4" not in repr(load_config([], {}))
    assert KEY not in repr(load_config(["check", f"http://{KEY}@h/kml"], {"KML_URL": f"http://{KEY}@h/"}))


@pytest.mark.parametrize(
    "url",
    [
        "https://my.chargy.lu/kml?API-KEY=k",
        "HTTP://127.0.0.1:8080/kml",
        "http://[::1]:8080/kml",
        "http://[fe80::1%25eth0]/kml",
        "http://key@host/kml",
        "http://user:key@host/kml",
        "file:///tmp/feed.kml",
        "file://localhost/tmp/feed.kml",
        "/tmp/feed.kml",
        "feed.kml",
        "./a:b.kml",
    ],
)
def test_feed_urls_accepted(url: str) -> None:
    assert load_config(["--kml-url", url], {}).kml_url == url


@pytest.mark.parametrize("where", ["before", "after"])
def test_check_honours_every_flag_before_or_after_it(where: str) -> None:
    flags = ["--max-bytes", "5000", "--fetch-timeout", "2", "--log.level", "debug", "--log.format", "json"]
    argv = [*flags, "check", "feed.kml"] if where == "before" else ["check", "feed.kml", *flags]
    config = load_config(argv, {"CHARGY_MAX_BYTES": "7000"})
    assert config.check_source == "feed.kml"
    assert (config.max_bytes, config.fetch_timeout_s, config.log_level, config.log_format) == (5000, 2, "debug", "json")
    assert load_config(["check", "feed.kml"], {"CHARGY_MAX_BYTES": "7000"}).max_bytes == 7000


def test_every_setting_default_meets_its_own_bounds() -> None:
    for setting in SETTINGS:
        if isinstance(setting.default, str):
            setting.convert(setting.default)


BAD_SETTINGS = [
    # The feed URL: a typo in the scheme, an empty value, a bad port, a broken IPv6 literal.
    ([], {"KML_URL": f"htps://h/kml?API-KEY={KEY}"}, "KML_URL", "scheme"),
    ([], {"KML_URL": f"ftp://h/kml?API-KEY={KEY}"}, "KML_URL", "scheme"),
    ([], {"KML_URL": ""}, "KML_URL", "empty"),
    (["--kml-url", ""], {}, "--kml-url", "empty"),
    ([], {"KML_URL": f"http://{KEY}@h:99999/kml"}, "KML_URL", "port"),
    ([], {"KML_URL": f"http://[::1/kml?API-KEY={KEY}"}, "KML_URL", "IPv6"),
    ([], {"KML_URL": "http://[::zz]/kml"}, "KML_URL", "IPv6"),
    ([], {"KML_URL": "http:///kml"}, "KML_URL", "no host"),
    ([], {"KML_URL": f"my.chargy.lu/kml?API-KEY={KEY}"}, "KML_URL", "http"),
    ([], {"KML_URL": "file://feed.kml"}, "KML_URL", "absolute path"),
    (["--kml-url", f"http://{KEY}@h/kml\n"], {}, "--kml-url", "control"),
    (["check", f"htps://{KEY}@h/kml"], {}, "check source", "scheme"),
    # A key with a raw / ? or # in the user part or the password is not parsed as one: still never shown.
    ([], {"KML_URL": f"http://u:{KEY}/x@127.0.0.1:18080/kml"}, "KML_URL", "an @ after the host"),
    ([], {"KML_URL": f"http://u:{KEY}#x@127.0.0.1:18080/kml"}, "KML_URL", "an @ after the host"),
    ([], {"KML_URL": f"http://u:{KEY}?x@127.0.0.1:18080/kml"}, "KML_URL", "an @ after the host"),
    ([], {"KML_URL": f"http://{KEY}/x@127.0.0.1:18080/kml"}, "KML_URL", "an @ after the host"),
    # An OTLP header that is not key=value: the SDK would log it whole.
    ([], {"OTEL_EXPORTER_OTLP_HEADERS": KEY}, "OTEL_EXPORTER_OTLP_HEADERS", "key=value"),
    ([], {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"a=b,{KEY}"}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "key=value"),
    # Numbers: bounds, inf and nan.
    (["--refresh-interval", "abc"], {}, "--refresh-interval", "not a number"),
    (["--refresh-interval", "0.1"], {}, "--refresh-interval", "minimum"),
    (["--refresh-interval", "1e10"], {}, "--refresh-interval", "maximum"),
    (["--refresh-interval", "inf"], {}, "--refresh-interval", "finite"),
    ([], {"CHARGY_REFRESH_INTERVAL": "nan"}, "CHARGY_REFRESH_INTERVAL", "finite"),
    (["--fetch-timeout", "inf"], {}, "--fetch-timeout", "finite"),
    (["--fetch-timeout", "601"], {}, "--fetch-timeout", "maximum"),
    ([], {"CHARGY_FETCH_TIMEOUT": "soon"}, "CHARGY_FETCH_TIMEOUT", "not a number"),
    (["--max-staleness", "604801"], {}, "--max-staleness", "maximum"),
    (["--max-bytes", "-5"], {}, "--max-bytes", "minimum"),
    (["--max-bytes", "1e3"], {}, "--max-bytes", "whole"),
    ([], {"CHARGY_MAX_BYTES": "99999999999999999999999"}, "CHARGY_MAX_BYTES", "maximum"),
    (["--max-connectors", "10"], {}, "--max-connectors", "minimum"),
    ([], {"OTEL_METRIC_EXPORT_INTERVAL": "often"}, "OTEL_METRIC_EXPORT_INTERVAL", "not a number"),
    # Choices.
    ([], {"CHARGY_LOG_LEVEL": "trace"}, "CHARGY_LOG_LEVEL", "debug, info, warn, error"),
    (["--log.level", "loud"], {}, "--log.level", "debug"),
    ([], {"CHARGY_LOG_FORMAT": "xml"}, "CHARGY_LOG_FORMAT", "logfmt, json"),
    ([], {"CHARGY_DEMO": "sure"}, "CHARGY_DEMO", "true"),
    (["--metrics-exporter", "prometheus,statsd"], {}, "--metrics-exporter", "choose"),
    ([], {"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", "choose"),
    ([], {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ([], {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
    ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "IPv6"),
    (
        [],
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "htps://c:4318/v1/traces"},
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "scheme",
    ),
    ([], {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://c:99999/?api-key={KEY}"}, "_METRICS_ENDPOINT", "port"),
    # The listen address and the telemetry path.
    (["--web.listen-address", "9000"], {}, "--web.listen-address", "host:port"),
    (["--web.listen-address", "host:99999"], {}, "--web.listen-address", "port"),
    ([], {"CHARGY_LISTEN": "[::1:9000"}, "CHARGY_LISTEN", "brackets"),
    ([], {"CHARGY_LISTEN": "::1:9000"}, "CHARGY_LISTEN", "brackets"),
    ([], {"CHARGY_LISTEN": "[::zz]:9000"}, "CHARGY_LISTEN", "IPv6"),
    (["--web.telemetry-path", "metrics"], {}, "--web.telemetry-path", "starts with /"),
    (["--web.telemetry-path", "/metrics?x"], {}, "--web.telemetry-path", "?"),
    (["--web.telemetry-path", "/"], {}, "--web.telemetry-path", "taken"),
    (["--web.telemetry-path", "/healthz"], {}, "--web.telemetry-path", "taken"),
    (["--web.telemetry-path", "/readyz"], {}, "--web.telemetry-path", "taken"),
    (["--web.telemetry-path", "/api/metrics"], {}, "--web.telemetry-path", "taken"),
    (["--web.telemetry-path", "/static/m"], {}, "--web.telemetry-path", "taken"),
    (["--web.telemetry-path", "/station/metrics"], {}, "--web.telemetry-path", "taken"),
    # Flags: misspelt, abbreviated, unknown; variables: misspelt.
    (["--web.listen-adress", "127.0.0.1:9000"], {}, "--web.listen-adress", "did you mean --web.listen-address"),
    (["--refresh", "5"], {}, "--refresh", "unrecognized"),
    (["--no-such-option"], {}, "--no-such-option", "unrecognized"),
    (["check", "feed.kml", "--max-byte", "5"], {}, "--max-byte", "unrecognized"),
    (["chek", "feed.kml"], {}, "chek", "check"),
    ([], {"CHARGY_REFRESH_INTERVALL": "5"}, "CHARGY_REFRESH_INTERVALL", "did you mean CHARGY_REFRESH_INTERVAL"),
    # Settings that exclude each other.
    (["--demo", "--kml-url", "/x.kml"], {}, "--demo and --kml-url", "exclude"),
    (["--demo"], {"KML_URL": "/x.kml"}, "--demo and KML_URL", "exclude"),
    ([], {"CHARGY_DEMO": "1", "KML_URL": "/x.kml"}, "CHARGY_DEMO and KML_URL", "exclude"),
]


@pytest.mark.parametrize(("argv", "environ", "name", "reason"), BAD_SETTINGS)
def test_bad_setting_is_one_line_naming_it_as_written(
    argv: list[str], environ: dict[str, str], name: str, reason: str
) -> None:
    message = config_error(argv, environ)
    assert "\n" not in message
    assert name in message and reason in message
    assert KEY not in message


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        ([], {"KML_URL": f"htps://my.chargy.lu/kml?API-KEY={KEY}"}),
        ([], {"KML_URL": f"htps://{KEY}@my.chargy.lu/kml"}),
        ([], {"KML_URL": f"htps://chargy:{KEY}@my.chargy.lu/kml"}),
        (["--kml-url", f"http://{KEY}@my.chargy.lu:99999/kml"], {}),
        ([f"--kml-url=http://chargy:{KEY}@[::1/kml"], {}),
        (["check", "feed.kml", f"https://{KEY}@my.chargy.lu/kml"], {}),
        (["--refresh-interval", "inf"], {}),
        (["--web.listen-adress", "127.0.0.1:9000"], {}),
    ],
)
def test_main_exits_2_with_one_line_and_no_key(
    argv: list[str], environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in [name for name in os.environ if name.startswith(("CHARGY_", "OTEL_", "KML_"))]:
        monkeypatch.delenv(variable)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("otel-chargy: error: ")
    assert KEY not in captured.err


def test_help_documents_every_setting_and_hides_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["check", "--help"]):
        with pytest.raises(SystemExit) as exited:
            load_config(argv, {})
        assert exited.value.code == 0
        shown = capsys.readouterr().out
        for setting in SETTINGS:
            assert setting.flag is None or setting.flag in shown
            assert setting.flag is None or setting.variable is None or setting.variable in shown
        assert "API-KEY=REDACTED" in shown and "486ac6e4" not in shown


def web_config(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return ["--web.config.file", str(path)]


# A fixed salt: the hash stands in test ids, which must be the same in every collection (pytest -n).
HASH = bcrypt.hashpw(b"secret", b"$2b$04$" + b"otelchargytestsaltsale").decode()


def test_web_config_accepted(tmp_path: Path) -> None:
    config = load_config(
        web_config(
            tmp_path, f"basic_auth_users:\n  prometheus: '{HASH}'\nhttp_server_config:\n  headers:\n    X-A: b\n"
        ),
        {},
    )
    assert config.web_config.basic_auth_users == {"prometheus": HASH.encode()}
    assert config.web_config.headers == {"X-A": "b"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS13\n  max_version: TLS12\n",
         "min_version is above max_version"),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS9\n", "min_version"),
        ("tls_server_config:\n  cert_file: [a.crt]\n  key_file: a.key\n", "cert_file must be a string"),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: [x]\n", "client_auth_type"),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n",
         "needs client_ca_file"),
        ("http_server_config:\n  headers:\n    Content-Length: '5'\n", "frames the answer"),
        ("http_server_config:\n  headers:\n    Transfer-Encoding: chunked\n", "frames the answer"),
        (f"basic_auth_users:\n  prometheus: '{HASH[:-5]}'\n", "bcrypt"),
        (f"basic_auth_users:\n  prometheus: '{HASH}x'\n", "bcrypt"),
        ("basic_auth_users:\n  prometheus: 12\n", "bcrypt"),
        (f"basic_auth_users:\n  'a:b': '{HASH}'\n", "user name"),
        (f"basic_auth_users:\n  1: '{HASH}'\n", "user name"),
        ("basic_auth_users: [a]\n", "mapping"),
        ("http_server_config:\n  headers: [a]\n", "headers must be a mapping"),
        ("http_server_config:\n  headers:\n    X-A: \"b\\r\\nSet-Cookie: x\"\n", "one-line"),
        ("http_server_config:\n  headers:\n    'X A': b\n", "header name"),
        ("http_server_config:\n  headers:\n    X-A: [b]\n", "one-line"),
        ("1: a\nb: c\n", "unsupported"),
        ("tls_server_config: {}\n2: x\n", "unsupported"),
        ("a: [\n", "while parsing"),
    ],
)  # fmt: skip
def test_bad_web_config_is_one_line_naming_the_file(tmp_path: Path, text: str, reason: str) -> None:
    message = config_error(web_config(tmp_path, text), {})
    assert "\n" not in message and message.startswith("--web.config.file ") and reason in message


def test_missing_web_config_names_the_file(tmp_path: Path) -> None:
    message = config_error(["--web.config.file", str(tmp_path / "none.yml")], {})
    assert message.startswith("--web.config.file ") and "none.yml" in message


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    for setting in (setting for setting in SETTINGS if setting.flag):
        row = next((row for row in rows if row.startswith(f"| `{setting.flag}`")), None)
        assert row is not None, setting.flag
        assert setting.variable is None or f"`{setting.variable}" in row, setting.variable
