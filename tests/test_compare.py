"""`kpbench compare`: agreement figures and the --require-identical exit code."""

import numpy as np
import pytest

from runner.cli import main
from runner.score.compare import compare_runs

from .helpers import write_pair

LABELS = [0, 1, 2, 3]
TOP5 = [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [2, 0, 1, 3, 4], [9, 8, 7, 6, 5]]


def _runs(tmp_path, top5_b, errors_b=()):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, top5, errors in ((a, TOP5, ()), (b, top5_b, errors_b)):
        write_pair(out, "pytorch", "m", LABELS, top5, errors=errors)
        write_pair(out, "keras", "same", LABELS, TOP5)
    return a, b


def test_identical_runs(tmp_path, capsys):
    a, b = _runs(tmp_path, TOP5)
    assert all(row.identical for row in compare_runs(a, b))
    assert main(["compare", str(a), str(b), "--require-identical"]) == 0
    assert "identical: all 2 model(s)" in capsys.readouterr().out


def test_changed_predictions_are_counted_and_named(tmp_path, capsys):
    changed = [TOP5[0], [0, 1, 2, 3, 4], [2, 1, 0, 3, 4], [9, 8, 7, 6, 3]]
    a, b = _runs(tmp_path, changed)
    row = {r.model: r for r in compare_runs(a, b)}["m"]
    # image 1: top-1 1 -> 0 (same set); image 2: same top-1, same set; image 3: set changed
    assert row.top1_changed == 1
    assert row.top1_agreement == 75.0
    assert row.top5_set_agreement == 75.0
    assert row.acc1_diff == -25.0  # image 1 was right, now wrong
    assert row.acc5_diff == 25.0  # image 3's label 3 entered the top 5
    # probabilities are 0.5, 0.2, 0.1, 0.1, 0.1 by rank: class 1 moved from 0.5 to 0.2
    assert row.max_prob_diff == pytest.approx(0.3)
    # McNemar: only A got image 1 right, nothing the other way; one image proves nothing
    assert (row.only_a_right, row.only_b_right, row.mcnemar_p) == (1, 0, 1.0)
    assert main(["compare", str(a), str(b), "--require-identical"]) == 1
    out = capsys.readouterr().out
    assert "differs: pytorch/m: 1 changed top-1" in out and "keras/same" not in out.split("differs")[-1]
    assert main(["compare", str(a), str(b)]) == 0  # without the flag it only reports


def test_unreadable_image_in_one_run_is_a_difference(tmp_path):
    a, b = _runs(tmp_path, [TOP5[0], None, TOP5[2], TOP5[3]], errors_b={1})
    row = {r.model: r for r in compare_runs(a, b)}["m"]
    assert row.status_changed == 1 and row.images == 3 and not row.identical


def test_no_common_models_is_an_error(tmp_path):
    write_pair(tmp_path / "a", "pytorch", "x", LABELS, TOP5)
    write_pair(tmp_path / "b", "pytorch", "y", LABELS, TOP5)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2


def test_figures_match_the_arrays_on_random_predictions(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200).tolist()
    tops = [rng.permutation(10)[:5].tolist() for _ in range(2 * 200)]
    write_pair(tmp_path / "a", "keras", "m", labels, tops[:200])
    write_pair(tmp_path / "b", "keras", "m", labels, tops[200:])
    (row,) = compare_runs(tmp_path / "a", tmp_path / "b")
    a, b = np.array(tops[:200]), np.array(tops[200:])
    assert row.top1_changed == int((a[:, 0] != b[:, 0]).sum())
    assert row.top5_set_agreement == pytest.approx(
        100 * (np.sort(a, 1) == np.sort(b, 1)).all(1).mean())


def test_mcnemar_between_two_runs_of_one_model(tmp_path, capsys):
    labels = list(range(12))
    right = [[label, 99, 98, 97, 96] for label in labels]
    wrong = [[99, 98, 97, 96, 95]] * 12
    write_pair(tmp_path / "a", "keras", "m", labels, right)
    write_pair(tmp_path / "b", "keras", "m", labels, right[:2] + wrong[2:])
    (row,) = compare_runs(tmp_path / "a", tmp_path / "b")
    # 10 images only A got right: two-sided exact p = 2 / 2 ** 10
    assert (row.only_a_right, row.only_b_right) == (10, 0)
    assert row.mcnemar_p == pytest.approx(2 / 1024)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "mcnemar_p" in capsys.readouterr().out


def test_compare_needs_a_second_run_or_two_backends(tmp_path, capsys):
    run = tmp_path / "a"
    write_pair(run, "keras", "m", LABELS, TOP5)  # on TensorFlow, the default backend
    assert main(["compare", str(run)]) == 2
    assert "compare needs RUN_B, or --backends A,B" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", str(run), "--backends", "tensorflow"])
    assert "--backends: two of tensorflow, jax, torch, as A,B: not 'tensorflow'" in capsys.readouterr().err
    assert main(["compare", str(run), "--backends", "tensorflow,jax"]) == 2
    assert f"no Keras model on tensorflow in {run} and on jax in {run}" in capsys.readouterr().err
