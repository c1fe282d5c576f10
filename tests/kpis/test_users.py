"""Users, roles and passwords (kpis.users), sign-in settings and OIDC claims (kpis.access), the
failed sign-in throttle (kpis.throttle), and `clinic-kpis users` on a real warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kpis.access import AccessSettings, GroupRole, access_settings, oidc_user
from kpis.audit import AuditLog
from kpis.config import load_config
from kpis.errors import ConfigError
from kpis.storage import Store
from kpis.throttle import FREE_FAILURES, MAX_WAIT_SECONDS, SignInThrottle
from kpis.users import (
    User,
    UserError,
    add_user,
    find_user,
    list_users,
    remove_user,
    set_password,
    set_role,
    verify_password,
)
from tests.conftest import CHEAP_HASHER as CHEAP
from tests.kpis.builder import Fixture

CONFIG = """\
[locations]
EAST = "Eastside"
WEST = "Westside"
"""
PASSWORD = "correct horse battery"


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    fixture = Fixture(tmp_path, CONFIG)
    fixture.add("locations", {"location_id": "EAST", "name": "Eastside Family Medicine"}, {"location_id": "WEST"})
    yield fixture
    fixture.close()


def test_a_password_is_kept_only_as_an_argon2id_hash(fx: Fixture) -> None:
    add_user(fx.wh, "Maria@Clinic.Example ", "owner", password=PASSWORD, hasher=CHEAP)
    (stored,) = fx.wh.cursor().execute("SELECT name, password_hash FROM users").fetchall()
    assert stored[0] == "maria@clinic.example"  # names are compared without case
    assert stored[1].startswith("$argon2id$") and PASSWORD not in stored[1]
    user = find_user(fx.wh, "MARIA@clinic.example")
    assert verify_password(user, PASSWORD)
    assert not verify_password(user, PASSWORD.upper())
    assert not verify_password(None, PASSWORD)  # an unknown name: same answer, same cost
    assert "hash" not in repr(user) and "$argon2" not in repr(user)


def test_roles_give_their_scopes(fx: Fixture) -> None:
    add_user(fx.wh, "ann", "owner", password=PASSWORD, hasher=CHEAP)
    add_user(fx.wh, "ben", "analyst", password=PASSWORD, hasher=CHEAP)
    add_user(fx.wh, "cat", "manager", ["Eastside"], password=PASSWORD, hasher=CHEAP)
    add_user(fx.wh, "dan", "viewer", ["EAST", "WEST"], password=None)
    scopes = {u.name: u.scope(fx.config) for u in list_users(fx.wh)}
    assert scopes["ann"].locations is None and scopes["ann"].records and not scopes["ann"].small_cells
    assert scopes["ben"].locations is None and scopes["ben"].records and not scopes["ben"].small_cells
    assert scopes["cat"].locations == {"EAST"} and scopes["cat"].records and not scopes["cat"].small_cells
    assert scopes["dan"].locations == {"EAST", "WEST"} and not scopes["dan"].records and scopes["dan"].small_cells
    assert scopes["cat"].label == "cat (manager of Eastside)"
    assert not find_user(fx.wh, "dan").has_password  # signs in through the identity provider only


@pytest.mark.parametrize(
    ("name", "role", "locations", "password", "message"),
    [
        ("eve", "boss", (), PASSWORD, "unknown role 'boss'; use one of owner, manager, analyst, viewer"),
        ("eve", "manager", (), PASSWORD, "a manager sees the locations assigned: give at least one --location"),
        ("eve", "analyst", ("EAST",), PASSWORD, "an analyst sees every location"),
        ("eve", "viewer", ("SOUTH",), PASSWORD, "--location: no location 'SOUTH' in the warehouse"),
        ("eve", "owner", (), "short", "at least 12 characters"),
        ("two words", "owner", (), PASSWORD, "one word without spaces"),
        ("ann", "owner", (), PASSWORD, "user ann exists already"),
    ],
)
def test_bad_users_are_refused_with_a_reason(
    fx: Fixture, name: str, role: str, locations: tuple, password: str, message: str
) -> None:
    add_user(fx.wh, "ann", "owner", password=PASSWORD, hasher=CHEAP)
    with pytest.raises(UserError, match=message):
        add_user(fx.wh, name, role, locations, password, hasher=CHEAP)
    assert [u.name for u in list_users(fx.wh)] == ["ann"]


def test_the_last_owner_stays_while_others_are_left(fx: Fixture) -> None:
    add_user(fx.wh, "ann", "owner", password=PASSWORD, hasher=CHEAP)
    add_user(fx.wh, "cat", "manager", ["EAST"], password=PASSWORD, hasher=CHEAP)
    with pytest.raises(UserError, match="ann is the last owner"):
        set_role(fx.wh, "ann", "analyst")
    with pytest.raises(UserError, match="ann is the last owner"):
        remove_user(fx.wh, "ann")
    set_role(fx.wh, "cat", "owner")
    assert set_role(fx.wh, "ann", "viewer", ["WEST"]).locations == ("WEST",)
    remove_user(fx.wh, "ann")
    remove_user(fx.wh, "cat")  # the last user of all may go: then no one signs in
    assert list_users(fx.wh) == []
    with pytest.raises(UserError, match="no user 'cat'; users: none"):
        remove_user(fx.wh, "cat")


def test_a_new_password_replaces_the_old(fx: Fixture) -> None:
    add_user(fx.wh, "ann", "owner", password=PASSWORD, hasher=CHEAP)
    set_password(fx.wh, "ann", "another long passphrase", hasher=CHEAP)
    user = find_user(fx.wh, "ann")
    assert verify_password(user, "another long passphrase") and not verify_password(user, PASSWORD)


# -- settings and identity-provider claims ------------------------------------------------------


def test_access_settings_defaults_and_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("", encoding="utf-8")
    assert access_settings(load_config(path)) == AccessSettings()
    path.write_text(
        '[access]\nsession_minutes = 30\noidc_groups = { "kpi-owners" = "owner", '
        '"east" = { role = "manager", locations = ["EAST"] } }\n',
        encoding="utf-8",
    )
    settings = access_settings(load_config(path))
    assert settings.session_minutes == 30
    assert settings.oidc_groups == {"kpi-owners": GroupRole("owner"), "east": GroupRole("manager", ("EAST",))}
    for text, message in [
        ("session_minutes = 0", "session_minutes must be a whole number above 0"),
        ("sesion_minutes = 5", "unknown key"),
        ('oidc_groups = { "x" = "boss" }', "oidc_groups.x: unknown role 'boss'"),
        ('oidc_groups = { "x" = "manager" }', "a manager needs locations"),
        ('oidc_groups = { "x" = { role = "owner", locations = ["EAST"] } }', "an owner sees every location"),
    ]:
        path.write_text(f"[access]\n{text}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            access_settings(load_config(path))


def test_oidc_claims_name_a_user_or_a_group_role(fx: Fixture) -> None:
    add_user(fx.wh, "cat@clinic.example", "manager", ["EAST"], password=None)
    settings = AccessSettings(oidc_groups={"kpi-analysts": GroupRole("analyst")})
    users = {u.name: u for u in list_users(fx.wh)}
    assert oidc_user(users, {"email": "Cat@Clinic.example", "groups": ["kpi-analysts"]}, settings).role == "manager"
    assert oidc_user(users, {"email": "dan@clinic.example", "groups": ["kpi-analysts"]}, settings) == User(
        "dan@clinic.example", "analyst"
    )
    assert oidc_user(users, {"email": "eve@clinic.example", "groups": ["other"]}, settings) is None
    assert oidc_user(users, {"sub": "no email"}, settings) is None
    assert oidc_user(users, {"email": "two words"}, settings) is None


# -- the throttle ------------------------------------------------------------------------------


def test_failed_sign_ins_are_slowed_per_user_and_per_client_up_to_a_bound() -> None:
    now = [1000.0]
    throttle = SignInThrottle(clock=lambda: now[0])
    for _ in range(FREE_FAILURES):
        assert throttle.wait_seconds("ann", "10.0.0.1") == 0
        throttle.failed("ann", "10.0.0.1")
    assert throttle.wait_seconds("ann", "10.0.0.1") == 1.0
    assert throttle.wait_seconds("ann", "10.0.0.2") == 1.0  # the name is slowed from any client
    assert throttle.wait_seconds("bob", "10.0.0.1") == 1.0  # and the client for any name
    assert throttle.wait_seconds("bob", "10.0.0.2") == 0
    for _ in range(20):
        throttle.failed("ann", "10.0.0.1")
    assert throttle.wait_seconds("ann", "10.0.0.1") == MAX_WAIT_SECONDS  # bounded
    now[0] += 30
    assert throttle.wait_seconds("ann", "10.0.0.1") == MAX_WAIT_SECONDS - 30
    throttle.succeeded("ann", "10.0.0.1")
    assert throttle.wait_seconds("ann", "10.0.0.1") == 0
    for _ in range(FREE_FAILURES + 2):
        throttle.failed("cat", None)
    now[0] += 16 * 60  # forgotten after a quarter of an hour
    assert throttle.wait_seconds("cat", None) == 0


# -- the command line ---------------------------------------------------------------------------


def _cli(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    command = [sys.executable, "-c", "from kpis.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_users_command_line(tmp_path: Path) -> None:
    (tmp_path / "clinic-kpis.toml").write_text(CONFIG + '\n[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    assert _cli("init", cwd=tmp_path).returncode == 0
    with Store.open(config=load_config(tmp_path / "clinic-kpis.toml")) as store, store.transaction() as cur:
        cur.execute("INSERT INTO locations (location_id, name, source) VALUES ('EAST', 'Eastside', 'test')")
    done = _cli("users", "add", "ann", "--role", "owner", cwd=tmp_path, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "user ann added: owner, signs in with a password\n"
    done = _cli("users", "add", "cat", "--role", "manager", "--location", "Eastside", cwd=tmp_path, stdin="tiny\n")
    assert (done.returncode, done.stderr) == (1, "error: the password must have at least 12 characters\n")
    done = _cli("users", "add", "cat", "--role", "manager", "--location", "Eastside", "--no-password", cwd=tmp_path)
    assert done.stdout == "user cat added: manager of EAST, signs in through the identity provider\n"
    assert _cli("users", "set-role", "cat", "--role", "viewer", "--location", "EAST", cwd=tmp_path).returncode == 0
    listed = json.loads(_cli("users", "list", "--format", "json", cwd=tmp_path).stdout)
    assert [(u["name"], u["role"], u["locations"], u["sign_in"]) for u in listed] == [
        ("ann", "owner", [], "password"),
        ("cat", "viewer", ["EAST"], "identity provider"),
    ]
    assert "argon2" not in _cli("users", "list", "--format", "csv", cwd=tmp_path).stdout
    done = _cli("users", "remove", "ann", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "ann is the last owner" in done.stderr
    assert _cli("users", "remove", "cat", cwd=tmp_path).stdout == "user cat removed\n"
    entries = AuditLog.beside(tmp_path / "w.duckdb").entries()
    assert entries["event"].tolist() == ["user_added", "user_added", "user_changed", "user_removed"]
    assert entries["user"].str.endswith("(command line)").all()
    assert [json.loads(d)["target"] for d in entries["detail"]] == ["ann", "cat", "cat", "cat"]
    assert PASSWORD not in (tmp_path / "w.duckdb.audit.jsonl").read_text(encoding="utf-8")
