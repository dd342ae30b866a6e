"""When an action is allowed: one small rule per function, each raising ``NotAllowed``.

Rules here look at states, dates, votes and conditions; who may act lives in ``permissions``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from enclave.board.errors import NotAllowed
from enclave.board.requests import Cohort, Conditions
from enclave.board.states import ApplicationState, ProjectState, VoteChoice
from enclave.registry.models import Application, Project, Vote


@dataclass(frozen=True)
class Tally:
    """The counted votes of one application (recused members' votes are not counted)."""

    approve: int
    reject: int
    changes: int
    not_counted: int  # votes of members recused or no longer on the board
    quorum: int
    majority: float

    @property
    def counted(self) -> int:
        return self.approve + self.reject + self.changes

    @property
    def quorum_met(self) -> bool:
        return self.counted >= self.quorum

    @property
    def approve_share(self) -> float:
        return self.approve / self.counted if self.counted else 0.0

    @property
    def outcome(self) -> ApplicationState | None:
        """The decision the votes carry, or None without a quorum."""
        if not self.quorum_met:
            return None
        if self.approve_share > self.majority:
            return ApplicationState.approved
        if self.changes >= self.reject:
            return ApplicationState.changes_requested
        return ApplicationState.rejected


def count_votes(votes: Iterable[Vote], eligible_voter_ids: set[int], quorum: int, majority: float) -> Tally:
    """Count the votes of eligible members; the rest are kept on record but not counted."""
    counts = {choice: 0 for choice in VoteChoice}
    not_counted = 0
    for vote in votes:
        if vote.voter_id in eligible_voter_ids:
            counts[VoteChoice(vote.choice)] += 1
        else:
            not_counted += 1
    return Tally(counts[VoteChoice.approve], counts[VoteChoice.reject], counts[VoteChoice.changes], not_counted, quorum, majority)


def check_open_for_review(application: Application) -> None:
    """Review can be opened only on a submitted application."""
    if application.state != ApplicationState.submitted:
        raise NotAllowed(f"application {application.id} is {application.state}, not submitted")


def check_open_for_votes(application: Application) -> None:
    """Votes are taken only while an application is under review."""
    if application.state != ApplicationState.under_review:
        raise NotAllowed(f"application {application.id} is {application.state}, not under review")


def check_not_voted_yet(application: Application, voter_id: int) -> None:
    """A member votes once on an application."""
    if any(v.voter_id == voter_id for v in application.votes):
        raise NotAllowed(f"this member has already voted on application {application.id}")


def check_quorum(tally: Tally) -> None:
    """A decision needs at least the quorum of counted votes."""
    if not tally.quorum_met:
        raise NotAllowed(f"no quorum: {tally.counted} counted vote(s), {tally.quorum} needed")


def check_resubmittable(application: Application) -> None:
    """Only an application returned with requested changes can be resubmitted."""
    if application.state != ApplicationState.changes_requested:
        raise NotAllowed(f"application {application.id} is {application.state}; only one with changes requested can be resubmitted")


def check_no_open_application(project: Project, applications: Iterable[Application]) -> None:
    """A project has at most one application or amendment before the board at a time."""
    open_states = {ApplicationState.submitted, ApplicationState.under_review}
    for application in applications:
        if application.state in open_states:
            raise NotAllowed(f"project {project.slug} already has application {application.id} before the board")


def check_amendable(project: Project, today: dt.date) -> None:
    """Only an approved project that has not reached its end date can be amended."""
    if project.state != ProjectState.approved:
        raise NotAllowed(f"project {project.slug} is {project.state}; only an approved project can be amended")
    check_not_past_end(project, today)


def check_suspended(project: Project) -> None:
    """Only a suspended project can be reinstated (approval of a proposal is the board's vote)."""
    if project.state != ProjectState.suspended:
        raise NotAllowed(f"project {project.slug} is {project.state}, not suspended")


def check_not_past_end(project: Project, today: dt.date) -> None:
    """Nothing reopens a project after its approved end date."""
    approval = project.current_approval
    if approval is not None and today > approval.expires_on:
        raise NotAllowed(f"project {project.slug} passed its end date {approval.expires_on.isoformat()}")


def check_due_for_expiry(project: Project, today: dt.date) -> None:
    """A project expires only after its approved end date."""
    approval = project.current_approval
    if approval is None or today <= approval.expires_on:
        raise NotAllowed(f"project {project.slug} has not reached its end date")


def check_dates_sensible(start: dt.date, end: dt.date, today: dt.date) -> None:
    """An application must end in the future."""
    if end < today:
        raise NotAllowed(f"end_date {end.isoformat()} is already past")


def check_known_sources(requested: Iterable[str], registered: set[str]) -> None:
    """Only sources registered in the registry can be requested."""
    unknown = sorted(set(requested) - registered)
    if unknown:
        raise NotAllowed(f"unknown source(s) {unknown}; registered: {sorted(registered) or 'none'}")


def check_conditions_within_request(conditions: Conditions, application: Application) -> None:
    """The board may narrow what was asked for, never widen it."""
    reasons: list[str] = []
    if conditions.sources is not None:
        extra = set(conditions.sources) - set(application.sources)
        if extra:
            reasons.append(f"sources {sorted(extra)} were not requested")
    if conditions.variables is not None:
        for source, names in conditions.variables.items():
            extra = set(names) - set(application.variables.get(source, []))
            if extra:
                reasons.append(f"variables {sorted(extra)} of {source} were not requested")
    if conditions.k is not None and conditions.k < application.k:
        reasons.append(f"k {conditions.k} is weaker than the requested {application.k}")
    if conditions.dp_epsilon is not None and conditions.dp_epsilon > application.dp_epsilon:
        reasons.append(f"dp_epsilon {conditions.dp_epsilon} exceeds the requested {application.dp_epsilon}")
    if conditions.expires_on is not None and conditions.expires_on > application.end_date:
        reasons.append(f"expires_on {conditions.expires_on} is after the requested end {application.end_date}")
    if conditions.cohort is not None:
        reasons.extend(conditions.cohort.within(Cohort.model_validate(application.cohort)))
    if reasons:
        raise NotAllowed("conditions widen the application: " + "; ".join(reasons))
