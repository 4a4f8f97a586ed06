"""--keras-backends and --precision end to end: one pair per (Keras model, backend), each with its
own folder, table row and provenance; reruns identical on every backend; bf16 against fp32 in
compare; the run's speeds recorded for the next plan (local Ray with 2 fake GPUs); and one
cached weight file for all three backends."""

import hashlib
import json

import numpy as np
import pytest
from rich.console import Console

from runner.cli import main
from runner.data.index import open_dataset
from runner.plan.calibration import load_samples
from runner.plan.pairs import plan_run
from runner.predictions import SCHEMA_VERSION, read_provenance
from runner.report.printout import print_table
from runner.report.tables import write_results
from runner.run.driver import run_benchmark
from runner.score.compare import compare_runs
from runner.score.reduce import score

from .helpers import offline_weight_caches, probe, sample_config

MODELS = ["keras/mobilenet", "pytorch/squeezenet1_1"]
BACKENDS = ["tensorflow", "jax", "torch"]


def _config(sample_dir, out, **overrides):
    return sample_config(sample_dir, out, models=MODELS, shard_size=8, batch_size=4,
                         keras_backends=BACKENDS, **overrides)


@pytest.fixture(scope="module")
def runs(ray_two_fake_gpus, sample_dir, tmp_path_factory):
    outs = {name: tmp_path_factory.mktemp(name) for name in ("first", "rerun", "bf16")}
    for name, out in outs.items():
        precision = {"precision": "bf16"} if name == "bf16" else {}
        outcome = run_benchmark(_config(sample_dir, out, **precision), Console(quiet=True))
        assert outcome.failed == {}
    return outs


def test_one_pair_per_backend_with_its_own_folder_and_row(runs):
    first = runs["first"] / "predictions"
    assert sorted(str(p.relative_to(first)) for p in first.rglob("model=*")) == [
        "framework=keras/backend=jax/model=mobilenet",
        "framework=keras/backend=torch/model=mobilenet",
        "framework=keras/model=mobilenet",  # the default backend keeps the path earlier runs used
        "framework=pytorch/model=squeezenet1_1",
    ]
    rows = score(runs["first"])
    assert sorted((r.framework, r.backend or "", r.precision) for r in rows) == [
        ("keras", "jax", "fp32"), ("keras", "tensorflow", "fp32"), ("keras", "torch", "fp32"),
        ("pytorch", "", "fp32")]
    assert all(r.images == 15 and r.missing == 0 for r in rows)
    csv_path = next(p for p in write_results(runs["first"], rows) if p.name.endswith(".csv"))
    assert ",weights,protocol,backend,precision," in csv_path.read_text().splitlines()[0]


def _printed(run) -> str:
    console = Console(record=True, width=300)
    print_table(console, score(run))
    return console.export_text()


def test_the_printed_table_names_backends_and_precision(runs):
    text = _printed(runs["first"])
    # random weights fail the sanity check: one warning line for them all, naming each backend
    (warning,) = [line for line in text.splitlines() if "failed the weights sanity check" in line]
    assert warning.startswith("warning: random weights failed")
    assert {"keras/mobilenet", "keras/mobilenet@jax", "keras/mobilenet@torch"} <= set(
        warning.split(": ")[-1].split(", "))
    assert "(precision fp32)" in text.splitlines()[0]  # all at the default: the title says it
    bf16 = _printed(runs["bf16"])
    assert "(precision" not in bf16.splitlines()[0] and " bf16 " in bf16  # else a column


def test_provenance_records_backend_and_precision_as_the_framework_reports_them(runs):
    for path in (runs["bf16"] / "predictions").rglob("*.parquet"):
        provenance = read_provenance(path)
        assert provenance.precision == "bf16"
        in_effect = provenance.precision_in_effect
        if provenance.framework == "pytorch":
            assert provenance.backend is None and in_effect["autocast"] == "bfloat16"
        else:
            assert provenance.backend in BACKENDS
            assert provenance.backend in provenance.libraries
            assert in_effect["keras.mixed_precision.global_policy"] == "mixed_bfloat16"


