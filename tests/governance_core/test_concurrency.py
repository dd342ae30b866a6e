"""Several processes changing the registry at the same moment: nothing lost, nothing duplicated."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from enclave import audit
from enclave.board import service
from enclave.registry.base import session_scope
from enclave.registry.models import Vote

pytestmark = pytest.mark.timeout(120)


# Workers are separate interpreters (not forks of pytest): each imports the enclave afresh, waits
# for a start file so that all of them hit the registry at the same moment, then acts.
_PRELUDE = """
import json, os, sys, time
url, go = sys.argv[1], sys.argv[2]
from enclave.registry.base import session_scope
from enclave.board import service
from enclave.board.errors import GovernanceError
from enclave import audit
open(go + "-ready-" + str(os.getpid()), "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
"""
_VOTE = _PRELUDE + """
member, app_id, choice = sys.argv[3], int(sys.argv[4]), sys.argv[5]
try:
    with session_scope(url) as session:
        service.vote(session, member, app_id, choice)
    print(json.dumps([member, "ok"]))
except GovernanceError as error:
    print(json.dumps([member, "refused: " + str(error)]))
"""
_APPEND = _PRELUDE + """
worker, count = sys.argv[3], int(sys.argv[4])
for i in range(count):
    with session_scope(url) as session:
        audit.append(session, actor="worker" + worker, action="test.concurrent", details={"i": i})
print(json.dumps([worker, "ok"]))
"""


def _run(tmp_path, script, url, argument_lists):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(go), *map(str, args)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in argument_lists]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go-ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)  # every interpreter has imported and waits: now start them together
    go.touch()
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        outcomes.append(tuple(json.loads(out.strip().splitlines()[-1])))
    return outcomes


def test_concurrent_votes_none_lost_none_duplicated(registry, submit, tmp_path):
    app_id = submit()
    with session_scope(registry) as s:
        service.open_review(s, "board1", app_id)
    # board1 votes from two processes at once; three other members vote at the same moment.
    ballots = [("board1", app_id, "approve"), ("board1", app_id, "reject"), ("board2", app_id, "approve"),
               ("board3", app_id, "approve"), ("board4", app_id, "reject")]
    outcomes = _run(tmp_path, _VOTE, registry, ballots)
    assert sorted(m for m, r in outcomes if r == "ok") == ["board1", "board2", "board3", "board4"]
    refused = [r for m, r in outcomes if r != "ok"]
    assert len(refused) == 1 and "already voted" in refused[0]
    with session_scope(registry, readonly=True) as s:
        votes = s.scalars(select(Vote).where(Vote.application_id == app_id)).all()
        assert sorted(v.voter.username for v in votes) == ["board1", "board2", "board3", "board4"]
        assert len(audit.show(s, audit.Filters(action="vote.cast"))) == 4
        assert audit.verify(s).ok


def test_concurrent_audit_appends_keep_one_chain(registry, tmp_path):
    with session_scope(registry, readonly=True) as s:
        before = audit.verify(s).events
    _run(tmp_path, _APPEND, registry, [(w, 15) for w in range(4)])
    with session_scope(registry, readonly=True) as s:
        result = audit.verify(s)
        assert result.ok, result.problems
        assert result.events == before + 60
        seqs = [e.seq for e in audit.show(s)]
    assert seqs == list(range(1, before + 61))
