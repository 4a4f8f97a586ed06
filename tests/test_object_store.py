"""Run folders on object storage, against a real S3 server (moto) that the fixture starts on
127.0.0.1: the same predictions as on a local disk, every file one PUT, resume by listing,
failure files, the foreign-config refusal, a killed driver, and one line for each bad location.

The bad-input tests come first: they check that Ray never started, before the module's Ray does.
"""

import os
import re

import numpy as np
import pytest
import ray
from rich.console import Console

from runner.catalog import load_catalog
from runner.cli import main
from runner.config import RunConfig
from runner.data.index import open_dataset
from runner.errors import UserError
from runner.outputs import Location
from runner.plan.pairs import _job
from runner.predictions import clear_failure, load_pair, read_provenance, record_failure
from runner.run.driver import run_benchmark
from runner.score.compare import compare_runs
from runner.score.reduce import score

from .helpers import sample_config
from .s3server import BUCKET, LOCKED, READ_ONLY
from .test_failures import _cli, _finish, kill_driver_mid_run

MODELS = ["pytorch/squeezenet1_1", "keras/mobilenet"]
SHARD = re.compile(r"predictions/framework=\w+/model=[\w.]+/shard-\d{5}\.parquet")
RESULT = re.compile(r"results/[\w.]+\.(csv|md|json|png)|report/index\.html")
SANITY = re.compile(r"predictions/framework=\w+/model=[\w.]+/_sanity\.json")  # the weights check


def _uri(prefix: str, bucket: str = BUCKET) -> str:
    return f"s3://{bucket}/{prefix}"


def _relative(keys: list[str], prefix: str) -> list[str]:
    return [key.removeprefix(prefix + "/") for key in keys]


def _shards(s3_server, prefix: str) -> list[str]:
    return [key for key in s3_server.keys(f"{prefix}/predictions") if key.endswith(".parquet")]


def _only_finished_files(keys: list[str], prefix: str) -> None:
    """Every object is a whole predictions or results file: no probe, marker or partial file."""
    strays = [key for key in _relative(keys, prefix)
              if not any(pattern.fullmatch(key) for pattern in (SHARD, RESULT, SANITY))]
    assert strays == []


# ---- bad input: one line each, before Ray starts ---------------------------------------------------

def _run_args(sample_dir, out, *more, models=MODELS[:1]):
    return ["run", "--data", str(sample_dir / "val"), "--classes", str(sample_dir / "classes.txt"),
            "--models", *models, "--weights", "random", "--out", out, *more]


def _npy_folder(tmp_path):
    np.save(tmp_path / "m_pytorch_imagenet_top5preds.npy", np.zeros((2, 5), np.int64))
    np.save(tmp_path / "m_pytorch_imagenet_top5probs.npy", np.zeros((2, 5), np.float32))
    return str(tmp_path)


@pytest.mark.parametrize("argv, message", [
    (lambda s, t: _run_args(s, "foo://bucket/run"), "unknown scheme 'foo'"),
    (lambda s, t: _run_args(s, f"s3://user:secret@{BUCKET}/run"), "credentials in a URI"),
    (lambda s, t: _run_args(s, _uri("run", "kpbench-missing")), "bucket 'kpbench-missing' does not exist"),
    (lambda s, t: _run_args(s, _uri("run", LOCKED)), f"cannot reach bucket '{LOCKED}'"),
    (lambda s, t: _run_args(s, _uri("run", READ_ONLY)), "cannot write to output folder"),
    (lambda s, t: _run_args(s, _uri("run"), "--s3-endpoint", "127.0.0.1:9000"),
     "s3_endpoint: String should match pattern"),
    (lambda s, t: ["score", "foo://bucket/run"], "unknown scheme 'foo'"),
    (lambda s, t: ["score", _uri("run", "kpbench-missing")], "does not exist"),
    (lambda s, t: ["report", _uri("run", LOCKED)], "ACCESS_DENIED"),
    (lambda s, t: ["compare", _uri("a", "kpbench-missing"), str(t)], "does not exist"),
    (lambda s, t: ["import-npy", _npy_folder(t), "--out", _uri("run", READ_ONLY)],
     "cannot write to output folder"),
], ids=["unknown-scheme", "credentials-in-uri", "missing-bucket", "denied-bucket", "read-only-bucket",
        "bad-endpoint", "score-unknown-scheme", "score-missing-bucket", "report-denied",
        "compare-missing-bucket", "import-read-only"])
