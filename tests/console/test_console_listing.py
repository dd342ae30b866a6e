"""The batched request facts behind the console's listings equal the one-request facts the rules
were written against (same permissions, same queue), on a registry with requests in several states."""
from __future__ import annotations


def test_batched_facts_equal_one_by_one(_world_template):
    from sqlalchemy import select

    from enclave.airlock import loading
    from enclave.registry.base import dispose_engines, session_scope
    from enclave.registry.models import ReleaseRequest

    _, built = _world_template
    try:
        with session_scope(built.url, readonly=True) as session:
            reqs = session.scalars(select(ReleaseRequest)).all()
            assert reqs
            many = loading.facts_many(session, reqs)
            for req in reqs:
                one = loading.facts(session, req)
                assert many[req.id] == one and many[req.id].extra == one.extra
    finally:
        dispose_engines()
