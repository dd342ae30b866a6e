"""Cohort and measure definitions as data (``enclave/cohorts/definitions/*.yaml``) and their evaluation.

A definition names a population (who is counted, an age window at a reference month, a
period), conditions over events with time order and gaps, exclusions, measures (flags per
person) and the comparison dimensions. ``evaluate`` turns a definition and an extract's
tables into one row per unit; ``describe`` says the definition in plain words, which goes into
the evidence of every output built from it so reviewers and readers see exactly who was counted.
"""
from enclave.cohorts.definition import CohortDefinition, CohortError, load_definition, load_definitions
from enclave.cohorts.describe import describe
from enclave.cohorts.evaluate import Cohort, evaluate, summarise

__all__ = ["Cohort", "CohortDefinition", "CohortError", "describe", "evaluate", "load_definition",
           "load_definitions", "summarise"]
