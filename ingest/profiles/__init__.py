"""CSV profiles shipped with clinic-kpis (TOML data, read with importlib.resources)."""
