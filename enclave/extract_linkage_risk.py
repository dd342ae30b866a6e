"""Moved to ``enclave.extract.joined`` (the joined-tables stage of the extract build); kept so
existing imports keep working."""
from enclave.extract.joined import MISSING, measured_person_k, measured_table_people_k, people, protect, tokens, verify

__all__ = ["MISSING", "measured_person_k", "measured_table_people_k", "people", "protect", "tokens", "verify"]
