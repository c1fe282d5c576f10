"""The `[report]` table of the config: who gets which report, and the paper size.

```toml
[report]
recipients = { practice = ["owner@example.org"], EAST = ["east.manager@example.org"] }
paper = "letter"   # letter | a4
```

A recipients key is a *scope*: `practice` is the whole-practice report, any other key a location
id whose manager gets that location's report. Location ids are checked against the warehouse
when a report is sent, since only the warehouse knows which locations exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpis.config import Config
from kpis.errors import ConfigError

PRACTICE = "practice"
PAPER_SIZES = ("letter", "a4")
_KEYS = ("recipients", "paper")


@dataclass(frozen=True)
class ReportSettings:
    recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scope -> addresses
    paper: str = "letter"


def report_settings(config: Config) -> ReportSettings:
    """The validated `[report]` table; a mistake names the config file and the key."""
    where = f"{config.path}: [report]" if config.path else "[report]"
    table: dict[str, Any] = config.report
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
    paper = str(table.get("paper", ReportSettings.paper)).lower()
    if paper not in PAPER_SIZES:
        raise ConfigError(f"{where} paper must be one of {', '.join(PAPER_SIZES)}, got {paper!r}")
    raw = table.get("recipients", {})
    if not isinstance(raw, dict):
        raise ConfigError(f'{where} recipients must be a table, e.g. {{ practice = ["owner@example.org"] }}')
    recipients = {}
    for scope, addresses in raw.items():
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, list):
            raise ConfigError(f"{where} recipients.{scope} must be a list of email addresses")
        recipients[str(scope)] = tuple(check_address(a, f"{where} recipients.{scope}") for a in addresses)
    return ReportSettings(recipients=recipients, paper=paper)


def check_address(address: Any, where: str) -> str:
    """A plain `name@domain` address (no display name): what SMTP's RCPT TO needs."""
    text = str(address).strip()
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain or any(c in text for c in " <>,;\"'\r\n"):
        raise ConfigError(f"{where}: {text!r} is not an email address like name@example.org")
    return text
