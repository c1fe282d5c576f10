"""Definitions: every KPI's definition, formula, the variant in use, its target and the source it follows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.components import page_context
from dashboards.formatting import UNIT_LABELS, value_text

DOMAIN_TITLES = {
    "access": "Access & scheduling",
    "visit_flow": "Visit flow",
    "phones": "Phones",
    "revenue_cycle": "Revenue cycle",
    "referrals_portal": "Referrals & portal",
}

ctx = page_context()
st.title("Definitions")
st.caption("How each number is computed. Variants and targets follow this practice's config.")
specs = list(ctx.specs.values())
# The variant in use is what compute reports in its `definition` column (config options applied).
variants = data.compute(ctx.src, tuple(ctx.specs), ctx.filters.month, ctx.filters.month, "month")
variant = variants.drop_duplicates("kpi_id").set_index("kpi_id")["definition"]
table = pd.DataFrame(
    {
        "area": [DOMAIN_TITLES[s.domain] for s in specs],
        "KPI": [s.title for s in specs],
        "definition": [s.definition for s in specs],
        "formula": [s.formula for s in specs],
        "variant in use": [variant.get(s.id, s.id) for s in specs],
        "unit": [UNIT_LABELS[s.unit] for s in specs],
        "better": [s.better for s in specs],
        "target": [value_text(s.target, s) if s.target is not None else "" for s in specs],
        "red flag": [value_text(s.red, s) if s.red is not None else "" for s in specs],
        "target source": [s.target_source for s in specs],
        "authority": [s.authority for s in specs],
        "breakdowns": [", ".join(s.dimensions) for s in specs],
        "id": [s.id for s in specs],
    }
)
st.dataframe(table, hide_index=True)
