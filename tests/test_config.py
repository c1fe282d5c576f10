"""Config: defaults without a file; file < environment < flag; clear errors; secret handling."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.config import load_config, write_secret
from kpis.errors import ConfigError
from kpis.storage import latest_schema_version
from tests.cli_helpers import run_cli


def test_defaults_work_without_a_file(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.path is None
    assert cfg.timezone == "America/New_York"
    assert cfg.db_path == Path("clinic_kpis.duckdb")
    assert cfg.business_hours.days == ("mon", "tue", "wed", "thu", "fri")
    assert cfg.smtp.security == "starttls" and cfg.smtp.port == 587


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_file_then_env_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_file = write(
        tmp_path / "c.toml",
        '[practice]\nname = "Riverbend"\ntimezone = "America/Chicago"\n[warehouse]\npath = "data/w.duckdb"\n',
    )
    cfg = load_config(cfg_file)
    assert cfg.practice_name == "Riverbend" and cfg.timezone == "America/Chicago"
    assert cfg.db_path == tmp_path / "data" / "w.duckdb"  # relative to the config file

    monkeypatch.setenv("CLINIC_KPIS_DB", "/env/w.duckdb")
    assert load_config(cfg_file).db_path == Path("/env/w.duckdb")
    assert load_config(cfg_file, db=Path("/flag/w.duckdb")).db_path == Path("/flag/w.duckdb")

    monkeypatch.setenv("CLINIC_KPIS_CONFIG", str(cfg_file))
    assert load_config().practice_name == "Riverbend"  # found through the environment


def test_default_file_in_working_directory_is_used(tmp_path: Path) -> None:
    write(tmp_path / "clinic-kpis.toml", '[practice]\nname = "Here"\n')
    assert load_config().practice_name == "Here"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[practice]\ntimezone = "Mars/Olympus"\n', "not an IANA time zone"),
        ("[practise]\nname = 'x'\n", "unknown section.*practise"),
        ("[smtp]\npassword = 'hunter2'\n", "must not be stored in the config file.*CLINIC_KPIS_SMTP_PASSWORD"),
        ("[smtp]\nsecurity = 'tls13'\n", "starttls, ssl or none"),
        ("[business_hours]\nstart = '8am'\n", "start must look like '08:00'"),
        ("[practice\nname=", "not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    cfg_file = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(cfg_file)
    assert "bad.toml" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_named_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_secret_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "s" / "secret"
    assert write_secret(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert len(first.strip()) == 64
    assert write_secret(path) is False
    assert path.read_text() == first


def test_secret_from_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config()
    with pytest.raises(ConfigError, match="clinic-kpis init"):
        cfg.secret()
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "from-env-0123456789")
    assert cfg.secret() == b"from-env-0123456789"


@pytest.mark.parametrize("weak", ["x", "short-secret", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab"])
def test_a_weak_secret_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, weak: str) -> None:
    """Issue 19 item 7: a 1-character (or short, or repetitive) key would let anyone recompute a
    known patient's pseudonym; it is refused from the environment and from the file alike."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", weak)
    with pytest.raises(ConfigError, match=rf"from CLINIC_KPIS_SECRET is too weak \({len(weak)} characters"):
        load_config().secret()
    monkeypatch.delenv("CLINIC_KPIS_SECRET")
    (tmp_path / ".clinic-kpis.secret").write_text(weak + "\n")
    with pytest.raises(ConfigError, match="is too weak"):
        load_config().secret()


def test_init_creates_everything_and_never_prints_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_cli(capsys, "init", "--db", str(tmp_path / "w.duckdb"), "--practice-name", "Oak Clinic")
    assert res.code == 0, res.err
    secret = (tmp_path / ".clinic-kpis.secret").read_text().strip()
    assert secret and secret not in res.out + res.err
    cfg = load_config(tmp_path / "clinic-kpis.toml")
    assert cfg.practice_name == "Oak Clinic"
    assert cfg.db_path == tmp_path / "w.duckdb"
    with Warehouse.open(config=cfg, read_only=True) as wh:
        tables = len(wh.tables())
    assert f"schema version {latest_schema_version()}, {tables} tables" in res.out

    again = run_cli(capsys, "init")
    assert again.code == 0
    assert "(kept)" in again.out and secret not in again.out + again.err
    assert (tmp_path / ".clinic-kpis.secret").read_text().strip() == secret


def test_init_with_secret_from_env_writes_no_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "s3cr3t-value-for-this-test")
    res = run_cli(capsys, "init")
    assert res.code == 0
    assert not (tmp_path / ".clinic-kpis.secret").exists()
    assert "s3cr3t-value-for-this-test" not in res.out + res.err


def test_the_template_init_writes_is_valid_for_every_package(tmp_path: Path) -> None:
    """Every table of the commented template loads, and the packages that own a table accept it."""
    from ingest.settings import IngestSettings, ingest_settings
    from kpis.config import render_config_template
    from reports.settings import report_settings

    path = write(
        tmp_path / "c.toml",
        render_config_template(practice_name="Oak", timezone="America/Denver", db_path="w.duckdb", secret_file="s"),
    )
    cfg = load_config(path)
    assert (cfg.practice_name, cfg.timezone, cfg.db_path) == ("Oak", "America/Denver", tmp_path / "w.duckdb")
    assert report_settings(cfg).paper == "letter"
    assert cfg.raw["ingest"] == {} and cfg.smtp.port == 587
    uncommented = path.read_text().replace("\n# memory_limit", "\nmemory_limit").replace("\n# lock_wait", "\nlock_wait")
    uncommented = uncommented.replace("\n# earliest_date", "\nearliest_date").replace(
        "\n# latest_years", "\nlatest_years"
    )
    assert ingest_settings(load_config(write(tmp_path / "d.toml", uncommented))) == IngestSettings()  # the defaults
