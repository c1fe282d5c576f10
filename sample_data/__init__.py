"""A simulated practice that writes real-format exports and its own ground-truth KPIs."""
