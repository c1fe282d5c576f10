"""`clinic-kpis report build|send` end to end through the real entry point."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import duckdb
import pytest

from kpis.audit import AuditLog, command_line_user
from kpis.config import load_config
from reports.charts import ChartRenderer
from reports.cli import delivery_plan
from tests.cli_helpers import run_cli
from tests.reports.conftest import Practice
from tests.reports.smtp_server import PASSWORD, USER, Recorder, check_login, smtp_server


def config_file(tmp_path: Path, practice: Practice, extra: str = "") -> Path:
    path = tmp_path / "clinic-kpis.toml"
    path.write_text(
        f'[practice]\nname = "Riverbend Family Medicine"\n\n[warehouse]\npath = "{practice.db}"\n\n{extra}',
        encoding="utf-8",
    )
    return path


@pytest.mark.browser
def test_build_writes_html_and_pdf_and_prints_their_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, renderer: ChartRenderer
) -> None:
    config = config_file(tmp_path, practice)
    res = run_cli(capsys, "report", "build", "--config", str(config), "--month", "2026-10", "--out", "out")
    assert res.code == 0, res.err
    html, pdf = (tmp_path / "out" / f"clinic-kpis-report-2026-10-practice.{ext}" for ext in ("html", "pdf"))
    assert res.out.splitlines() == [str(Path("out") / html.name), str(Path("out") / pdf.name)]
    assert pdf.read_bytes().startswith(b"%PDF") and "No-show rate rose to 20.0%" in html.read_text("utf-8")
    assert res.err == ""  # quiet when not on a terminal


def test_each_configured_scope_gets_its_own_email_practice_first(tmp_path: Path, practice: Practice) -> None:
    recipients = 'recipients = { WEST = ["west@x.example"], practice = ["owner@x.example"], EAST = [] }'
    config = load_config(config_file(tmp_path, practice, f"[report]\n{recipients}\n"))
    assert delivery_plan(config, None, None) == [("practice", ("owner@x.example",)), ("WEST", ("west@x.example",))]
    assert delivery_plan(config, "WEST", None) == [("WEST", ("west@x.example",))]
    assert delivery_plan(config, "EAST", ["east@x.example"]) == [("EAST", ("east@x.example",))]
    assert delivery_plan(config, None, ["a@x.example", "b@x.example"]) == [("practice", ("a@x.example", "b@x.example"))]


@pytest.mark.browser
def test_send_dry_run_writes_the_eml_into_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, renderer: ChartRenderer
) -> None:
    config = config_file(
        tmp_path,
        practice,
        '[report]\nrecipients = { practice = ["owner@riverbend.example"], EAST = ["east@riverbend.example"] }\n\n'
        '[smtp]\nfrom = "reports@riverbend.example"\n',
    )
    args = ["--config", str(config), "--month", "2026-10", "--location", "EAST", "--dry-run", "--out", "mail"]
    res = run_cli(capsys, "report", "send", *args)
    assert res.code == 0, res.err
    eml = Path("mail") / "clinic-kpis-report-2026-10-EAST.eml"
    assert res.out.splitlines() == [str(eml)]
    east = message_from_bytes((tmp_path / eml).read_bytes(), policy=policy.default)
    assert east["To"] == "east@riverbend.example" and east["From"] == "reports@riverbend.example"
    assert east["Subject"].endswith(" — Eastside (EAST)")
    assert "No-show rate rose to 30.0%" in east.get_body(("plain",)).get_content()


@pytest.mark.browser
def test_send_dry_run_without_recipients_writes_a_sample_eml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, renderer: ChartRenderer
) -> None:
    """A first try of `report send --dry-run` needs no recipients: it writes a sample, and says so."""
    config = config_file(tmp_path, practice)
    res = run_cli(capsys, "report", "send", "--config", str(config), "--month", "2026-10", "--dry-run", "--out", "mail")
    assert res.code == 0, res.err
    eml = Path("mail") / "clinic-kpis-report-2026-10-practice.eml"
    assert res.out.splitlines() == [str(eml)]
    assert res.err == (
        "no recipients configured for the practice report: the .eml is a sample addressed to owner@example.org, "
        f"a placeholder (set [report] recipients in {config})\n"
    )
    sample = message_from_bytes((tmp_path / eml).read_bytes(), policy=policy.default)
    assert sample["To"] == "owner@example.org"
    assert "No-show rate rose to 20.0%" in sample.get_body(("plain",)).get_content()
    html = sample.get_body(("html",)).get_content()
    assert '<h1 style="' in html  # the styles travel on the elements


@pytest.mark.browser
def test_send_delivers_to_the_configured_recipients(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, renderer: ChartRenderer
) -> None:
    recorder, start = Recorder(), datetime.now(UTC)
    with smtp_server(recorder) as port:
        config = config_file(
            tmp_path,
            practice,
            '[report]\nrecipients = { practice = ["owner@riverbend.example", "partner@riverbend.example"] }\n\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nfrom = "reports@riverbend.example"\n',
        )
        res = run_cli(capsys, "report", "send", "--config", str(config), "--month", "2026-10")
    assert res.code == 0, res.err
    assert res.out.strip() == (
        "sent the practice report for 2026-10 to owner@riverbend.example, partner@riverbend.example"
    )
    (got,) = recorder.received
    assert got.rcpt_tos == ["owner@riverbend.example", "partner@riverbend.example"]
    (attachment,) = got.message.iter_attachments()
    assert attachment.get_filename() == "clinic-kpis-report-2026-10-practice.pdf"
    (sent,) = AuditLog.beside(practice.db).entries(since=start).to_dict("records")
    assert (sent["event"], sent["user"], sent["period"]) == ("report_sent", command_line_user(), "2026-10")
    assert json.loads(sent["detail"]) == {
        "scope": "practice",
        "recipients": ["owner@riverbend.example", "partner@riverbend.example"],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "--month", "10/2026"], "error: --month must be a month like 2026-10, got '10/2026'"),
        (["build", "--month", "2027-01"], "error: no data for 2027-01: the warehouse covers 2025-10 to 2026-10"),
        (["build", "--location", "SOUTH"], "error: --location: no location 'SOUTH' in the warehouse; known: Eastside"),
        (["build", "--format", "docx"], "error: --format takes html and/or pdf separated by a comma, got 'docx'"),
        (["build", "--paper", "legal"], "error: --paper must be one of letter, a4, got 'legal'"),
        (["send", "--month", "2026-10"], "error: no recipients: add [report] recipients = { practice ="),
        (["send", "--location", "EAST"], "error: no recipients for EAST: add EAST = [...] to [report] recipients"),
        (["send", "--to", "owner at example"], "error: --to: 'owner at example' is not an email address"),
    ],
)
def test_mistakes_are_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, args: list[str], message: str
) -> None:
    config = config_file(tmp_path, practice)
    res = run_cli(capsys, "report", *args, "--config", str(config))
    assert res.code == 1
    assert res.err.startswith(message) and len(res.err.strip().splitlines()) == 1, res.err


def test_send_without_the_smtp_password_stops_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice
) -> None:
    config = config_file(tmp_path, practice, '[smtp]\nusername = "reports@riverbend.example"\n')
    res = run_cli(capsys, "report", "send", "--config", str(config), "--to", "owner@riverbend.example")
    assert res.code == 1
    assert res.err.strip() == (
        "error: [smtp] username is 'reports@riverbend.example' but CLINIC_KPIS_SMTP_PASSWORD is not set: "
        "nothing was sent"
    )


@pytest.mark.browser
def test_a_location_id_with_a_slash_and_a_name_with_a_line_break_still_give_a_report_and_an_email(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, renderer: ChartRenderer
) -> None:
    """Issue 19 item 8: both come from the data. The id was used as is in a file name (a traceback
    for `NORTH/2`) and the name in the Subject header (a line break there made Python refuse it)."""
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(practice.db, db)
    with duckdb.connect(str(db)) as con:
        for (table,) in con.execute(
            "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'location_id'"
        ).fetchall():
            con.execute(f"UPDATE {table} SET location_id = 'EAST/2' WHERE location_id = 'EAST'")
        con.execute("UPDATE locations SET name = 'East\nside' WHERE location_id = 'EAST/2'")
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(f'[practice]\nname = "Riverbend Family Medicine"\n\n[warehouse]\npath = "{db}"\n')
    built = run_cli(capsys, "report", "build", "--config", str(config), "--month", "2026-10", "--location", "EAST/2")
    assert built.code == 0, built.err
    assert (tmp_path / "clinic-kpis-report-2026-10-EAST_2.html").exists()
    args = ["--month", "2026-10", "--location", "EAST/2", "--to", "east@x.example", "--dry-run", "--out", "mail"]
    sent = run_cli(capsys, "report", "send", "--config", str(config), *args)
    assert sent.code == 0, sent.err
    eml = tmp_path / "mail" / "clinic-kpis-report-2026-10-EAST_2.eml"
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    subject = str(message["Subject"]).strip()
    assert subject.startswith("Riverbend Family Medicine: monthly report, October 2026 — East side")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[practice]\nname = "River\\nbend"\n', "[practice] name must be one line of text; it holds '\\n'"),
        ('[smtp]\nfrom = "reports@x.example\\r\\nBcc: all@x.example"\n', "[smtp] from must be one line of text"),
    ],
)
def test_a_line_break_in_the_practice_name_or_sender_is_a_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: str, message: str
) -> None:
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(table)
    res = run_cli(capsys, "report", "send", "--config", str(config), "--dry-run", "--to", "a@x.example")
    assert res.code == 1
    assert res.err.startswith(f"error: {config}: {message}") and len(res.err.splitlines()) == 1, res.err


@pytest.mark.browser
def test_a_login_without_tls_is_sent_with_a_warning(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    practice: Practice,
    renderer: ChartRenderer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 19 item 11: `security = "none"` with a username sent the password in clear, silently."""
    monkeypatch.setenv("CLINIC_KPIS_SMTP_PASSWORD", PASSWORD)
    recorder = Recorder()
    with smtp_server(recorder, authenticator=check_login, auth_require_tls=False) as port:
        config = config_file(
            tmp_path,
            practice,
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nusername = "{USER}"\nfrom = "{USER}"\n',
        )
        res = run_cli(capsys, "report", "send", "--config", str(config), "--month", "2026-10", "--to", "o@x.example")
    assert res.code == 0, res.err
    assert res.err.splitlines() == [
        f'warning: [smtp] security = "none" with username {USER!r}: the password is sent unencrypted to '
        f"127.0.0.1:{port}, readable on the way; use starttls or ssl"
    ]
    assert len(recorder.received) == 1
