"""Writes the researcher notebook templates in notebooks/templates/ (run after editing this file).

Each template is a use case from the city's brief. It loads the project's extract through the
SDC-aware session so every table it makes is saved with its evidence and checked at once.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent / "templates"

SETUP = '''from enclave import notebook as nb
acro = nb.session()          # SDC-aware: every output saved with its evidence, verdict shown
print(nb.manifest()["project"], "extract", nb.manifest()["version"])
nb.variables()'''

TEMPLATES = {
    "01_homeless_students_by_school.ipynb": (
        "# How many students in a school are experiencing homelessness?\n\n"
        "Education records (McKinney-Vento flag) by school. Small schools are suppressed by the "
        "rules; ask for a release of the table, not of the rows.",
        ["school_enrollment"],
        [
            'school = acro.load("school_enrollment")\n'
            'acro.crosstab(school.school_name, school.homeless_flag)',
            '# By sex and race/ethnicity (totals are computed from the checked cells)\n'
            'acro.crosstab([school.sex, school.race_ethnicity], school.homeless_flag)',
        ],
    ),
    "02_foster_care_and_juvenile_services.ipynb": (
        "# How many children touch both foster care and juvenile services?\n\n"
        "A person is in both systems when their project pseudonym appears in both tables.",
        ["foster_care", "juvenile_justice"],
        [
            'foster = acro.load("foster_care")\n'
            'juvenile = acro.load("juvenile_justice")\n'
            'in_both = foster["pseudonym"].isin(set(juvenile["pseudonym"]))\n'
            'foster["also_juvenile"] = in_both\n'
            'acro.crosstab(foster.placement_type, foster.also_juvenile)',
        ],
    ),
    "03_young_parents_and_early_childhood.ipynb": (
        "# Young parents' education and employment and their children's early-childhood services\n\n"
        "Births give mother-child pairs; pre-K and health visits are the children's services.",
        ["births", "prek", "health_visits"],
        [
            'births = acro.load("births")\n'
            'acro.crosstab(births.prenatal_care_began_month, births.race_ethnicity)',
            'prek = acro.load("prek")\n'
            'acro.crosstab(prek.program, prek.sex)',
            'visits = acro.load("health_visits")\n'
            'acro.crosstab(visits.visit_type, visits.race_ethnicity)',
        ],
    ),
    "04_opportunity_youth.ipynb": (
        "# What disconnects opportunity youth?\n\n"
        "Young people aged 16-24 neither enrolled in school nor in work (no wages in the quarter).",
        ["school_enrollment", "wages"],
        [
            'school = acro.load("school_enrollment")\n'
            'wages = acro.load("wages")\n'
            'employed = set(wages["pseudonym"])\n'
            'school["has_earnings"] = school["pseudonym"].isin(employed)\n'
            'acro.crosstab(school.grade, school.has_earnings)',
        ],
    ),
    "05_school_stability_in_foster_care.ipynb": (
        "# Foster care placements and school stability\n\n"
        "Do children in foster care change schools more often, and does placement type matter?",
        ["foster_care", "school_enrollment"],
        [
            'foster = acro.load("foster_care")\n'
            'acro.crosstab(foster.placement_type, foster.sex)',
            'school = acro.load("school_enrollment")\n'
            'school["in_foster_care"] = school["pseudonym"].isin(set(foster["pseudonym"]))\n'
            'acro.crosstab(school.in_foster_care, school.homeless_flag)',
            '# Attendance by foster-care status: a magnitude table, checked for dominance and p%\n'
            'acro.pivot_table(school, values="days_attended", index="in_foster_care", aggfunc="mean")',
        ],
    ),
    "06_behavioural_health_and_juvenile_justice.ipynb": (
        "# Behavioural health care and juvenile justice contact",
        ["juvenile_justice", "behavioral_health"],
        [
            'juvenile = acro.load("juvenile_justice")\n'
            'acro.crosstab(juvenile.offense_category, juvenile.sex)',
            'bh = acro.load("behavioral_health")\n'
            'bh["juvenile_contact"] = bh["pseudonym"].isin(set(juvenile["pseudonym"]))\n'
            'acro.crosstab(bh.service_type, bh.juvenile_contact)',
        ],
    ),
}

FOOTER = ("## Release\nOutputs and their evidence are in `~/outputs`. Request a release with "
          "`enclave release create` from the console; reviewers see the verdicts shown above.")


def build() -> list[Path]:
    HERE.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (intro, needs, cells) in TEMPLATES.items():
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["enclave"] = {"requires_tables": needs}
        check = (f"missing = set({needs!r}) - set(nb.tables())\n"
                 "assert not missing, f'this template needs tables {sorted(missing)}, not in this extract'")
        nb.cells = [new_markdown_cell(intro), new_code_cell(SETUP), new_code_cell(check)]
        nb.cells += [new_code_cell(c) for c in cells]
        nb.cells.append(new_markdown_cell(FOOTER))
        path = HERE / name
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build():
        print(p)
