"""Variants (--variants): the grid and its names, bad specs as one line, recipes by timm's rule,
keys of runs without variants unchanged; on Ray: a variant pair predicts bit for bit what a plain
run of a user entry with that recipe predicts, its folder and column, and `kpbench sensitivity`,
whose flip counts are recomputed here from the Parquet files with pyarrow alone."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from runner.catalog import load_catalog
from runner.cli import main
from runner.config import load_config
from runner.data.recipes import Recipe
from runner.errors import UserError
from runner.plan.pairs import plan_run
from runner.plan.variants import parse_variants
from runner.predictions import PairIdentity
from runner.score.stats import paired_difference

from .helpers import (
    pair_folder,
    probe,
    read_pair,
    sample_config,
    sensitivity_from_parquet,
    sensitivity_mismatches,
    write_pair,
)

# ---- no Ray ---------------------------------------------------------------------------------

BASE = Recipe(resize="shorter_side", size=256, crop=224, interpolation="bicubic")


def test_several_keys_form_a_grid_with_canonical_names():
    variants = parse_variants(["interpolation=bilinear,bicubic", "crop_pct=0.875,1"])
    assert [v.name for v in variants] == [
        "crop_pct=0.875,interpolation=bilinear", "crop_pct=1.0,interpolation=bilinear",
        "crop_pct=0.875,interpolation=bicubic", "crop_pct=1.0,interpolation=bicubic"]
    assert variants[1].folder == "variant=crop_pct=1.0,interpolation=bilinear"
    assert parse_variants([]) == []


@pytest.mark.parametrize(("words", "message"), [
    (["crop_pct"], "expected key=value"),
    (["crop=1.0"], "unknown key 'crop' (did you mean 'crop_pct'?)"),
    (["crop_pct=big"], "crop_pct='big': not a number"),
    (["crop_pct=0"], "crop_pct='0': must lie in"),
    (["interpolation=lanczos"], "interpolation='lanczos': one of nearest, bilinear, bicubic"),
    (["precision=fp16"], "precision='fp16': one of fp32, tf32, bf16"),
    (["resizer=cv2"], "resizer='cv2': one of pil, tensor, tensor-noantialias"),
    (["crop_pct=1", "crop_pct=0.9"], "'crop_pct' is given twice"),
    (["crop_pct=1,1.0"], "crop_pct=1.0 is listed twice"),
])
def test_bad_variants_are_one_line(words, message, capsys):
    with pytest.raises(UserError, match="^command line: variants: ") as error:
        load_config(None, {"data": "x", "variants": words})
    assert message in str(error.value) and "\n" not in str(error.value)
    assert main(["run", "--data", "x", "--variants", *words]) == 2
    assert message in capsys.readouterr().err


def test_recipe_changes_follow_timm_and_keras():
    recipe = parse_variants(["crop_pct=0.95"])[0].recipe(BASE)
    assert (recipe.size, recipe.crop, recipe.interpolation) == (math.floor(224 / 0.95), 224, "bicubic")
    assert parse_variants(["crop_pct=1.0"])[0].recipe(BASE).size == 224
    squash = parse_variants(["resize=squash"])[0].recipe(BASE)
    assert (squash.resize, squash.size, squash.crop) == ("squash", 224, None)  # keras load_img
    timm_squash = parse_variants(["resize=squash", "crop_pct=0.875"])[0].recipe(BASE)
    assert (timm_squash.resize, timm_squash.size, timm_squash.crop) == ("squash", 256, 224)
    tensor = parse_variants(["resizer=tensor-noantialias", "interpolation=nearest"])[0].recipe(BASE)
    assert (tensor.resizer, tensor.interpolation, tensor.size) == ("tensor-noantialias", "nearest", 256)


def test_the_resizer_stays_out_of_keys_at_its_default():
    assert "resizer" not in BASE.model_dump(mode="json") and BASE.key == "shorter_side256-crop224-bicubic"
    spec = load_catalog().get("pytorch/resnet50")
    assert "resizer" not in json.dumps(spec.model_dump(mode="json"))
    assert "variant" not in PairIdentity(schema_version=1, dataset="d", spec={}, weights="random",
                                         protocol="reference", seed=0, forward_batch=8).model_dump(
        exclude_defaults=True)
    tensor = Recipe(**BASE.model_dump(), resizer="tensor")
    assert tensor.key == "shorter_side256-crop224-bicubic-tensor"
    assert tensor.model_dump()["resizer"] == "tensor"


def test_tensor_resizers_are_torchvisions_tensor_transforms(sample_dir):
    images = [str(path) for path in sorted((sample_dir / "val").rglob("*.JPEG"))[:6]]
    recipes = {resizer: {"resize": "shorter_side", "size": 73, "crop": 64, "interpolation": interpolation,
                         "resizer": resizer}
               for resizer in ("tensor", "tensor-noantialias") for interpolation in ("bilinear", "bicubic")}
    worst = probe("pytorch", "recipe_fidelity", {"recipes": recipes, "images": images})
    assert worst == dict.fromkeys(recipes, 0)


def test_execution_settings_run_and_stay_close_to_fp32():
    settings = {"bf16": {"precision": "bf16"}, "channels_last": {"channels_last": True}}
    results = probe("pytorch", "execution_settings", {"model": "pytorch/squeezenet1_1", "settings": settings})
    assert results["channels_last"]["max_diff"] < 1e-4 and results["bf16"]["max_diff"] < 0.05


@pytest.mark.slow
def test_torch_compile_runs_on_cpu_or_fails_with_one_line():
    results = probe("pytorch", "execution_settings", {"model": "pytorch/squeezenet1_1",
                                                      "settings": {"compiled": {"torch_compile": True}}})
    compiled = results["compiled"]
    assert ("error" in compiled and compiled["error"].startswith("torch.compile does not run on cpu")
            and "\n" not in compiled["error"]) or compiled["max_diff"] < 1e-4, compiled


def test_paired_interval_holds_the_difference_and_narrows_with_agreement():
    rng = np.random.default_rng(1)
    base = rng.random(2000) < 0.7
    flipped = base.copy()
    flipped[:60] = ~flipped[:60]
    difference, low, high = paired_difference(flipped, base)
    assert low < difference < high and difference == pytest.approx(100 * (flipped.mean() - base.mean()))
    independent = rng.random(2000) < flipped.mean()
    _, low_i, high_i = paired_difference(independent, base)
    assert high - low < high_i - low_i  # pairing: far narrower than for unrelated models
    assert paired_difference(base, base) == (0.0, 0.0, 0.0) or paired_difference(base, base)[0] == 0.0
    assert math.isnan(paired_difference(base[:0], base[:0])[0])


def test_the_parquet_recomputation_has_known_answers(tmp_path):
    """sensitivity_from_parquet (tests/helpers.py) on hand-made files: 12 images, the base pair
    right on 0-7; the variant loses 0-6, gains 8, changes 9's wrong class and cannot read 10."""
    labels = list(range(12))
    base = [[label if label < 8 else 999, 1, 2, 3, 4] for label in labels]
    variant = [list(row) for row in base]
    for i in range(7):
        variant[i][0] = 998
    variant[8][0], variant[9][0], variant[10] = 8, 998, None
    write_pair(tmp_path, "pytorch", "m", labels, base)
    write_pair(tmp_path, "pytorch", "m", labels, variant, errors=(10,), variant="crop_pct=1.0")
    write_pair(tmp_path, "pytorch", "alone", labels, base)  # no variant: not in the table
    figures = sensitivity_from_parquet(tmp_path)
    spread = pytest.approx(100 * 8 / 12 - 100 * 2 / 11)  # each row's Acc@1 over its own images
    assert sorted(figures) == [("m", ""), ("m", "crop_pct=1.0")]
    assert figures[("m", "")] == {"images": 12, "acc1": pytest.approx(100 * 8 / 12), "acc1_diff": None,
                                  "flips": None, "mcnemar_p": None, "spread1": spread}
    # on the 11 images both read: 2 right against 8, 7 lost and 1 gained: p = 2 * 9 / 2**8
    assert figures[("m", "crop_pct=1.0")] == {
        "images": 11, "acc1": pytest.approx(100 * 2 / 11), "acc1_diff": pytest.approx(-100 * 6 / 11),
        "flips": 9, "mcnemar_p": pytest.approx(18 / 256), "spread1": spread}
    rows = [{"model": "m", "variant": "", **figures[("m", "")]},
            {"model": "m", "variant": "crop_pct=1.0", **figures[("m", "crop_pct=1.0")], "flips": 8}]
    assert sensitivity_mismatches(rows, figures) == ["('m', 'crop_pct=1.0') flips: table 8, files 9"]


