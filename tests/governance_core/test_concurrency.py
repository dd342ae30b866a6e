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
_VOTE_THEN_APPEND = _PRELUDE + """
member, app_id, choice, appends = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
try:
    with session_scope(url) as session:
        service.vote(session, member, app_id, choice)
    outcome = "ok"
except GovernanceError as error:
    outcome = "refused: " + str(error)
for i in range(appends):
    with session_scope(url) as session:
        audit.append(session, actor=member, action="test.concurrent", details={"i": i})
print(json.dumps([member, outcome]))
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


def test_concurrent_votes_and_appends_none_lost_none_duplicated(registry, submit, tmp_path):
    app_id = submit()
    with session_scope(registry) as s:
        service.open_review(s, "board1", app_id)
        before = audit.verify(s).events
    # board1 votes from two processes at once while two other members vote at the same moment;
    # then every process appends audit events as fast as it can, all into one chain.
    ballots = [("board1", app_id, "approve", 10), ("board1", app_id, "reject", 10),
               ("board2", app_id, "approve", 10), ("board3", app_id, "reject", 10)]
    outcomes = _run(tmp_path, _VOTE_THEN_APPEND, registry, ballots)
    assert sorted(m for m, r in outcomes if r == "ok") == ["board1", "board2", "board3"]
    refused = [r for m, r in outcomes if r != "ok"]
    assert len(refused) == 1 and "already voted" in refused[0]
    with session_scope(registry, readonly=True) as s:
        votes = s.scalars(select(Vote).where(Vote.application_id == app_id)).all()
        assert sorted(v.voter.username for v in votes) == ["board1", "board2", "board3"]
        assert len(audit.show(s, audit.Filters(action="vote.cast"))) == 3
        result = audit.verify(s)
        assert result.ok, result.problems
        assert result.events == before + 3 + 40
        assert [e.seq for e in audit.show(s)] == list(range(1, before + 44))