def test_a_bad_location_is_one_line_before_ray(s3_server, sample_dir, tmp_path, capsys, argv, message):
    code = main(argv(sample_dir, tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kpbench: error: ") and message in lines[0], err
    assert not ray.is_initialized()


def test_a_local_path_with_a_colon_is_still_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Location.of("runs:1").root == str(tmp_path / "runs:1")


# ---- a run to the bucket ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray(s3_server):
    """Started after the server, so that its workers take the test user's credentials."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def runs(local_ray, sample_dir, tmp_path_factory):
    """The same run into the bucket and into a local folder."""
    local = tmp_path_factory.mktemp("local")
    for out in (_uri("run"), local):
        config = sample_config(sample_dir, out, MODELS, shard_size=4)
        assert run_benchmark(config, Console(quiet=True)).failed == {}
    return _uri("run"), local


def test_a_run_to_s3_has_the_predictions_of_a_local_run(runs):
    in_bucket, local = runs
    comparison = compare_runs(local, in_bucket)
    assert len(comparison) == len(MODELS) and all(row.identical for row in comparison), comparison
    figures = ("framework", "model", "acc1", "acc5", "images", "errors", "missing", "status")
    assert [[getattr(row, k) for k in figures] for row in score(in_bucket)] == [
        [getattr(row, k) for k in figures] for row in score(local)]


def test_each_shard_is_one_put_and_nothing_else_is_left(runs, s3_server):
    written = s3_server.keys("run/predictions")  # the shards and each model's _sanity.json
    keys = [key for key in written if key.endswith(".parquet")]
    assert len(keys) == len(MODELS) * 4  # 15 images in shards of 4
    _only_finished_files(keys, "run")
    puts = s3_server.requests("PUT", "run/predictions")
    assert puts == {f"/{BUCKET}/{key}": 1 for key in written}  # no ?partNumber= part uploads
    assert not s3_server.requests("POST", "run/")  # no multipart upload was ever started
    assert s3_server.multipart_uploads() == []


def test_score_and_report_write_to_the_bucket_and_never_show_credentials(runs, s3_server, capsys):
    assert main(["score", _uri("run")]) == 0
    assert main(["report", _uri("run")]) == 0
    printed = capsys.readouterr().out
    assert "weights: random" in printed and f"{_uri('run')}/results/accuracy.csv" in printed
    results = _relative(s3_server.keys("run/results"), "run")
    assert {"results/accuracy.csv", "results/accuracy.json", "results/report.md",
            "results/acc1_by_family.png"} <= set(results)
    csv = (Location.of(_uri("run")) / "results" / "accuracy.csv").read_text().splitlines()
    assert len(csv) == 1 + len(MODELS) and all(",15,0,0,random," in line for line in csv[1:])
    secrets = (s3_server.secret_key.encode(), s3_server.access_key.encode())
    client = s3_server.client()
    for key in s3_server.keys("run/"):
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert not any(secret in body for secret in secrets), key
    assert s3_server.secret_key not in printed and s3_server.access_key not in printed


def test_a_rerun_resumes_by_listing_without_writing(runs, sample_dir, s3_server):
    before = s3_server.requests("PUT", "run/predictions")
    outcome = run_benchmark(sample_config(sample_dir, _uri("run"), MODELS, shard_size=4),
                            Console(quiet=True))
    assert outcome.failed == {}
    assert s3_server.requests("PUT", "run/predictions") == before


def test_a_foreign_config_is_refused_then_overwritten_without_strays(runs, sample_dir, s3_server):
    folder = Location.of(_uri("run")) / "predictions" / "framework=pytorch" / "model=squeezenet1_1"
    old_key = load_pair(folder).provenance.pair_key
    with pytest.raises(UserError, match="different dataset or config.*--overwrite"):
        run_benchmark(sample_config(sample_dir, _uri("run"), MODELS, shard_size=4, seed=1),
                      Console(quiet=True))
    config = sample_config(sample_dir, _uri("run"), MODELS[:1], shard_size=4, seed=1, overwrite=True)
    assert run_benchmark(config, Console(quiet=True)).failed == {}
    keys = s3_server.keys("run/")
    _only_finished_files(keys, "run")
    shards = [key for key in s3_server.keys("run/predictions") if key.endswith(".parquet")]
    assert len(shards) == len(MODELS) * 4
    assert {read_provenance(path).pair_key for path in folder.files("*.parquet")} != {old_key}
    assert load_pair(folder).positions.tolist() == list(range(15))  # one key, one row an image


def test_a_failure_file_is_written_read_and_cleared_in_the_bucket(s3_server, sample_dir):
    (spec,) = load_catalog().select(MODELS[:1], ["pytorch"])
    dataset = open_dataset(str(sample_dir / "val"), classes=str(sample_dir / "classes.txt"))
    job = _job(RunConfig(data=str(sample_dir / "val"), out=_uri("failed"), weights="random"),
               spec, None, dataset, "run0")
    record_failure(job.out, job, "weights file not cached")
    assert s3_server.keys("failed/") == [
        "failed/predictions/framework=pytorch/model=squeezenet1_1/_failed.json"]
    (row,) = score(_uri("failed"))
    assert (row.status, row.failure, row.missing) == ("failed", "weights file not cached", 15)
    clear_failure(job.out, job)
    assert s3_server.keys("failed/") == []  # and no empty "folder/" marker in its place


def test_driver_killed_then_rerun_puts_each_shard_once(s3_server, sample_dir):
    # Keras in reproducible mode: slow enough per shard to be killed mid-run
    args = _run_args(sample_dir, _uri("killed"), "--shard-size", "1", models=["keras/mobilenet"])
    kill_driver_mid_run(args, lambda: len(_shards(s3_server, "killed")))
    done = _shards(s3_server, "killed")
    assert 4 <= len(done) < 15
    code, out, err = _finish(_cli(args, dict(os.environ)))
    assert code == 0, err
    assert f"already done: {len(done)}" in out
    assert len(_shards(s3_server, "killed")) == 15
    keys = s3_server.keys("killed/predictions")  # and the model's _sanity.json
    puts = s3_server.requests("PUT", "killed/predictions")
    shard_puts = {key: count for key, count in puts.items() if key.endswith(".parquet")}
    assert shard_puts == {f"/{BUCKET}/{key}": 1 for key in keys if key.endswith(".parquet")}
    assert not s3_server.requests("POST", "killed/") and s3_server.multipart_uploads() == []
    _only_finished_files(s3_server.keys("killed/"), "killed")
    assert [(row.images, row.missing) for row in score(_uri("killed"))] == [(15, 0)]
