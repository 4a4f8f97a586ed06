"""`kpbench compare`: how much two runs' predictions differ, per (framework, model) in both.

Works across Keras modes, protocols and reruns: rows are matched by dataset position.
Probabilities are compared for classes in both top-5 lists (the files keep only the top 5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runner.errors import UserError
from runner.score.reduce import PairPredictions, accuracy, load_pair, pair_folders, run_setting


def compare_runs(run_a: str | Path, run_b: str | Path) -> list[dict]:
    """One row per (framework, model) present in both runs, in name order."""
    folders_a = {folder.relative_to(Path(run_a)): folder for folder in pair_folders(run_a)}
    folders_b = {folder.relative_to(Path(run_b)): folder for folder in pair_folders(run_b)}
    common = sorted(set(folders_a) & set(folders_b))
    if not common:
        raise UserError(f"{run_a} and {run_b} have no (framework, model) in common")
    rows = []
    for key in common:
        a = load_pair(folders_a[key], probabilities=True)
        b = load_pair(folders_b[key], probabilities=True)
        if a is not None and b is not None:
            rows.append(compare_pair(a, b))
    return rows


def compare_pair(a: PairPredictions, b: PairPredictions) -> dict:
    _, in_a, in_b = np.intersect1d(a.positions, b.positions, assume_unique=True, return_indices=True)
    status_changed = int((a.ok[in_a] != b.ok[in_b]).sum())
    both = a.ok[in_a] & b.ok[in_b]
    top_a, top_b = a.top[in_a][both], b.top[in_b][both]
    probs_a, probs_b = a.probs[in_a][both], b.probs[in_b][both]
    same_class = top_a[:, :, None] == top_b[:, None, :]  # (images, 5, 5)
    gaps = np.abs(probs_a[:, :, None] - probs_b[:, None, :])[same_class]
    changed = int((top_a[:, 0] != top_b[:, 0]).sum())
    set_agree = (np.sort(top_a, axis=1) == np.sort(top_b, axis=1)).all(axis=1)
    (acc1_a, acc5_a), (acc1_b, acc5_b) = (
        accuracy(p.top[p.ok], p.labels[p.ok]) for p in (a, b)
    )
    identical = (
        len(a.positions) == len(b.positions) == len(in_a)
        and status_changed == 0
        and np.array_equal(top_a, top_b)
        and np.array_equal(probs_a, probs_b)
    )
    images = int(both.sum())
    setting_a, setting_b = run_setting(a.provenance), run_setting(b.provenance)
    return {
        "framework": a.provenance["framework"],
        "backend": setting_a["backend"],
        "model": a.provenance["model"],
        # "fp32 -> bf16" when the runs differ in it (compare then shows bf16's agreement)
        "precision": " -> ".join(dict.fromkeys([setting_a["precision"], setting_b["precision"]])),
        "images": images,
        "only_in_one": int(len(a.positions) + len(b.positions) - 2 * len(in_a)),
        "status_changed": status_changed,
        "top1_agreement": 100.0 * (images - changed) / images if images else float("nan"),
        "top5_set_agreement": 100.0 * set_agree.mean() if images else float("nan"),
        "top1_changed": changed,
        "max_prob_diff": float(gaps.max()) if gaps.size else 0.0,
        "acc1_diff": acc1_b - acc1_a,
        "acc5_diff": acc5_b - acc5_a,
        "identical": bool(identical),
    }
