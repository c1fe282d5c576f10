"""Definitions: every KPI's definition, formula, the variant in use, its target and the source it follows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.components import page_context
from kpis.formatting import UNIT_LABELS, target_text

ctx = page_context()
st.title("Definitions")
st.caption("How each number is computed. The variant in use and the targets follow this practice's config.")
specs = list(ctx.specs.values())
# The variant in use is what compute reports in its `definition` column (config options applied).
variants = data.compute(ctx.src, tuple(ctx.specs), ctx.filters.month, ctx.filters.month, "month")
variant = variants.drop_duplicates("kpi_id").set_index("kpi_id")["definition"]

domains = {s.domain: s.domain_title for s in specs}  # catalog order
for domain, title in domains.items():
    st.subheader(title)
    for spec in (s for s in specs if s.domain == domain):
        target = target_text(spec) or "No target"
        source = f" ({spec.target_source})" if spec.target_source else ""
        st.markdown(
            f"**{spec.title}** — {spec.definition}  \n"
            f"Formula: {spec.formula} · unit: {UNIT_LABELS[spec.unit]}, {spec.better} is better  \n"
            f"Variant in use: `{variant.get(spec.id, spec.id)}` · {target}{source}  \n"
            f"Follows: {spec.authority} · broken down by: {', '.join(spec.dimensions)}"
        )

with st.expander("All definitions as one table"):
    st.dataframe(
        pd.DataFrame(
            {
                "id": [s.id for s in specs],
                "KPI": [s.title for s in specs],
                "area": [s.domain_title for s in specs],
                "definition": [s.definition for s in specs],
                "formula": [s.formula for s in specs],
                "variant in use": [variant.get(s.id, s.id) for s in specs],
                "unit": [UNIT_LABELS[s.unit] for s in specs],
                "better": [s.better for s in specs],
                "target": [target_text(s) for s in specs],
                "target source": [s.target_source for s in specs],
                "authority": [s.authority for s in specs],
                "breakdowns": [", ".join(s.dimensions) for s in specs],
            }
        ),
        hide_index=True,
    )
