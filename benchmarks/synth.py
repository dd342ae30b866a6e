"""Synthetic IDS generator (and ingest) throughput and peak memory.

Runs, side by side in this one invocation:
  * linkage.synth at --records (default 1M) records, in a fresh child process
    (wall time; CPU seconds summed over the processes that generate; peak RSS of the
    largest of them: chunks bound each process's memory);
  * the same at a quarter of the size (peak RSS must not grow with the size: chunked);
  * BASELINE: a naive row-by-row Faker generator (one dict per record, pandas at the end)
    on a small sample, extrapolated linearly to --records. It is stated as extrapolated;
    running it at 1M would take minutes;
  * ingest of the largest CSV source produced, against pandas.read_csv of the same file
    (parsing only, no validation) as the reference.
Ends with one name=value line per figure.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/linkage.py would shadow the linkage package: drop this folder from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

RECORDS_PER_PERSON = 2.44  # measured on this generator's defaults (seed 1, 400k people)

CHILD = r"""
import resource, sys, time
from linkage.synth import SynthConfig, generate
people, out, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
stats = {}
counts = generate(SynthConfig(people=people, seed=1), out, workers=workers, stats=stats)
wall = time.perf_counter() - t
own_cpu = time.process_time()  # the parent's share (writing files); workers report their own
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, stats["worker_peak_rss_mb"])
cpu = stats["worker_cpu_seconds"] + (own_cpu if workers > 1 else 0.0)
print(sum(v for k, v in counts.items() if k != "ground_truth.csv"), wall, cpu, rss)
"""

BASELINE = r"""
import sys, time
import pandas as pd
from faker import Faker
n = int(sys.argv[1])
fake = Faker("en_US"); Faker.seed(1)
t = time.perf_counter()
rows = []
for i in range(n):
    rows.append({"record_id": i, "first_name": fake.first_name(), "last_name": fake.last_name(),
                 "dob": fake.date_of_birth(minimum_age=0, maximum_age=80).isoformat(), "sex": fake.random_element("MF"),
                 "ssn": fake.ssn(), "street": fake.street_address(), "zip": fake.zipcode_in_state("MD"),
                 "event_date": fake.date_between("-10y", "today").isoformat()})
pd.DataFrame(rows).to_csv(sys.argv[2], index=False)
print(n, time.perf_counter() - t)
"""


def run_child(code: str, *args: str) -> tuple[str, float, float, float]:
    """Run python code in a child; return its stdout, wall s, CPU s (with its workers), peak RSS MB."""
    before = _children_cpu()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"child failed with {proc.returncode}")
    cpu = _children_cpu() - before
    return out.strip(), wall, cpu, usage.ru_maxrss / 1024


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-sample", type=int, default=5_000)
    args = ap.parse_args()
    people = int(args.records / RECORDS_PER_PERSON)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        tmp = Path(tmp)
        print(f"linkage.synth: {people:,} people (~{args.records:,} records), {args.workers} worker(s), on {os.cpu_count()} cores", flush=True)
        print(f"  load average before: {os.getloadavg()[0]:.1f} (the machine is shared: wall time depends on it)")
        out, _, _, _ = run_child(CHILD, str(people), str(tmp / "full"), str(args.workers))
        records, gen_seconds, cpu, rss = int(out.split()[0]), float(out.split()[1]), float(out.split()[2]), float(out.split()[3])
        print(f"  {records:,} records in {gen_seconds:.1f} s wall ({records / gen_seconds:,.0f} records/s), "
              f"CPU {cpu:.1f} s, peak RSS {rss:.0f} MB")

        quarter_people = people // 4
        out_q, _, _, _ = run_child(CHILD, str(quarter_people), str(tmp / "quarter"), str(args.workers))
        rss_q = float(out_q.split()[3])
        print(f"  quarter size: {int(out_q.split()[0]):,} records, peak RSS {rss_q:.0f} MB (chunked: memory must not scale with size)")

        print(f"BASELINE naive row-by-row Faker generator, {args.baseline_sample:,} records, extrapolated to {records:,}", flush=True)
        out_b, _, _, rss_b = run_child(BASELINE, str(args.baseline_sample), str(tmp / "naive.csv"))
        n_b, sec_b = int(out_b.split()[0]), float(out_b.split()[1])
        base_rate = n_b / sec_b
        print(f"  {base_rate:,.0f} records/s -> {records / base_rate:,.0f} s for {records:,} records (extrapolated), peak RSS {rss_b:.0f} MB on the sample")

        # Ingest the largest CSV of the run, against pandas' parser on the same bytes.
        import pandas as pd

        from linkage.ingest import ingest_file
        from linkage.sources import load_definitions

        defs = load_definitions()
        csvs = sorted((p for p in (tmp / "full").glob("*.csv") if p.stem in defs), key=lambda p: p.stat().st_size)
        biggest = csvs[-1]
        t, c = time.perf_counter(), time.process_time()
        result = ingest_file(defs[biggest.stem], biggest, tmp / "vault")
        ingest_seconds, ingest_cpu = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        n_pd = len(pd.read_csv(biggest, dtype=str))
        pandas_seconds, pandas_cpu = time.perf_counter() - t, time.process_time() - c
        print(f"ingest {biggest.name}: {result.rows_read:,} rows in {ingest_seconds:.1f} s "
              f"({result.rows_read / ingest_seconds:,.0f} rows/s; {result.rows_read / ingest_cpu:,.0f} rows per CPU s; "
              f"{result.rows_quarantined} quarantined); BASELINE pandas.read_csv (parse only, no validation, no output): "
              f"{n_pd / pandas_seconds:,.0f} rows/s, {n_pd / pandas_cpu:,.0f} rows per CPU s")

    print(f"synth_records={records}")
    print(f"synth_seconds={gen_seconds:.2f}")
    print(f"synth_cpu_seconds={cpu:.2f}")
    print(f"synth_records_per_second={records / gen_seconds:.0f}")
    print(f"synth_peak_rss_mb={rss:.0f}")
    print(f"synth_quarter_size_peak_rss_mb={rss_q:.0f}")
    print(f"baseline_faker_rowwise_records_per_second={base_rate:.0f}")
    print(f"baseline_faker_rowwise_seconds_extrapolated={records / base_rate:.0f}")
    print(f"speedup_vs_baseline={(records / gen_seconds) / base_rate:.1f}")
    print(f"ingest_rows_per_second={result.rows_read / ingest_seconds:.0f}")
    print(f"ingest_rows_per_cpu_second={result.rows_read / ingest_cpu:.0f}")
    print(f"baseline_pandas_read_csv_rows_per_second={n_pd / pandas_seconds:.0f}")
    print(f"baseline_pandas_read_csv_rows_per_cpu_second={n_pd / pandas_cpu:.0f}")


if __name__ == "__main__":
    main()
