"""Sign-in for the dashboard: who is looking, and so what they may see (their `kpis.scope.Scope`).

As soon as the warehouse has one user (`clinic-kpis users add`), every page asks to sign in:
with a name and password (checked against the argon2id hash in the warehouse, on submit only),
or through the practice's identity provider (OpenID Connect via Streamlit's `st.login`, set up
in `.streamlit/secrets.toml`; `[access] oidc_claim` names the user). The router (`app.py`) calls
`current_access` before it draws any page, so a page added later is covered without a line of
its own.

A sign-in lasts `[access] session_minutes` (from the password, or from the identity provider's
sign-in), then the page asks again. A user removed or given another role is signed out, or sees
their new scope, on their next click. Repeated failed sign-ins are slowed (kpis.throttle), and
every sign-in, failure and sign-out is written to the audit log (kpis.audit).

Without users, sign-in is off: the dashboard shows the whole practice with small cells
withheld, as it always did, to whoever reaches it (loopback only unless `--no-auth` says
otherwise: dashboards/cli.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboards import data
from kpis.access import access_settings, oidc_user
from kpis.scope import Scope
from kpis.throttle import SignInThrottle
from kpis.users import User, verify_password

SESSION_KEY = "signed_in"
OPEN = Scope(label="everyone (sign-in is off)")  # no users: the whole practice, small cells withheld


@dataclass(frozen=True)
class Access:
    """Who is looking (None: sign-in is off) and their scope."""

    user: str | None
    role: str | None
    scope: Scope
    method: str | None = None  # password | oidc

    @property
    def is_owner(self) -> bool:
        """The owner, or anyone while sign-in is off (the person at this machine)."""
        return self.user is None or self.role == "owner"

    @property
    def acts(self) -> bool:
        """Whether they may act on what they see (acknowledge an alert, record a change): everyone
        but a viewer, whose role is to read (kpis.users)."""
        return self.role != "viewer"

    @property
    def sign_in_on(self) -> bool:
        return self.user is not None


@st.cache_resource
def _throttle() -> SignInThrottle:
    """One throttle for the whole dashboard process (every session shares it)."""
    return SignInThrottle()


def client() -> str | None:
    """The browser's address as the server sees it (None on this machine, or without a browser)."""
    address = st.context.ip_address
    return address if isinstance(address, str) else None


def oidc_configured() -> bool:
    """Whether Streamlit's secrets name an identity provider (an [auth] section)."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # a broken secrets file: Streamlit reports it on st.login
        return False


def current_access(src: data.Source) -> Access | None:
    """Who is signed in now, or None when someone must sign in first (nothing drawn yet)."""
    users = data.users(src)
    if not users:
        st.session_state.pop(SESSION_KEY, None)
        return Access(None, None, OPEN)
    settings = access_settings(data.config(src))
    session = st.session_state.get(SESSION_KEY)
    if session is None and oidc_configured() and st.user.is_logged_in:
        session = _oidc_session(src, settings)
    if session is None:
        return None
    user = _still_allowed(src, session, users)
    if user is None:
        _sign_out(src, session, "the user was removed")
        return None
    if time.time() - session["since"] > settings.session_minutes * 60:
        _sign_out(src, session, "the session expired")
        st.session_state["signed_out_because"] = "Your session expired: please sign in again."
        if session["method"] == "oidc":
            st.logout()  # else the provider's cookie would sign them straight in again
        return None
    return Access(user.name, user.role, user.scope(data.config(src)), session["method"])


def _still_allowed(src: data.Source, session: dict[str, Any], users: dict[str, User]) -> User | None:
    """The user as the warehouse has them now (a new role shows at once), or None if no longer allowed."""
    if session["method"] == "oidc":
        return oidc_user(users, _claims(), access_settings(data.config(src)))
    return users.get(session["user"])


def _claims() -> dict[str, Any]:
    return {key: st.user[key] for key in st.user.to_dict()}


def _oidc_session(src: data.Source, settings: Any) -> dict[str, Any] | None:
    """A session for the identity provider's user (once per Streamlit session), or None if not allowed."""
    claims = _claims()
    user = oidc_user(data.users(src), claims, settings)
    name = str(claims.get(settings.oidc_claim) or claims.get("sub") or "?")
    log = data.audit_log(src)
    if user is None:
        if not st.session_state.get("oidc_refused"):
            log.record("sign_in", name, outcome="failure", client=client(), method="oidc", reason="not a user here")
            st.session_state["oidc_refused"] = name
        return None
    # the session runs from the sign-in at the provider (its cookie outlives many browser sessions)
    since = next((claims[k] for k in ("auth_time", "iat") if isinstance(claims.get(k), int | float)), time.time())
    session = {"user": user.name, "method": "oidc", "since": float(since)}
    st.session_state[SESSION_KEY] = session
    log.record("sign_in", user.name, role=user.role, outcome="success", client=client(), method="oidc")
    return session


