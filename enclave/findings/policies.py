"""When a finding may be published. Each rule is one small function; its docstring is the refusal reason."""
from __future__ import annotations

from collections.abc import Mapping

from enclave.airlock.facts import RequestFacts
from enclave.airlock.states import RequestState

# Files a public page can show safely: tables as CSV, charts as PNG. Everything else stays in
# the releases zone (a model summary or a notebook is for the project, not the public page).
PUBLISHABLE_SUFFIXES = (".csv", ".png")


def request_is_released(request: RequestFacts) -> bool:
    """Only a request that has been released can become a public finding."""
    return request.state == RequestState.released


def only_released_files(names: list[str], released: Mapping[str, str]) -> bool:
    """A finding may show only files the release recorded."""
    return bool(names) and all(n in released for n in names)


def only_publishable_types(names: list[str]) -> bool:
    """A finding may show only CSV tables and PNG charts."""
    return all(n.lower().endswith(PUBLISHABLE_SUFFIXES) for n in names)


def files_match_release(actual: Mapping[str, str], released: Mapping[str, str]) -> bool:
    """Every published file must have the checksum the release recorded (the releases zone is unchanged)."""
    return all(released.get(name) == sha for name, sha in actual.items())


def not_published_already(request_id: int, published: set[int]) -> bool:
    """A released request is published once; withdraw the finding first to publish it again."""
    return request_id not in published
