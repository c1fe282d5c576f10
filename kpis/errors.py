"""Error types that carry a message meant for a person, not a traceback.

The CLI catches `ClinicKpisError` and prints only its message (exit code 1), so every error a
user can cause by what they type or feed in is raised as one of these, with the file, position
and field named in the message.
"""


class ClinicKpisError(Exception):
    """A user-facing error: bad input, bad config, or a warehouse that cannot be used."""


class ConfigError(ClinicKpisError):
    """The configuration file or an override is invalid."""


class WarehouseError(ClinicKpisError):
    """The warehouse file cannot be opened or used as asked."""


class SchemaVersionError(WarehouseError):
    """The warehouse schema is newer than this code, or older and cannot be migrated here."""
