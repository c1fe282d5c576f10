"""The Streamlit dashboard for practice managers; reads the warehouse through the `kpis` API only."""