def _sign_out(src: data.Source, session: dict[str, Any], reason: str) -> None:
    st.session_state.pop(SESSION_KEY, None)
    data.audit_log(src).record("sign_out", session["user"], client=client(), reason=reason)


def sign_in_form(src: data.Source) -> None:
    """The only thing a visitor who is not signed in sees: the form, and no number."""
    st.title("Sign in")
    st.caption(f"{data.config(src).practice_name}: clinic-kpis dashboard")
    # the filters in the address (a bookmark, a link from a colleague) apply once signed in, within the scope
    st.session_state.setdefault("asked_params", {k: st.query_params.get_all(k) for k in st.query_params})
    if why := st.session_state.pop("signed_out_because", None):
        st.info(why)
    if refused := st.session_state.get("oidc_refused"):
        st.error(f"{refused} may not use this dashboard: ask the practice's owner to add you.")
        if st.button("Sign out of the identity provider"):
            st.session_state.pop("oidc_refused", None)
            st.logout()
        return
    with st.form("sign-in", enter_to_submit=True):
        name = st.text_input("Name", key="sign_in_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="sign_in_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        _check_password(src, name, password)
    if oidc_configured():
        st.divider()
        if st.button("Sign in with your organization's account", key="oidc"):
            st.login()


def _check_password(src: data.Source, name: str, password: str) -> None:
    """Check a submitted name and password (argon2, so only here), slowed after repeated failures."""
    who, where = name.strip().lower(), client()
    log = data.audit_log(src)
    wait = _throttle().wait_seconds(who, where)
    if wait > 0:
        log.record("sign_in", who, outcome="failure", client=where, method="password", reason="slowed down")
        st.error(f"Too many failed sign-ins: try again in {wait:.0f} seconds.")
        return
    user = data.users(src).get(who)
    if not verify_password(user, password):
        _throttle().failed(who, where)
        log.record("sign_in", who, outcome="failure", client=where, method="password", reason="wrong name or password")
        st.error("Wrong name or password.")
        return
    _throttle().succeeded(who, where)
    st.session_state[SESSION_KEY] = {"user": user.name, "method": "password", "since": time.time()}
    log.record("sign_in", user.name, role=user.role, outcome="success", client=where, method="password")
    st.query_params.from_dict(st.session_state.pop("asked_params", {}))
    st.rerun()


def account_box(src: data.Source, access: Access) -> None:
    """In the sidebar: who is signed in, as what, and the sign-out button."""
    if not access.sign_in_on:
        return
    st.sidebar.caption(f"Signed in as **{access.user}**: {access.scope.label.split('(', 1)[-1].rstrip(')')}")
    if st.sidebar.button("Sign out", key="sign-out"):
        session = st.session_state.get(SESSION_KEY) or {"user": access.user}
        _sign_out(src, session, "signed out")
        if access.method == "oidc":
            st.logout()
        st.rerun()


def record_view(src: data.Source, access: Access, page: str, filters: dict[str, Any]) -> None:
    """Audit a page view with its filters, once per change of page or filters in a session."""
    key = (page, repr(sorted(filters.items())))
    if st.session_state.get("last_view") == key:
        return
    st.session_state["last_view"] = key
    data.audit_log(src).record(
        "view", access.user, role=access.role, client=client(), page=page, filters=filters,
        scope=access.scope.locations_text(),
    )  # fmt: skip


def record(src: data.Source, access: Access, event: str, **fields: Any) -> None:
    """Audit a drill-down or a download by the person signed in."""
    data.audit_log(src).record(
        event, access.user, role=access.role, client=client(), scope=access.scope.locations_text(), **fields
    )
