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
        "Cohort definition `homeless_students` (enclave/cohorts/definitions): each student counted once per "
        "school and school year, flagged when the school identified them as homeless "
        "(McKinney-Vento). Counts are checked and suppressed by the rules; rates and their 95% "
        "intervals are computed from the published counts.",
        ["school_enrollment", "foster_care", "shelter_stays"],
        [
            'from enclave.cohorts import report\n'
            'students = report.cohort(acro, "homeless_students")   # its text is saved beside the outputs\n'
            'print(report.describe(students.definition))\n'
            'students.counts',
            '# Homeless students per school: the checked table the city asked for\n'
            'acro.crosstab(students.rows.school_name, students.rows.homeless_flag, margins=True)',
            '# Rates by sex, race/ethnicity and neighbourhood, with charts\n'
            'report.comparison_report(acro, students, "homeless")',
            '# A subpopulation: foster youth among students experiencing homelessness\n'
            'report.comparison_report(acro, students, "homeless", by=["foster_youth"])',
        ],
    ),
    "02_foster_care_and_juvenile_services.ipynb": (
        "# How many children touch both foster care and juvenile services?\n\n"
        "Cohort definition `crossover_youth`: a juvenile-justice referral at ages 10-17 while in "
        "out-of-home care or within 12 months after leaving it (dually involved), and either order "
        "of first contact.",
        ["foster_care", "juvenile_justice"],
        [
            'from enclave.cohorts import report\n'
            'crossover = report.cohort(acro, "crossover_youth")\n'
            'print(report.describe(crossover.definition))\n'
            'crossover.counts',
            'for measure in ["dually_involved", "foster_care_first", "juvenile_services_first"]:\n'
            '    report.comparison_report(acro, crossover, measure, by=["sex", "race_ethnicity"])',
        ],
    ),
    "03_young_parents_and_early_childhood.ipynb": (
        "# Young parents and their children's early-childhood services\n\n"
        "Cohort definition `young_parents`: children born in the period, a parent aged under 25 at "
        "the birth, and the services the child used before age five (pre-K, well-child, dental and "
        "vision visits, housing assistance).",
        ["births", "prek", "health_visits", "housing_assistance", "relationships"],
        [
            'from enclave.cohorts import report\n'
            'children = report.cohort(acro, "young_parents")\n'
            'print(report.describe(children.definition))\n'
            'children.counts',
            'for service in ["prek", "well_child_visit", "dental_visit", "vision_visit"]:\n'
            '    report.comparison_report(acro, children, service, by=["young_parent"])',
            'report.comparison_report(acro, children, "prek", by=["race_ethnicity", "neighbourhood"])',
        ],
    ),
    "04_opportunity_youth.ipynb": (
        "# What disconnects opportunity youth?\n\n"
        "Cohort definition `opportunity_youth`: aged 16-24 at the reference month, with no school "
        "enrolment, no wages and no workforce programme in the four quarters before it.",
        ["school_enrollment", "wages", "workforce", "foster_care", "juvenile_justice", "shelter_stays"],
        [
            'from enclave.cohorts import report\n'
            'youth = report.cohort(acro, "opportunity_youth")\n'
            'print(report.describe(youth.definition))\n'
            'youth.counts',
            'report.comparison_report(acro, youth, "disconnected")',
            '# Which histories go with disconnection?\n'
            'report.comparison_report(acro, youth, "disconnected",\n'
            '                         by=["ever_in_foster_care", "ever_referred_to_juvenile_services", "ever_in_homeless_services"])',
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
