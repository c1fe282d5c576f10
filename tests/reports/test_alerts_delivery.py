"""`clinic-kpis alerts check` end to end: digests per recipient and scope to a real SMTP server on loopback.

The report's known-answer practice (tests/reports/practice.py) in a writable copy, with the
default rules: in October 2026 the practice's no-show rate (20.0%) and Eastside's (30.0%) are
beyond the 10% red line, and the practice, Eastside and Westside (10.0% for three months) have
missed the 7% target three months in a row; Northside's 5 visits a month are too few to judge,
and call abandonment is on target. So the owner gets those 5 alerts, Eastside's manager 2 and
Westside's 1, each over STARTTLS with a login, once.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import trustme

from kpis import Warehouse
from kpis.config import ENV_SMTP_PASSWORD, load_config
from kpis.coverage import COVERAGE
from reports import alerts_cli
from tests.cli_helpers import run_cli
from tests.reports.conftest import Practice
from tests.reports.smtp_server import PASSWORD, USER, Recorder, check_login, free_port, smtp_server

OWNER, EAST, WEST = "owner@riverbend.example", "east.manager@riverbend.example", "west.manager@riverbend.example"
DASHBOARD = "http://dashboard.riverbend.example:8501"
SUBJECTS = {
    OWNER: "Riverbend Family Medicine: 5 KPI alerts for the whole practice",
    EAST: "Riverbend Family Medicine: 2 KPI alerts for Eastside (EAST)",
    WEST: "Riverbend Family Medicine: 1 KPI alert for Westside (WEST)",
}
EAST_RED = "No-show rate at Eastside was 30.0% in October 2026, above its red line of 10.0% (target 7.0%)."
EAST_OFF = (
    "No-show rate at Eastside has missed its target of 7.0% 3 months in a row, August 2026 to October 2026: "
    "10.0%, 10.0%, 30.0%."
)
WEST_OFF = (
    "No-show rate at Westside has missed its target of 7.0% 3 months in a row, August 2026 to October 2026: "
    "10.0%, 10.0%, 10.0%."
)
PRACTICE_RED = "No-show rate was 20.0% in October 2026, above its red line of 10.0% (target 7.0%)."


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server certificate from a throwaway CA that the command's default SSL context trusts."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv(ENV_SMTP_PASSWORD, PASSWORD)
    return server


def setup(tmp_path: Path, practice: Practice, port: int) -> Path:
    db = tmp_path / "alerts.duckdb"
    shutil.copy(practice.db, db)
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        f'[practice]\nname = "Riverbend Family Medicine"\n\n[warehouse]\npath = "{db}"\n\n'
        f'[report]\nrecipients = {{ practice = ["{OWNER}"], EAST = ["{EAST}"], WEST = ["{WEST}"] }}\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "starttls"\nusername = "{USER}"\nfrom = "{USER}"\n\n'
        f'[dashboard]\nurl = "{DASHBOARD}"\n',
        encoding="utf-8",
    )
    return config


def server_options(tls: ssl.SSLContext) -> dict:
    return {"tls_context": tls, "require_starttls": True, "authenticator": check_login, "auth_required": True}


def by_recipient(recorder: Recorder) -> dict:
    out = {}
    for got in recorder.received:
        (rcpt,) = got.rcpt_tos
        assert rcpt not in out, f"{rcpt} got two digests"
        out[rcpt] = got
    return out


def texts(got) -> tuple[str, str]:
    return got.message.get_body(("plain",)).get_content(), got.message.get_body(("html",)).get_content()


@pytest.mark.browser
def test_each_scope_gets_its_digest_once_over_starttls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, tls: ssl.SSLContext
) -> None:
    recorder = Recorder()
    with smtp_server(recorder, **server_options(tls)) as port:
        config = setup(tmp_path, practice, port)
        res = run_cli(capsys, "alerts", "check", "--config", str(config))
        assert res.code == 0, res.err
        assert "evaluation 1: 5 alert(s) raised, 0 cleared" in res.out
        got = by_recipient(recorder)
        assert set(got) == {OWNER, EAST, WEST}
        assert all(g.tls and g.mail_from == USER for g in got.values())
        assert {rcpt: g.message["Subject"] for rcpt, g in got.items()} == SUBJECTS

        east_text, east_html = texts(got[EAST])
        assert EAST_RED in east_text and EAST_OFF in east_text and EAST_RED in east_html
        # the styles on the elements, as in the monthly report's email: mail clients drop <style>
        assert re.search(r'<div class="alert"[^>]* style="[^"]*border-left: 4px solid #b03a2e', east_html)
        assert ".alert {" not in east_html and "<style>" not in east_html
        link = f"{DASHBOARD}/access?months=2025-10&months=2026-10&grain=month&location=Eastside"
        assert link in east_text and link.replace("&", "&amp;") in east_html
        assert f"{DASHBOARD}/alerts?location=Eastside" in east_text
        for other in ("Westside", "Northside", "Whole practice", "whole practice", "20.0%", "10.2%", WEST_OFF):
            assert other not in east_text and other not in east_html, other
        west_text, west_html = texts(got[WEST])
        assert WEST_OFF in west_text
        for other in ("Eastside", "Northside", "Whole practice", "30.0%", "20.0%", EAST_RED):
            assert other not in west_text and other not in west_html, other
        owner_text, _ = texts(got[OWNER])
        assert all(line in owner_text for line in (PRACTICE_RED, EAST_RED, EAST_OFF, WEST_OFF))
        assert "Northside" not in owner_text  # 5 visits a month: too few records to raise anything

        # one inline PNG chart per KPI and scope, referenced by the HTML
        east_charts = [p for p in got[EAST].message.walk() if p.get_content_type() == "image/png"]
        assert len(east_charts) == 1 and east_charts[0].get_content().startswith(b"\x89PNG")
        assert f"cid:{east_charts[0]['Content-ID'].strip('<>')}" in east_html
        assert len([p for p in got[OWNER].message.walk() if p.get_content_type() == "image/png"]) == 3
        for g in got.values():  # no patient data: the fixture's 64-hex pseudonyms never leave
            assert not re.search(r"[0-9a-f]{64}", g.message.as_string())

        again = run_cli(capsys, "alerts", "check", "--config", str(config))
        assert again.code == 0, again.err
        assert "0 alert(s) raised" in again.out and "nothing new to send" in again.out
        assert len(recorder.received) == 3
    with Warehouse.open(config=load_config(config), read_only=True) as wh:
        deliveries = wh.alert_deliveries()
    assert len(deliveries) == 5 + 2 + 1
    assert set(deliveries["status"]) == {"sent"} and set(deliveries["attempts"]) == {1}


@pytest.mark.browser
def test_a_server_that_is_down_is_retried_and_the_alerts_wait_for_it(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    practice: Practice,
    tls: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(alerts_cli, "BACKOFF_SECONDS", 0.01)
    port = free_port()
    config = setup(tmp_path, practice, port)
    down = run_cli(capsys, "alerts", "check", "--config", str(config))
    assert down.code == 1
    refused = f"cannot connect to SMTP server 127.0.0.1:{port}: connection refused"
    assert f"attempt 1 of 3 to send the practice alert digest to {OWNER} failed: {refused}" in down.err
    assert "retrying in 0.01 s" in down.err and "attempt 2 of 3" in down.err and "attempt 3 of 3" not in down.err
    assert f"the EAST alert digest to {EAST} was not sent after 3 attempts" in down.err
    assert "its 2 alert(s) stay pending for the next run" in down.err
    with Warehouse.open(config=load_config(config), read_only=True) as wh:
        pending = wh.alert_deliveries()
    assert len(pending) == 8 and set(pending["status"]) == {"pending"} and set(pending["attempts"]) == {3}
    assert all(refused in e for e in pending["last_error"])

    recorder = Recorder()
    with smtp_server(recorder, port=port, **server_options(tls)):
        back = run_cli(capsys, "alerts", "check", "--config", str(config))
        assert back.code == 0, back.err
        assert "0 alert(s) raised" in back.out  # raised by the first run, sent now
        got = by_recipient(recorder)
        assert {rcpt: g.message["Subject"] for rcpt, g in got.items()} == SUBJECTS
        assert EAST_RED in texts(got[EAST])[0]
        once_more = run_cli(capsys, "alerts", "check", "--config", str(config))
        assert once_more.code == 0 and "nothing new to send" in once_more.out
        assert len(recorder.received) == 3  # no duplicate
    with Warehouse.open(config=load_config(config), read_only=True) as wh:
        sent = wh.alert_deliveries()
    assert set(sent["status"]) == {"sent"} and set(sent["attempts"]) == {4}


@pytest.mark.browser
def test_dry_run_json_lists_what_would_be_sent_and_records_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice
) -> None:
    config = setup(tmp_path, practice, free_port())
    db = tmp_path / "alerts.duckdb"
    args = ["--dry-run", "--format", "json", "--out", "eml", "--db", str(db), "--config", str(config)]
    res = run_cli(capsys, "alerts", "check", *args)
    assert res.code == 0, res.err
    listed = json.loads(res.out)
    assert len(listed) == 5
    east_red = next(
        a for a in listed if a["rule"]["name"] == "no_show_rate.red_line" and a["scope"]["values"] == ["EAST"]
    )
    assert east_red == {
        "alert_id": None,
        "new": True,
        "kpi_id": "no_show_rate",
        "kpi_title": "No-show rate",
        "scope": {"dimension": "location", "values": ["EAST"], "label": "Eastside (EAST)"},
        "rule": {
            "name": "no_show_rate.red_line",
            "condition": "red_line",
            "text": "No-show rate above its red line (10.0%), monthly",
        },
        "period": "2026-10-01",
        "grain": "month",
        "value": 0.3,
        "value_text": "30.0%",
        "message": EAST_RED,
        "status": "open",
        "recipients": [OWNER, EAST],
        "pending_for": [],
    }
    scopes = sorted((a["rule"]["name"], a["scope"]["dimension"] or "", tuple(a["scope"]["values"])) for a in listed)
    assert scopes == [
        ("no_show_rate.off_target", "", ()),
        ("no_show_rate.off_target", "location", ("EAST",)),
        ("no_show_rate.off_target", "location", ("WEST",)),
        ("no_show_rate.red_line", "", ()),
        ("no_show_rate.red_line", "location", ("EAST",)),
    ]
    assert all(a["period"] == "2026-10-01" and a["kpi_id"] == "no_show_rate" for a in listed)
    files = sorted(p.name for p in (tmp_path / "eml").iterdir())
    assert files == [
        "clinic-kpis-alerts-EAST-east.manager_at_riverbend.example.eml",
        "clinic-kpis-alerts-WEST-west.manager_at_riverbend.example.eml",
        "clinic-kpis-alerts-practice-owner_at_riverbend.example.eml",
    ]
    east = message_from_bytes((tmp_path / "eml" / files[0]).read_bytes(), policy=policy.default)
    assert east["To"] == EAST and east["Subject"] == SUBJECTS[EAST]
    with Warehouse.open(config=load_config(config), read_only=True) as wh:
        assert wh.alert_evaluations().empty and wh.alerts().empty and wh.alert_deliveries().empty


def test_a_recipients_scope_the_warehouse_does_not_know_fails_before_anything_is_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SMTP_PASSWORD, PASSWORD)
    config = setup(tmp_path, practice, free_port())
    config.write_text(config.read_text(encoding="utf-8").replace("EAST = [", "SOUTH = ["), encoding="utf-8")
    res = run_cli(capsys, "alerts", "check", "--config", str(config))
    assert res.code == 1
    assert res.err.strip() == (
        f"error: {config}: [report] recipients.SOUTH: no location 'SOUTH' in the warehouse; "
        "known: Eastside (EAST), Northside (NORTH), Westside (WEST)"
    )
    with Warehouse.open(config=load_config(config), read_only=True) as wh:
        assert wh.alert_evaluations().empty


def test_a_bad_alert_rule_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, practice: Practice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SMTP_PASSWORD, PASSWORD)
    config = setup(tmp_path, practice, free_port())
    with config.open("a", encoding="utf-8") as fh:
        fh.write('\n[[alerts]]\nname = "abandonment east"\nkpi = "call_abandonment_rate"\ncondition = "red_line"\n')
        fh.write('scope = "location=EASTT"\n')
    res = run_cli(capsys, "alerts", "check", "--config", str(config))
    assert res.code == 1
    assert res.err.strip() == (
        f"error: {config}: [[alerts]] #1 (abandonment east): scope location=EASTT: no such location in the "
        "warehouse; known: EAST, NORTH, WEST"
    )


def test_a_location_digest_is_read_through_that_locations_scope(tmp_path: Path, practice: Practice) -> None:
    """As its report is, and as its manager reads the dashboard (kpis.scope): so a location's digest
    links to the months that location has data for (here from July 2026: its earlier rows are gone),
    while the owner's digest, for the same alert, offers the practice's months (from October 2025)."""
    from reports.alerts_email import plan_digests

    config = load_config(setup(tmp_path, practice, free_port()))
    with Warehouse.writing(config=config, what="test") as wh:
        with wh.transaction() as cur:
            for _, table, column, _ in COVERAGE:
                if table != "remittances":  # a remittance carries no location (its claim does)
                    cur.execute(
                        f"DELETE FROM {table} WHERE location_id = 'EAST' AND CAST({column} AS DATE) < DATE '2026-06-01'"
                    )
        wh.evaluate_alerts(trigger="test")
    with Warehouse.open(config=config, read_only=True) as wh:
        assert wh.dimension_values("location")["id"].tolist() == ["EAST", "NORTH", "WEST"]  # by label
        digests = {d.recipient: d for d in plan_digests(wh, {"practice": [OWNER], "EAST": [EAST]})}
    page = f"{DASHBOARD}/access?months={{}}&months=2026-10&grain=month&location=Eastside"
    assert {item.message for item in digests[EAST].items} == {EAST_RED, EAST_OFF}
    assert {item.link for item in digests[EAST].items} == {page.format("2026-07")}
    assert {item.link for item in digests[OWNER].items if item.scope_value == "EAST"} == {page.format("2025-10")}
