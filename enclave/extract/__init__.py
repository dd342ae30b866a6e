"""Building a project's extract, one stage per module, each importing only the ones before it:

0. ``spec``       - what the board approved (sources, columns, cohort, k, conditions): the data
                    every stage shares, and the build's one error;
1. ``select``     - the approved tables, columns and cohort read from the research store, pseudonymised;
2. ``generalise`` - per-table k (``disclosure_control.microdata``), person-level columns at common levels;
   ``joined``     - person-level k over all tables joined on the pseudonym;
3. ``attacker``   - the attacker model as data (person and event columns from the disclosure
                    classes, events known, family edges known, k);
   ``ladders``    - generalisation ladders for event-level columns (``ladders.yaml``);
   ``measure``    - how many people share each combination the attacker could hold;
4. ``remedy``     - generalise, suppress single values, drop events, edges and people until all reach k;
5. ``shuffle``    - a fresh random row order per table, so two extracts share no row position;
6. ``write``      - the all-or-nothing version folder and manifest; ``register`` - registry rows, audit.

``enclave.provisioning`` re-exports the entry points (``provision``, ``build_extract``, ...).
"""