def test_execution_settings_are_refused_for_keras_models(sample_dir, tmp_path):
    cfg = sample_config(sample_dir, tmp_path / "out", ["keras/mobilenet", "pytorch/resnet18"],
                        variants=["precision=bf16"])
    with pytest.raises(UserError, match=r"--variants precision=bf16 run PyTorch models only, but "
                                        r"keras/mobilenet is selected; add --frameworks pytorch"):
        plan_run(cfg)
    recipe_only = sample_config(sample_dir, tmp_path / "out", ["keras/mobilenet"], variants=["crop_pct=1.0"])
    assert [plan.job.name for plan in plan_run(recipe_only)[1]] == [
        "keras/mobilenet", "keras/mobilenet (crop_pct=1.0)"]


# ---- on Ray ---------------------------------------------------------------------------------

TINY = """\
import torch


def tiny():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1000))
"""
ENTRY = """\
  - framework: pytorch
    name: {name}
    builder: tiny.py:tiny
    input_size: 64
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    recipes: {{reference: {recipe}}}
"""
TINY_RECIPE = "{resize: shorter_side, size: 73, crop: 64, interpolation: bilinear}"
# the recipes of two of the grid's variants, written out by hand: crop_pct 1.0 -> resize to 64
AS_VARIANT = {
    "crop_pct=1.0,interpolation=bicubic,resizer=pil":
        "{resize: shorter_side, size: 64, crop: 64, interpolation: bicubic}",
    "crop_pct=1.0,interpolation=nearest,resizer=tensor-noantialias":
        "{resize: shorter_side, size: 64, crop: 64, interpolation: nearest, resizer: tensor-noantialias}",
}
TOP5 = ["top5_class", "top5_prob"]
# three runs into one folder: each adds its variant, the base pair resumes
RUNS = [["crop_pct=1.0", "interpolation=bicubic", "resizer=pil"],
        ["resizer=tensor-noantialias", "interpolation=nearest", "crop_pct=1.0"],
        ["precision=bf16", "channels_last=true"]]


