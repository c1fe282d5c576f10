"""Errors of the report: a month or scope that cannot be reported, and mail that was not delivered."""

from kpis.errors import ClinicKpisError


class ReportError(ClinicKpisError):
    """The report cannot be built as asked (unknown location, a month without data, ...)."""


class DeliveryError(ClinicKpisError):
    """The report could not be emailed. The message says what was and was not sent, never a secret."""
