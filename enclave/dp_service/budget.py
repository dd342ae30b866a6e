"""The project's DP budget in the registry (``DPBudget``), charged atomically.

One conditional UPDATE takes epsilon only while the total is not exceeded, so two charges can
never both pass a check the first has already used up, on SQLite or PostgreSQL, in one process
or many. It runs inside the caller's transaction: if the query fails after the charge, the
charge rolls back with it and no answer is returned.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from disclosure_control.dp import BudgetExceeded, DPError
from enclave.registry.models import DPBudget

# Float epsilons summed over many charges drift by ulps: a charge that lands exactly on the
# total must still fit.
TOLERANCE = 1e-9


class RegistryBudget:
    """``disclosure_control.dp``'s budget interface over one project's ``DPBudget`` row."""

    def __init__(self, session, project_id: int, project: str):
        self.session = session
        self.project_id = project_id
        self.project = project
        self.charged = 0.0

    def charge(self, epsilon: float, purpose: str = "") -> float:
        """Take ``epsilon`` from the budget or raise ``BudgetExceeded``; returns what remains."""
        if not epsilon > 0:
            raise DPError(f"epsilon must be positive, got {epsilon!r}")
        result = self.session.execute(
            update(DPBudget)
            .where(DPBudget.project_id == self.project_id,
                   DPBudget.epsilon_spent + epsilon <= DPBudget.epsilon_total + TOLERANCE)
            .values(epsilon_spent=DPBudget.epsilon_spent + epsilon, updated_at=dt.datetime.now(dt.UTC))
            .execution_options(synchronize_session=False)
        )
        budget = self.session.get(DPBudget, self.project_id, populate_existing=True)
        if result.rowcount != 1:
            if budget is None:
                raise BudgetExceeded(f"project {self.project} has no DP budget")
            raise BudgetExceeded(f"project {self.project}: epsilon {epsilon:g} exceeds the remaining budget "
                                 f"{max(0.0, budget.epsilon_total - budget.epsilon_spent):g}")
        self.charged += epsilon
        return budget.epsilon_total - budget.epsilon_spent