def test_reruns_are_identical_on_every_backend(runs, capsys):
    rows = compare_runs(runs["first"], runs["rerun"])
    assert sorted(r.backend or "" for r in rows) == ["", "jax", "tensorflow", "torch"]
    assert all(r.identical and r.images == 15 for r in rows)
    assert main(["compare", str(runs["first"]), str(runs["rerun"]), "--require-identical"]) == 0
    assert "identical: all 4 model(s)" in capsys.readouterr().out


def test_compare_across_backends(runs, capsys):
    (across,) = compare_runs(runs["first"], runs["first"], ("tensorflow", "jax"))
    assert (across.framework, across.model, across.backend, across.images) == (
        "keras", "mobilenet", "tensorflow -> jax", 15)
    (same,) = compare_runs(runs["first"], runs["rerun"], ("torch", "torch"))  # a rerun, one backend
    assert same.identical and same.backend == "torch"
    assert main(["compare", str(runs["first"]), "--backends", "tensorflow,torch"]) == 0
    out = capsys.readouterr().out
    assert "backend: tensorflow -> torch (A -> B)" in out and "(B, torch)" in " ".join(out.split())


def test_compare_shows_bf16_against_fp32(runs, capsys):
    rows = compare_runs(runs["first"], runs["bf16"])
    assert {r.precision for r in rows} == {"fp32 -> bf16"}
    assert all(r.images == 15 and 0 <= r.top1_agreement <= 100 for r in rows)
    main(["compare", str(runs["first"]), str(runs["bf16"])])
    assert "fp32 -> bf16" in capsys.readouterr().out


def test_backend_and_precision_change_the_pair_key_only_when_not_default(runs, sample_dir):
    _, plans = plan_run(_config(sample_dir, runs["first"]))
    assert all(not plan.todo for plan in plans)  # a rerun resumes: nothing left to do
    keys = {plan.job.name: plan.job.pair_key for plan in plans}
    assert set(keys) == {"keras/mobilenet", "keras/mobilenet@jax", "keras/mobilenet@torch",
                         "pytorch/squeezenet1_1"}
    assert len(set(keys.values())) == 4
    # the tensorflow/fp32 pair's key is the one runs made before backends and precision existed
    job = next(plan.job for plan in plans if plan.job.name == "keras/mobilenet")
    dataset = open_dataset(str(sample_dir / "val"), classes=str(sample_dir / "classes.txt"))
    before = {"schema_version": SCHEMA_VERSION, "dataset": dataset.fingerprint,
              "spec": job.spec.model_dump(mode="json", exclude={"arch"}), "weights": "random",
              "protocol": "reference", "seed": 0, "forward_batch": 1}
    assert job.pair_key == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    _, bf16_plans = plan_run(_config(sample_dir, runs["bf16"], precision="bf16"))
    assert not {p.job.pair_key for p in bf16_plans} & set(keys.values())


def test_each_run_records_its_speeds_for_the_next_plan(runs):
    run_ids = {read_provenance(path).run_id for out in runs.values()
               for path in (out / "predictions").rglob("*.parquet")}
    samples = [s for s in load_samples() if s.source.removeprefix("run ") in run_ids]
    assert len(samples) == 3 * 4
    assert {(s.model, s.backend, s.precision) for s in samples} >= {
        ("keras/mobilenet", backend, "fp32") for backend in BACKENDS}
    assert all(s.images == 15 and s.seconds > 0 and s.load_seconds > 0 for s in samples)


def test_the_same_weight_file_serves_every_backend(tmp_path):
    """The pretrained path on each backend reads the one cached keras.applications file: a
    stand-in written from TensorFlow gives the same weights, and the same predictions, on all
    three (random weights would differ per backend)."""
    env = offline_weight_caches(tmp_path)
    saved = probe("keras", "save_keras_checkpoint", {"model": "mobilenetV2"}, env=env)
    loaded = {backend: probe("keras", "keras_pretrained_predictions",
                             {"model": "mobilenetV2", "backend": backend, "images": 2}, env=env)
              for backend in BACKENDS}
    for backend, result in loaded.items():
        assert result["weights_file"] == saved["path"], backend
        assert result["weights_checksum"] == pytest.approx(saved["weights_checksum"], rel=1e-12), backend
        np.testing.assert_allclose(result["probs"], loaded["tensorflow"]["probs"], atol=1e-6)