@pytest.fixture(scope="module")
def runs(ray_two_fake_gpus, sample_dir, tmp_path_factory):
    """Runs of `tiny` with variants into one folder, and a plain run of user entries whose recipes
    are two variants'."""
    from runner.run.driver import run_benchmark

    folder = tmp_path_factory.mktemp("catalog")
    (folder / "tiny.py").write_text(TINY)
    entries = ENTRY.format(name="tiny", recipe=TINY_RECIPE) + "".join(
        ENTRY.format(name=f"tiny_as_{i}", recipe=recipe) for i, recipe in enumerate(AS_VARIANT.values()))
    (folder / "tiny.yaml").write_text("set: tiny\nmodels:\n" + entries)
    catalog = [str(folder / "tiny.yaml")]
    out, plain = tmp_path_factory.mktemp("variants"), tmp_path_factory.mktemp("plain")
    quiet = Console(quiet=True)
    for variants in RUNS:
        cfg = sample_config(sample_dir, out, ["pytorch/tiny"], catalog=catalog, variants=variants,
                            shard_size=8)  # "tiny" alone is also the set: all three entries
        assert run_benchmark(cfg, quiet).failed == {}
    cfg = sample_config(sample_dir, plain, ["tiny_as_*"], catalog=catalog, shard_size=8)
    assert run_benchmark(cfg, quiet).failed == {}
    return out, plain, catalog


