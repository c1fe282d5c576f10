"""The monthly owner report (Jinja2 HTML + PDF) and its delivery by email."""
