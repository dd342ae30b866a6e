"""Per-project pseudonyms: unjoinable across projects, stable within one, secret kept secret."""
from __future__ import annotations

import hmac
import logging
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from linkage.pseudonyms import PseudonymError, destroy_project_secret, has_project_secret, pseudonymise

PEOPLE = [f"P{i:020x}" for i in range(500)]


def secret_of(store, project) -> bytes:
    """Read a secret the way only the vault can: straight from the key file (the test plays the vault)."""
    return bytes.fromhex((store / f"{project}.key").read_text().strip())


def test_same_person_differs_across_projects_and_no_join_is_possible(tmp_path):
    a = pseudonymise(PEOPLE, "proj-a", tmp_path)
    b = pseudonymise(PEOPLE, "proj-b", tmp_path)
    assert all(x != y for x, y in zip(a, b))
    assert not set(a) & set(b)  # an inner join of the two extracts on pseudonym is empty
    assert len(set(a)) == len(PEOPLE)


def test_stable_across_extract_versions_and_processes(tmp_path):
    first = pseudonymise(PEOPLE, "proj-a", tmp_path)
    again = pseudonymise(list(reversed(PEOPLE)), "proj-a", tmp_path)
    assert again == list(reversed(first))
    script = textwrap.dedent(
        """
        import sys
        from linkage.pseudonyms import pseudonymise
        print(",".join(pseudonymise(sys.argv[2].split(","), "proj-a", sys.argv[1])))
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path), ",".join(PEOPLE[:5])], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(",") == first[:5]


def test_equals_the_standard_hmac_sha256_of_the_person_key(tmp_path):
    got = pseudonymise(PEOPLE[:50], "proj-a", tmp_path)
    secret = secret_of(tmp_path, "proj-a")
    assert len(secret) == 32
    expected = [hmac.new(secret, k.encode(), "sha256").hexdigest()[:24] for k in PEOPLE[:50]]
    assert got == expected
    # And it is keyed: a plain hash of the key, or HMAC under another key, does not give it.
    assert got[0] != hmac.new(b"", PEOPLE[0].encode(), "sha256").hexdigest()[:24]


def test_key_store_permissions_and_refusal_of_loose_ones(tmp_path):
    store = tmp_path / "keys"
    pseudonymise(PEOPLE[:3], "proj-a", store)
    assert stat.S_IMODE((store / "proj-a.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    os.chmod(store / "proj-a.key", 0o644)
    with pytest.raises(PseudonymError, match="0600"):
        pseudonymise(PEOPLE[:3], "proj-a", store)
    os.chmod(store / "proj-a.key", 0o600)
    os.chmod(store, 0o755)
    with pytest.raises(PseudonymError, match="group or others"):
        pseudonymise(PEOPLE[:3], "proj-a", store)


def test_secret_never_appears_in_logs_errors_or_reprs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    result = pseudonymise(PEOPLE[:10], "proj-a", tmp_path)
    secret = secret_of(tmp_path, "proj-a")
    texts = [caplog.text, repr(result), str(result)]
    for bad in ([PEOPLE[0], None], [PEOPLE[0], ""], [PEOPLE[0], 42]):
        with pytest.raises(PseudonymError) as err:
            pseudonymise(bad, "proj-a", tmp_path)
        texts += [str(err.value), repr(err.value), "".join(map(str, err.traceback))]
    (tmp_path / "proj-b.key").write_text("zz" + secret.hex()[2:] + "\n")
    os.chmod(tmp_path / "proj-b.key", 0o600)
    with pytest.raises(PseudonymError, match="malformed") as err:
        pseudonymise(PEOPLE[:1], "proj-b", tmp_path)
    texts += [str(err.value), caplog.text]
    import linkage.pseudonyms as module

    texts += [repr(vars(module))]
    for text in texts:
        assert secret.hex() not in text and secret.hex()[2:] not in text
        assert secret.hex().upper() not in text


def test_project_ids_cannot_escape_the_key_store(tmp_path):
    for bad in ("../escape", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(PseudonymError, match="project_id"):
            pseudonymise(PEOPLE[:1], bad, tmp_path / "keys")
    assert not (tmp_path / "escape.key").exists()


def test_concurrent_first_use_agrees_on_one_secret(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from linkage.pseudonyms import pseudonymise
        print(pseudonymise(["P1", "P2"], "proj-race", sys.argv[1])[0])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(outs) == 1 and pseudonymise(["P1"], "proj-race", tmp_path)[0] in outs
    assert [p.name for p in tmp_path.iterdir()] == ["proj-race.key"]


def test_destroying_a_project_secret_makes_old_pseudonyms_unrecoverable(tmp_path):
    before = pseudonymise(PEOPLE[:20], "proj-a", tmp_path)
    assert destroy_project_secret("proj-a", tmp_path) and not has_project_secret("proj-a", tmp_path)
    after = pseudonymise(PEOPLE[:20], "proj-a", tmp_path)
    assert not set(before) & set(after)
