"""Building a project's extract, one stage per module, each importing only the ones before it:

1. ``attacker``  - the attacker model as data (what is known: columns, events, edges; the k);
2. ``ladders``   - generalisation ladders for event-level columns (``ladders.yaml``);
3. ``measure``   - how many people share each combination the attacker could hold;
4. ``remedy``    - generalise, suppress single values, drop events and edges until all reach k;
5. ``shuffle``   - a fresh random row order per table, so two extracts share no row position.

``enclave.provisioning`` selects the cohort and columns, applies the per-table and joined-table
steps, runs these stages, re-measures apart from the remedy and writes and registers the result.
"""
