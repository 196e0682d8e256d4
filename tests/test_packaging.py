"""The package as users install it: one version, and a systemd unit that systemd accepts."""

from __future__ import annotations

import configparser
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import otel_chargy

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "contrib" / "otel-chargy.service"


def test_the_version_has_one_source() -> None:
    assert version("otel-chargy") == otel_chargy.__version__
    assert "version =" not in (ROOT / "pyproject.toml").read_text().split("[project.urls]")[0]


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # The unit names the command where `pip install` puts it system-wide; verify checks that the
    # command exists, so the copy checked here names this environment's instead.
    command = Path(sys.executable).parent / "otel-chargy"
    assert command.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/otel-chargy", str(command)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_unit_runs_confined_with_the_environment_file() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["DynamicUser"] == "yes"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["EnvironmentFile"].lstrip("-") == "/etc/otel-chargy/otel-chargy.env"
    assert service["RestartPreventExitStatus"] == "2"  # a configuration error does not loop
