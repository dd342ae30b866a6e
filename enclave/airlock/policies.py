"""When a release request may move. Each rule is one small function; its docstring is the refusal reason."""
from __future__ import annotations

from enclave.airlock.facts import OutputFacts, RequestFacts, ReviewFacts
from enclave.airlock.states import EDITABLE, UNDER_REVIEW, RequestState


def project_is_active(request: RequestFacts) -> bool:
    """The project must be approved and not suspended, revoked or expired."""
    return request.project_active


def request_is_editable(request: RequestFacts) -> bool:
    """The request can only be changed while it is a draft or has been returned."""
    return request.state in EDITABLE


def request_has_outputs(request: RequestFacts) -> bool:
    """A request needs at least one output before it is submitted."""
    return len(request.outputs) > 0


def failure_is_exceptionable(failed_checks: frozenset[str], exceptionable_checks: frozenset[str]) -> bool:
    """A fail can be lifted only when every check it failed is one the rulebook marks exceptionable."""
    return bool(failed_checks) and failed_checks <= exceptionable_checks


def failed_output_is_exceptionable(output: OutputFacts) -> bool:
    """A failed output can be lifted only when the rulebook marks its failure exceptionable (never microdata or identifiers)."""
    return output.verdict != "fail" or output.exceptionable


def no_output_is_blocked(request: RequestFacts) -> bool:
    """No output may have a fail that an exception cannot lift (microdata, identifiers, file type, tampering)."""
    return all(failed_output_is_exceptionable(o) for o in request.outputs)


def failed_outputs_have_exceptions(request: RequestFacts) -> bool:
    """Every output the gate failed needs the researcher's exception text."""
    return all(o.exception_text for o in request.outputs if o.verdict == "fail")


def request_is_submitted(request: RequestFacts) -> bool:
    """The gate runs on a submitted request only."""
    return request.state == RequestState.submitted


def request_is_under_review(request: RequestFacts) -> bool:
    """Reviews are accepted only after the gate has checked the request and before a decision."""
    return request.state in UNDER_REVIEW


def reviewer_has_not_reviewed(request: RequestFacts, reviewer: str) -> bool:
    """A reviewer reviews a request once per submission."""
    return all(r.reviewer != reviewer for r in request.reviews)


def approval_overrides_every_failed_output(request: RequestFacts, review: ReviewFacts) -> bool:
    """An approving review must explicitly override every failed output, and only exceptionable outputs with an exception."""
    if review.decision != "approve":
        return True
    failed = {o.name for o in request.outputs if o.verdict == "fail"}
    excused = {o.name for o in request.outputs
               if o.verdict == "fail" and o.exception_text and failed_output_is_exceptionable(o)}
    return failed <= review.overridden and review.overridden & failed <= excused


def every_output_was_checked(request: RequestFacts) -> bool:
    """Every output needs a gate verdict before a decision."""
    return all(o.verdict in {"pass", "fail", "review"} for o in request.outputs)


def enough_independent_approvals(request: RequestFacts, required: int) -> bool:
    """The number of independent approving reviews set by reviewers_required must be reached."""
    approvers = {r.reviewer for r in request.reviews if r.decision == "approve"}
    return len(approvers) >= required


def no_review_objects(request: RequestFacts) -> bool:
    """No review may have returned or rejected the request."""
    return all(r.decision == "approve" for r in request.reviews)


def stewards_have_approved(request: RequestFacts) -> bool:
    """Every agency that asks for it must have had its steward approve the outputs that use its data."""
    return request.stewards_required <= request.stewards_approved


def request_is_approved(request: RequestFacts) -> bool:
    """Only an approved request can be released."""
    return request.state == RequestState.approved


def ready_for_approval(request: RequestFacts, required: int) -> bool:
    """All the conditions for approval hold: checked outputs, none blocked, enough independent approvals, no objection, stewards."""
    return (
        every_output_was_checked(request)
        and no_output_is_blocked(request)
        and enough_independent_approvals(request, required)
        and no_review_objects(request)
        and failed_outputs_have_exceptions(request)
        and all(approval_overrides_every_failed_output(request, r) for r in request.reviews)
        and stewards_have_approved(request)
    )
