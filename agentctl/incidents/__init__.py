"""Incidents and their append-only journal, behind one store interface."""

from agentctl.incidents.models import Event, Incident, IncidentStatus, JournalEntry, Operator
from agentctl.incidents.store import IncidentStore, open_store

__all__ = [
    "Event",
    "Incident",
    "IncidentStatus",
    "IncidentStore",
    "JournalEntry",
    "Operator",
    "open_store",
]
