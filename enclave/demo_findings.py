"""``make demo``'s findings: the city's four questions answered end to end on the demo projects.

For each use case the template notebook runs against the project's extract as its researcher
would (a real kernel, the SDC-aware session), the outputs that do not fail the gate go into a
release request, two independent demo reviewers approve it, it is released and published to
the public catalogue. Idempotent: a use case whose finding exists is skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from enclave.findings.spec import FindingSpec
from enclave.settings import Settings, get_settings

console = Console(stderr=True)
TEMPLATES = Path(__file__).resolve().parents[1] / "notebooks" / "templates"
REVIEWERS = ("rev1", "rev2")


@dataclass(frozen=True)
class UseCase:
    project: str
    researcher: str
    template: str
    spec: dict = field(default_factory=dict)


USE_CASES = (
    UseCase("homeless-students", "alice", "01_homeless_students_by_school.ipynb", dict(
        title="Students experiencing homelessness, by school",
        question="How many students in each school experience homelessness or housing insecurity, and how does that differ by sex, race/ethnicity and neighbourhood?",
        use_case="homeless students", domains=["education", "homelessness", "child welfare"],
        summary="Students identified as homeless (McKinney-Vento) per school, with rates and 95% intervals by group, and the share who were ever in foster care.",
        comparisons=["gender", "race/ethnicity", "neighbourhood", "foster youth"])),
    UseCase("young-parents", "bob", "03_young_parents_and_early_childhood.ipynb", dict(
        title="Children of young parents and their early-childhood services",
        question="Do children born to parents aged under 25 receive pre-K, well-child, dental and vision care in their first five years as often as other children?",
        use_case="young parents", domains=["health and vital statistics", "education", "assisted housing"],
        summary="Shares of children using each service before age five, for children of young parents and others, and pre-K by race/ethnicity and neighbourhood.",
        comparisons=["young parent", "race/ethnicity", "neighbourhood"])),
    UseCase("crossover-youth", "carol", "02_foster_care_and_juvenile_services.ipynb", dict(
        title="Crossover youth between foster care and juvenile services",
        question="How many children and youth aged 10-17 are referred to juvenile services while in out-of-home care or within a year of leaving it, and in which order do they meet the two systems?",
        use_case="crossover youth", domains=["child welfare", "juvenile justice"],
        summary="Dually involved youth and the order of first contact, by sex and race/ethnicity.",
        comparisons=["gender", "race/ethnicity"])),
    UseCase("opportunity-youth", "alice", "04_opportunity_youth.ipynb", dict(
        title="Opportunity youth: aged 16-24, neither in school nor working",
        question="How many young people aged 16-24 had no school enrolment, no wages and no workforce programme in the past year, and which histories go with it?",
        use_case="opportunity youth", domains=["education", "employment and earnings", "workforce development"],
        summary="The share of young people disconnected from school and work, by sex, race/ethnicity and neighbourhood, and by foster-care, juvenile-justice and homeless-services history.",
        comparisons=["gender", "race/ethnicity", "neighbourhood", "foster youth", "juvenile justice history"])),
)


def run_template(settings: Settings, case: UseCase) -> Path:
    """Execute the use case's template in a real kernel against the project's extract; returns the outputs folder."""
    import nbformat
    from nbclient import NotebookClient

    outputs = settings.workspaces / case.project / case.researcher / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    extract = (settings.extracts / case.project / "current").resolve()
    notebook = nbformat.read(TEMPLATES / case.template, as_version=4)
    # The kernel alone gets the workspace settings: this process's environment is left as it was.
    env = dict(os.environ, ENCLAVE_WORKSPACE_DATA=str(extract), ENCLAVE_WORKSPACE_OUTPUTS=str(outputs))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(outputs.parent)}}).execute(env=env)
    return outputs


def _publishable(outputs: Path) -> dict[str, str]:
    """Every output file but evidence, with a context line for the reviewers."""
    files = {}
    for path in sorted(outputs.iterdir()):
        if path.is_file() and not path.name.endswith(".evidence.json") and not path.name.startswith("."):
            files[path.name] = f"made by the template {path.name.rsplit('.', 1)[0]} on the demo extract"
    return files


def answer(settings: Settings, case: UseCase) -> str | None:
    """Run, request, review, release and publish one use case; returns the finding's slug."""
    from enclave.airlock import publishing, requests, reviews, views
    from enclave.findings import publish as findings

    if any(r["project"]["slug"] == case.project for r in findings.published().values()):
        return None
    outputs = run_template(settings, case)
    files = _publishable(outputs)
    rid = requests.create(case.researcher, case.project, files, case.spec["title"])
    requests.submit(case.researcher, rid)
    failed = [f["name"] for f in views.describe(REVIEWERS[0], rid)["files"] if f["verdict"] == "fail"]
    from enclave.cohorts.report import derived_from

    # Rates and charts computed from a counts table that failed would carry what it hides.
    for derived, source in derived_from(outputs).items():
        if derived in files and source in failed and derived not in failed:
            failed.append(derived)
    if failed:
        # The demo publishes what passes; a failing output stays in the airlock for a person to look at.
        reviews.review(REVIEWERS[0], rid, "return", comments="outputs that fail the gate: " + ", ".join(failed))
        for name in failed:
            requests.remove_output(case.researcher, rid, name)
        requests.submit(case.researcher, rid)
    for reviewer in REVIEWERS:
        reviews.review(reviewer, rid, "approve", comments="demo review")
    publishing.release(REVIEWERS[0], rid)
    released = {n for n in files if n not in failed}
    shown = {n: n.rsplit(".", 1)[0].replace("_", " ") for n in sorted(released) if n.endswith((".csv", ".png"))}
    record = findings.publish(case.researcher, rid, FindingSpec(**case.spec, cohort=_cohort_text(outputs), files=shown))
    return record["slug"]


def _cohort_text(outputs: Path) -> str:
    texts = [p.read_text(encoding="utf-8").strip() for p in sorted(outputs.glob("*_definition.txt"))]
    return "\n\n".join(texts) or "See the template notebook."


USE_CASES_FILE = Path(__file__).resolve().parent / "board" / "demo_use_cases.yaml"


def provision_use_cases(settings: Settings) -> None:
    """The board approves the four use-case projects (idempotent) and their extracts are built."""
    from enclave.board import demo as board_demo
    from enclave.provisioning import provision
    from enclave.registry.base import session_scope

    with session_scope(settings.registry_url) as session:
        board_demo.approve_demo_projects(session, file=USE_CASES_FILE)
    for case in USE_CASES:
        try:
            provision(case.project, actor="admin", url=settings.registry_url)
        except Exception as refused:  # the demo goes on; the extract's reason is printed
            console.print(f"[yellow]extract {case.project} not built: {refused}[/]")


def publish_all(settings: Settings | None = None) -> list[str]:
    """Approve, build, answer and publish every use case; returns the slugs published now."""
    settings = settings or get_settings()
    provision_use_cases(settings)
    slugs = []
    for case in USE_CASES:
        if not (settings.extracts / case.project / "current" / "manifest.json").exists():
            console.print(f"[yellow]no extract for {case.project}: its finding is not published[/]")
            continue
        try:
            slug = answer(settings, case)
        except Exception as failed:  # one use case failing leaves the others and the demo running
            console.print(f"[yellow]finding {case.project} not published: {type(failed).__name__}: {failed}[/]")
            continue
        if slug:
            console.print(f"published finding {slug}")
            slugs.append(slug)
    return slugs
