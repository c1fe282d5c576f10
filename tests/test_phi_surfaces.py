"""Issue 19 item 4: patient text planted where exports put free text, in values that fail mapping,
reaches no surface: not the warehouse, not its rejects, not the Data page, not a report, not an email.

The simulated practice (loaded by the real CLI) gets three more exports, each with records that
break a rule and carry a made-up name, phone number, MRN and diagnosis in the fields a person
types into: a vendor CSV status word and date, a FHIR status, identifier, reason and comment, an
X12 claim's note and diagnosis. Every surface a person or another program sees is then searched.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpis.config import ENV_CONFIG, ENV_DB
from kpis.warehouse import Warehouse
from tests.conftest import SimulatedPractice, clinic_kpis, require_tool

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "ingest" / "fixtures"
PLANTED = ["zztestname", "5558675309", "77441122", "z8711", "chest pain"]


def planted_exports(folder: Path) -> list[Path]:
    folder.mkdir()
    vendor = (FIXTURES / "vendor" / "north_appointments_2025.csv").read_text().splitlines()
    header, row = vendor[0], vendor[1]
    bad_status = row.replace("V1,", "P1,", 1).replace("Checked Out", "Pt ZZTESTNAME called from 5558675309")
    bad_date = row.replace("V1,03/14/2025", "P2,ZZTESTNAME 5558675309").replace("MRN001", "MRN-77441122")
    csv = folder / "north_appointments_extra.csv"
    csv.write_text("\n".join([header, bad_status, bad_date]) + "\n")
    appointment = {
        "resourceType": "Appointment",
        "id": "p3",
        "status": "Pt ZZTESTNAME called from 5558675309",
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-77441122"}],
        "reasonCode": [{"coding": [{"code": "Z8711"}], "text": "ZZTESTNAME chest pain"}],
        "comment": "ZZTESTNAME asked for a call back",
        "description": "chest pain",
        "start": "2026-09-10T09:00:00-04:00",
        "end": "2026-09-10T09:20:00-04:00",
        "minutesDuration": "ZZTESTNAME 5558675309",
    }
    fhir = folder / "Appointment.ndjson"
    fhir.write_text(json.dumps(appointment) + "\n")
    claims = (FIXTURES / "x12" / "claims_2025-03.837").read_text()
    # claim C101 loses its CLM05 (so it is rejected) and gains a note and a diagnosis
    claims = claims.replace("CLM*C101*80***11:B:1*Y*A*Y*Y~", "CLM*C101*80~").replace("HI*ABK:Z0000~", "HI*ABK:Z8711~")
    claims = claims.replace("LX*1~\nSV1*HC:99395", "NTE*ADD*PT ZZTESTNAME CALLED 5558675309~\nLX*1~\nSV1*HC:99395")
    x12 = folder / "claims_extra.837"
    x12.write_text(claims.replace("*20250305*1200", "*20250306*1200"))
    return [csv, fhir, x12]


@pytest.fixture(scope="module")
def planted(simulated_practice: SimulatedPractice, tmp_path_factory: pytest.TempPathFactory) -> SimulatedPractice:
    """A copy of the simulated practice with the planted exports loaded through the real CLI."""
    directory = tmp_path_factory.mktemp("planted")
    shutil.copyfile(simulated_practice.config, directory / "clinic-kpis.toml")
    shutil.copyfile(simulated_practice.db, directory / "clinic_kpis.duckdb")
    shutil.copyfile(simulated_practice.directory / ".clinic-kpis.secret", directory / ".clinic-kpis.secret")
    files = planted_exports(directory / "planted")
    done = clinic_kpis("ingest", *map(str, files), cwd=directory)
    assert done.returncode == 0, done.stderr
    return SimulatedPractice(
        directory, simulated_practice.exports, directory / "clinic_kpis.duckdb", directory / "clinic-kpis.toml"
    )


def leaks(text: str) -> list[str]:
    low = text.lower()
    return [p for p in PLANTED if p in low]


def test_the_planted_records_are_quarantined_and_nothing_planted_is_stored(planted: SimulatedPractice) -> None:
    with Warehouse(planted.db, read_only=True) as wh:
        cur = wh.cursor()
        quarantined = cur.execute(
            "SELECT DISTINCT regexp_extract(file_path, '[^/]+$'), position FROM rejects "
            "WHERE file_path LIKE '%planted%' ORDER BY 1, 2"
        ).fetchall()
        assert quarantined == [
            ("Appointment.ndjson", 1),
            ("claims_extra.837", 32),
            ("north_appointments_extra.csv", 2),
            ("north_appointments_extra.csv", 3),
        ]
        found = []
        for schema, table, column in cur.execute(  # every schema: the results store's too
            "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
        ).fetchall():
            for phrase in PLANTED:
                sql = f'SELECT count(*) FROM "{schema}"."{table}" WHERE lower("{column}") LIKE ?'
                n = cur.execute(sql, [f"%{phrase}%"])
                if n.fetchone()[0]:
                    found.append((table, column, phrase))
    assert found == []
    data = planted.db.read_bytes()
    wal = planted.db.with_name(planted.db.name + ".wal")
    data += wal.read_bytes() if wal.exists() else b""
    assert [p for p in PLANTED if p.encode() in data.lower()] == []


def test_the_data_page_shows_no_planted_text(planted: SimulatedPractice, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DB, str(planted.db))
    monkeypatch.setenv(ENV_CONFIG, str(planted.config))
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=120).run()
    at.switch_page("views/data_sources.py").run()
    assert not at.exception
    frames = [d.value for d in at.dataframe]
    rejects = next(f for f in frames if "reason" in f.columns)
    assert rejects["file_path"].str.contains("planted").any()  # the planted records are listed ...
    shown = "\n".join(f.to_csv() for f in frames) + "\n".join(str(e.value) for e in at.markdown)
    assert leaks(shown) == []  # ... without what was planted in them


def test_reports_and_emails_show_no_planted_text(planted: SimulatedPractice, tmp_path: Path) -> None:
    require_tool("chromium")
    built = clinic_kpis(
        "report", "build", "--month", "2026-09", "--out", str(tmp_path / "reports"), cwd=planted.directory
    )
    assert built.returncode == 0, built.stderr
    mail = str(tmp_path / "mail")
    sent = clinic_kpis(
        *("report", "send", "--month", "2026-09", "--dry-run", "--to", "owner@example.org", "--out", mail),
        cwd=planted.directory,
    )
    assert sent.returncode == 0, sent.stderr
    html = [p.read_text() for p in (tmp_path / "reports").glob("*.html")]
    assert html and leaks("\n".join(html)) == []
    for eml in (tmp_path / "mail").glob("*.eml"):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
        assert parts and leaks("\n".join(parts) + str(message["Subject"])) == []
    assert leaks(built.stdout + built.stderr + sent.stdout + sent.stderr) == []


def test_alert_digests_show_no_planted_text(planted: SimulatedPractice, tmp_path: Path) -> None:
    require_tool("chromium")
    config = tmp_path / "alerts.toml"
    recipients = '[report]\nrecipients = { practice = ["owner@example.org"], EAST = ["east@example.org"] }\n'
    config.write_text(planted.config.read_text(encoding="utf-8") + "\n" + recipients, encoding="utf-8")
    mail = tmp_path / "alerts"
    args = ("alerts", "check", "--dry-run", "--format", "json", "--out", str(mail), "--config", str(config))
    done = clinic_kpis(*args, "--db", str(planted.db), cwd=planted.directory)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)  # the simulated practice raises alerts: there is something to search
    emls = sorted(mail.glob("*.eml"))
    assert len(emls) == 2
    for eml in emls:
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
        assert parts and leaks("\n".join(parts) + str(message["Subject"])) == []
    assert leaks(done.stdout + done.stderr) == []
