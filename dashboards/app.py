"""The dashboard's router: page set-up, sign-in, the shared sidebar, and the page list. No page logic here.

Served by `clinic-kpis dashboard` (which passes --db/--config through the environment), or by
`streamlit run dashboards/app.py` with CLINIC_KPIS_DB / CLINIC_KPIS_CONFIG set.

Sign-in guards every page here, before any page (or the sidebar) runs: someone not signed in
sees the sign-in form and nothing else, whatever page or filters the address names. A page
added to `pages` is covered without a line of its own, and every page reads the warehouse
through the signed-in person's scope (dashboards/auth.py, kpis/scope.py).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import auth, data
from dashboards.components import PageContext
from dashboards.filters import sidebar
from kpis.errors import ClinicKpisError

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="clinic-kpis", page_icon=":material/monitoring:", layout="wide")

pages = {
    "KPIs": [
        st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(VIEWS / "alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page(VIEWS / "access.py", title="Access & scheduling", icon=":material/event:"),
        st.Page(VIEWS / "revenue_cycle.py", title="Revenue cycle", icon=":material/payments:"),
        st.Page(VIEWS / "phones.py", title="Phones", icon=":material/call:"),
        st.Page(VIEWS / "visit_flow.py", title="Visit flow", icon=":material/timer:"),
        st.Page(VIEWS / "referrals_portal.py", title="Referrals & portal", icon=":material/forward_to_inbox:"),
        st.Page(VIEWS / "improvement.py", title="Improvement", icon=":material/published_with_changes:"),
    ],
    "About the numbers": [
        st.Page(VIEWS / "data_sources.py", title="Data", icon=":material/database:"),
        st.Page(VIEWS / "definitions.py", title="Definitions", icon=":material/menu_book:"),
    ],
}
owner_pages = {"Administration": [st.Page(VIEWS / "audit.py", title="Audit log", icon=":material/policy:")]}


def main() -> None:
    """One run of the app. A function, so each early end is a `return`: the app also runs with no
    Streamlit session (a multiprocessing child re-running it as its main module), where st.stop()
    does not stop."""
    try:
        base = data.source()
        access = auth.current_access(base)
    except ClinicKpisError as exc:  # no warehouse, a bad config, a busy file: one sentence, no traceback
        st.error(str(exc), icon=":material/error:")
        return

    if access is None:  # not signed in: the form, no sidebar, no page, no number
        st.navigation({**pages, **owner_pages}, position="hidden")
        auth.sign_in_form(base)
        return

    page = st.navigation({**pages, **owner_pages} if access.is_owner else pages)

    try:
        src = data.source(access.scope)
        filters = sidebar(src)
        st.session_state["page_context"] = PageContext(src, filters, data.catalog(src), access)
    except ClinicKpisError as exc:
        st.error(str(exc), icon=":material/error:")
        return

    auth.account_box(base, access)
    auth.record_view(base, access, page.url_path or "overview", filters.audited())
    page.run()
    data.freeze_warm_objects()


main()
