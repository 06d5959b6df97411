"""Speed of the evaluation harness: N phantom test cases x {copy, tps, oracle} (target: 50 in < 3 min on 2 cores).

Prints the time to generate the cases (phantom simulation), the time to predict, segment and score them and
write the report, their sum (what ``echokdm evaluate --data phantom-test:N`` costs), and the summary table.

    python pipelines/bench/eval_speed.py [--n 50] [--size 128] [--task es] [--segmenter auto]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from functools import partial

import torch

from echokdm.errors import EchoKDMError
from echokdm.evaluate import CaseRef, run_evaluation
from echokdm.evaluate.cases import Case, phantom_case
from echokdm.phantom import split_seeds


def trimmed(case: Case) -> Case:
    """The ED..ES frames of a case (all the es/ed/sequence tasks use), to keep 50 cases in memory."""
    keep = range(case.ed, case.es + 1)
    return replace(
        case,
        frames=case.frames[case.ed : case.es + 1],
        labels={t - case.ed: case.labels[t] for t in keep},
        ddf_from_ed=case.ddf_from_ed[case.ed : case.es + 1],
        ed=0,
        es=case.es - case.ed,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--task", default="es")
    ap.add_argument("--segmenter", default="auto")
    ap.add_argument("--predictors", default="copy,tps,oracle")
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()} torch_threads={torch.get_num_threads()} load={os.getloadavg()[0]:.1f}")

    t0 = time.perf_counter()
    cases, failed = [], 0
    for seed in split_seeds("test", args.n):
        try:
            cases.append(trimmed(phantom_case(seed, args.size)))
        except EchoKDMError:
            failed += 1
    t_gen = time.perf_counter() - t0
    refs = [CaseRef(c.case_id, partial(lambda c: c, c)) for c in cases]

    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        result = run_evaluation(
            refs,
            os.path.join(tmp, "report"),
            predictors=args.predictors.split(","),
            task=args.task,
            segmenter=args.segmenter,
            size=args.size,
        )
        t_eval = time.perf_counter() - t1
        summary = result.summary.read_text()
    rows = result.table[~result.table["skipped"].astype(bool)]
    per = rows.groupby("predictor")["seconds"].sum()
    print(f"cases: {len(cases)} generated ({failed} failed to simulate) at {args.size}x{args.size}, task {args.task}")
    print(f"generate phantom cases: {t_gen:7.1f} s")
    print(f"predict+segment+score+report: {t_eval:7.1f} s  (prediction alone: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in per.items()) + ")")
    print(f"total: {t_gen + t_eval:7.1f} s for {len(cases)} cases x {len(per)} predictors")
    print(summary.split("## Paired")[0])


if __name__ == "__main__":
    main()