def test_a_variant_predicts_bit_for_bit_what_a_user_entry_with_its_recipe_predicts(runs):
    out, plain, _ = runs
    for i, variant in enumerate(AS_VARIANT):
        classes, probs = read_pair(pair_folder(out, "tiny", variant), TOP5).values()
        plain_classes, plain_probs = read_pair(pair_folder(plain, f"tiny_as_{i}"), TOP5).values()
        assert np.array_equal(classes, plain_classes) and np.array_equal(probs, plain_probs)
    _, base_probs = read_pair(pair_folder(out, "tiny"), TOP5).values()
    _, plain_probs = read_pair(pair_folder(plain, "tiny_as_0"), TOP5).values()
    assert not np.array_equal(base_probs, plain_probs)  # it matters


def test_variants_are_folders_below_the_model_with_their_own_keys(runs, sample_dir):
    out, _, _ = runs
    folders = sorted(p.name for p in pair_folder(out, "tiny").glob("variant=*"))
    assert folders == sorted("variant=" + name for name in [*AS_VARIANT, "channels_last=true,precision=bf16"])
    provenance = {p.parent.name: json.loads(pq.read_schema(p).metadata[b"kpbench.provenance"])
                  for p in pair_folder(out, "tiny").rglob("shard-00000.parquet")}
    assert len({document["pair_key"] for document in provenance.values()}) == 4
    assert "variant" not in provenance["model=tiny"]
    bf16 = provenance["variant=channels_last=true,precision=bf16"]
    assert (bf16["variant"], bf16["precision"], bf16["memory_format"]) == (
        "channels_last=true,precision=bf16", "bf16", "channels_last")
    # the base pair's key is the key of a run without variants: it resumed, and so would old runs
    (plan,) = plan_run(sample_config(sample_dir, out, ["pytorch/tiny"], catalog=runs[2], shard_size=8))[1]
    assert plan.job.pair_key == provenance["model=tiny"]["pair_key"] and plan.todo == []
    # the Hive layout reads with pyarrow alone, the base pair's variant null
    table = ds.dataset(out / "predictions", format="parquet", partitioning="hive").to_table()
    variants = pc.unique(table["variant"]).to_pylist()
    assert None in variants and "crop_pct=1.0,interpolation=nearest,resizer=tensor-noantialias" in variants


def test_the_table_has_a_variant_column_only_with_variants(runs):
    out, plain, _ = runs
    assert main(["score", str(out)]) == 0 and main(["score", str(plain)]) == 0
    with open(out / "results" / "accuracy.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[:3] == ["framework", "model", "variant"]
    assert sorted(row["variant"] for row in rows)[0] == "" and len(rows) == 4
    with open(plain / "results" / "accuracy.csv") as file:
        assert "variant" not in file.readline().split(",")
    assert "variant" not in json.loads((plain / "results" / "accuracy.json").read_text())["rows"][0]


def test_sensitivity_flips_match_the_parquet_files(runs, sample_dir, capsys):
    out, _, _ = runs
    assert main(["sensitivity", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kpbench sensitivity" in printed and "(base)" in printed
    rows = json.loads((out / "results" / "sensitivity.json").read_text())["rows"]
    assert [row["variant"] for row in rows][0] == "" and len(rows) == 4
    assert (out / "results" / "sensitivity.png").stat().st_size > 0
    expected = sensitivity_from_parquet(out)  # pyarrow, numpy and scipy alone
    assert sensitivity_mismatches(rows, expected) == []
    images = len(list((sample_dir / "val").rglob("*.JPEG")))
    assert {row["images"] for row in rows} == {images}  # every pair read every image
    for row in rows[1:]:
        assert row["acc1_diff_low"] <= row["acc1_diff"] <= row["acc1_diff_high"]
        assert 0 <= row["mcnemar_p"] <= 1 and row["images_per_s"] > 0
    accuracies = [row["acc1"] for row in rows]
    assert {row["spread1"] for row in rows} == {max(accuracies) - min(accuracies)}


def test_the_report_page_has_the_sensitivity_section(runs):
    out, _, _ = runs
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert '<section id="sensitivity">' in page and "crop_pct=1.0,interpolation=nearest" in page
