"""Never lose or duplicate a prediction: bad images, dying actors, missing weights, killed drivers."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from PIL import Image
from rich.console import Console

from runner.config import load_config
from runner.run.driver import run_benchmark
from runner.score.reduce import score

from .helpers import ROOT, offline_weight_caches, probe, read_predictions

MODELS = ["pytorch/squeezenet1_1", "keras/mobilenet"]


def _rows(out):
    return read_predictions(out).to_pandas()


def _one_row_per_image(out, images):
    frame = _rows(out)
    for _, group in frame.groupby(["framework", "model"]):
        assert sorted(group.position) == list(range(images))
    return frame


# file name -> (expected status, a word the reason must contain)
BAD_IMAGES = {
    "a_truncated.JPEG": ("error", "truncated"),
    "b_empty.JPEG": ("error", "cannot identify"),
    "c_text.JPEG": ("error", "cannot identify"),
    "d_png_bytes.JPEG": ("ok", None),
    "e_cmyk.JPEG": ("ok", None),
    "f_gray.JPEG": ("ok", None),
    "g_sixteen_bit.png": ("ok", None),
    "h_palette_transparent.png": ("ok", None),
    "i_huge.JPEG": ("error", "DecompressionBomb"),
    "j_fine.JPEG": ("ok", None),
}


def _write_bad_images(folder):
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    photo.save(folder / "j_fine.JPEG")
    data = (folder / "j_fine.JPEG").read_bytes()
    (folder / "a_truncated.JPEG").write_bytes(data[: len(data) // 2])
    (folder / "b_empty.JPEG").write_bytes(b"")
    (folder / "c_text.JPEG").write_text("this is not an image\n")
    photo.save(folder / "d_png_bytes.JPEG", format="PNG")
    photo.convert("CMYK").save(folder / "e_cmyk.JPEG")
    photo.convert("L").save(folder / "f_gray.JPEG")
    Image.fromarray(rng.integers(0, 65535, (300, 400)).astype(np.uint16)).save(folder / "g_sixteen_bit.png")
    photo.convert("P").save(folder / "h_palette_transparent.png", transparency=0)
    Image.new("L", (12000, 9000)).save(folder / "i_huge.JPEG", quality=10)  # over PIL's bomb limit


def test_bad_images_each_get_a_row_with_the_right_status(local_ray, tmp_path):
    folder = tmp_path / "val" / "n00000007"
    folder.mkdir(parents=True)
    _write_bad_images(folder)
    classes = tmp_path / "classes.txt"
    classes.write_text("".join(f"n{i:08d}\n" for i in range(1000)))
    config = load_config(None, {"data": str(tmp_path / "val"), "classes": str(classes),
                                "out": str(tmp_path / "out"), "models": MODELS,
                                "weights": "random", "shard_size": 4})
    assert run_benchmark(config, Console(quiet=True)).failed == {}
    frame = _one_row_per_image(tmp_path / "out", len(BAD_IMAGES))
    for row in frame.itertuples():
        name = row.image_id.split("/")[1]
        status, reason = BAD_IMAGES[name]
        assert row.status == status, name
        if reason:
            assert reason in row.error, (name, row.error)
        else:
            assert pd.isna(row.error) and len(row.top5_class) == 5
    for table_row in score(tmp_path / "out"):
        assert (table_row.images, table_row.errors) == (6, 4)


def test_actors_that_die_mid_shard_are_restarted_and_redo_it(local_ray, sample_dir, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("KPBENCH_FAULT_AFTER_SHARDS", "1")
    monkeypatch.setenv("KPBENCH_FAULT_DIR", str(tmp_path))
    config = load_config(None, {"data": str(sample_dir / "val"),
                                "classes": str(sample_dir / "classes.txt"),
                                "out": str(tmp_path / "out"), "models": MODELS,
                                "weights": "random", "shard_size": 4})
    assert run_benchmark(config, Console(quiet=True)).failed == {}
    assert sorted(p.name for p in tmp_path.glob("*.crashed")) == [
        "keras-mobilenet.crashed", "pytorch-squeezenet1_1.crashed"
    ]  # each actor really died once, in its second shard
    frame = _one_row_per_image(tmp_path / "out", 15)
    assert (frame.status == "ok").all()


def _cli(args, env, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def _finish(process, timeout=600):
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    finally:
        _kill_group(process)


def _kill_group(process):
    """Ray processes a SIGKILLed driver leaves behind share its process group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_missing_weights_fail_only_their_pair(sample_dir, tmp_path):
    env = {**os.environ, **offline_weight_caches(tmp_path)}
    probe("pytorch", "save_random_checkpoint", ["squeezenet1_1"], env=env)  # cached; keras is not
    code, out, err = _finish(_cli(
        ["run", "--data", str(sample_dir / "val"), "--classes", str(sample_dir / "classes.txt"),
         "--out", str(tmp_path / "out"), "--models", *MODELS, "--weights", "pretrained",
         "--shard-size", "8"], env))
    assert code == 1, err
    assert "failed keras/mobilenet: keras/mobilenet: weights file" in " ".join(out.split())
    rows = {row.model: row for row in score(tmp_path / "out")}
    assert rows["squeezenet1_1"].status == "ok" and rows["squeezenet1_1"].images == 15
    assert rows["mobilenet"].status == "failed" and "not cached" in rows["mobilenet"].failure
    assert rows["mobilenet"].missing == 15 and np.isnan(rows["mobilenet"].acc1)


def kill_driver_mid_run(args, shards_written, at_least: int = 4) -> None:
    """Start `kpbench ARGS`, SIGKILL its driver once shards_written() reaches `at_least`, and give
    the shards its orphaned actors have in flight time to land or die."""
    first = _cli(args, dict(os.environ))
    try:
        deadline = time.time() + 300
        while shards_written() < at_least:
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline, "no shards written"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)  # the driver only
        first.wait()
        time.sleep(2)
    finally:
        _kill_group(first)


def test_driver_killed_then_rerun_finishes_without_redoing_or_duplicating(sample_dir, tmp_path):
    args = ["run", "--data", str(sample_dir / "val"), "--classes", str(sample_dir / "classes.txt"),
            "--out", str(tmp_path / "out"), "--models", *MODELS, "--weights", "random",
            "--shard-size", "1"]
    kill_driver_mid_run(args, lambda: len(list((tmp_path / "out").rglob("*.parquet"))))
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.parquet")}
    assert 4 <= len(before) < 30
    code, out, err = _finish(_cli(args, dict(os.environ)))
    assert code == 0, err
    assert f"already done: {len(before)}" in out
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished shards not redone
    _one_row_per_image(tmp_path / "out", 15)  # and nothing twice
    assert not list((tmp_path / "out").rglob("*.tmp"))
