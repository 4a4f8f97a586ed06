"""The timm set: every timm pretrained tag with an ImageNet-1k head, generated from the installed
timm and timm's published results, preprocessed exactly as timm evaluates, loaded through the
Hugging Face cache, and run end to end (random weights) on Ray."""

from __future__ import annotations

import csv
import difflib
import importlib.metadata
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from runner.catalog import PROTOCOLS, Catalog, load_catalog
from runner.config import RunConfig
from runner.plan.pairs import _job, plan_run
from runner.run.driver import run_benchmark
from runner.score.reduce import score

from .helpers import SHARED, probe, sample_config

CATALOG = load_catalog()
TIMM = CATALOG.select(["timm"])
RESULTS = SHARED / "timm" / "results-imagenet.csv"
TIMM_YAML = Path(__file__).resolve().parents[1] / "runner" / "catalog" / "timm.yaml"
# Small timm tags for the run: timm's own test models (160 px) and a small MobileNetV3.
RUN_MODELS = ["test_resnet.r160_in1k", "test_vit.r160_in1k", "mobilenetv3_small_050.lamb_in1k"]


def test_every_tag_with_an_imagenet_head_is_an_entry():
    assert len(TIMM) >= 1300
    assert {spec.model_set for spec in TIMM} == {"timm"} and {s.framework for s in TIMM} == {"pytorch"}
    assert {spec.source for spec in TIMM} == {"timm"}
    for spec in TIMM:
        assert spec.name.startswith(spec.builder + ".")
        assert set(spec.recipes) == set(PROTOCOLS)
        assert all(recipe.output_size == spec.input_size for recipe in spec.recipes.values())
        # a Hugging Face repository named by the tag, or (a few tags) a URL
        assert spec.weights_id.startswith("https://") or spec.weights_id.split("/")[1] == spec.name
        assert len(spec.mean) == len(spec.std) == 3 and min(spec.std) > 0
        if spec.published.documented:
            acc1, acc5 = spec.published.documented
            assert 0 < acc1 < acc5 < 100 and spec.num_params > 100_000


def test_timm_yaml_is_what_the_installed_timm_gives():
    if not RESULTS.exists():
        pytest.skip(f"timm's results table not found at {RESULTS}")
    generated = probe("pytorch", "timm_catalog", {"results": str(RESULTS)})["yaml"]
    committed = TIMM_YAML.read_text()
    if committed != generated:
        diff = "".join(list(difflib.unified_diff(
            committed.splitlines(True), generated.splitlines(True),
            "committed timm.yaml", "generated from the installed timm"))[:60])
        pytest.fail("runner/catalog/timm.yaml is stale: run `make catalog` and commit it\n" + diff)


def test_documented_figures_are_timms_at_the_default_input_size():
    if not RESULTS.exists():
        pytest.skip(f"timm's results table not found at {RESULTS}")
    rows: dict[str, list[dict]] = {}
    for row in csv.DictReader(RESULTS.open()):
        rows.setdefault(row["model"], []).append(row)
    two_sizes = without = 0
    for spec in TIMM:
        found = rows.get(spec.name, [])
        two_sizes += len(found) == 2
        at_size = [r for r in found if int(r["img_size"]) == spec.input_size]
        if not at_size:
            without += 1
            assert spec.published.documented is None, spec.name
            continue
        assert spec.published.documented == (float(at_size[0]["top1"]), float(at_size[0]["top5"]))
    assert (two_sizes, without) == (290, 55)
    assert "timm results-imagenet.csv" in CATALOG.get("pytorch/resnet50.a1_in1k").documented_source


def _one_per_distinct_recipe() -> dict[str, list[str]]:
    groups: dict[tuple, list[str]] = {}
    for spec in TIMM:
        groups.setdefault((spec.recipe("reference"), spec.mean, spec.std), []).append(spec.name)
    return {names[0]: names for names in groups.values()}


def test_every_distinct_recipe_equals_timms_create_transform(sample_dir):
    """One entry per distinct (recipe, mean, std): shorter-side and squash crops, crop_pct under
    and over 1 (a padded crop), 106 to 800 px, bilinear and bicubic, five normalisations."""
    groups = _one_per_distinct_recipe()
    recipes = {CATALOG.get(f"pytorch/{name}").recipe("reference") for name in groups}
    assert {r.resize for r in recipes} == {"shorter_side", "squash"}
    assert any(r.crop and r.crop > r.size for r in recipes)  # crop_pct > 1
    by_size = {}
    for path in sorted((sample_dir / "val").glob("*/*.JPEG")):
        with Image.open(path) as image:
            by_size.setdefault(image.size, str(path))
    # a portrait photo size, and a small landscape one that every recipe enlarges
    images = [by_size[(375, 500)], by_size[(160, 120)]]
    worst = probe("pytorch", "timm_preprocess_fidelity", {"entries": sorted(groups), "images": images})
    assert len(worst) == len(groups) > 100
    assert worst == dict.fromkeys(groups, 0.0)


# ---- selection: timm is opt-in ----

@pytest.mark.parametrize("pattern", ["all", "torchvision", "keras", "northcutt2019", "pytorch/resnet*",
                                     "resnet50", "*.IMAGENET1K_V2", "EfficientNet*"])
def test_existing_selections_select_what_they_did_before_timm(pattern):
    before = Catalog([spec for spec in CATALOG.specs if spec.model_set != "timm"])
    assert [s.key for s in CATALOG.select([pattern])] == [s.key for s in before.select([pattern])]


def test_the_default_run_selects_what_it_did_before_timm():
    before = Catalog([spec for spec in CATALOG.specs if spec.model_set != "timm"])
    default = RunConfig.model_fields["models"].default
    assert CATALOG.select(default) == before.select(default)
    assert not any(spec.model_set == "timm" for spec in CATALOG.select(default))


def test_timm_entries_are_reached_by_set_tag_and_globs():
    assert [s.key for s in CATALOG.select(["resnet50.a1_in1k"])] == ["pytorch/resnet50.a1_in1k"]
    assert [s.key for s in CATALOG.select(["pytorch/resnet50.a1_in1k"])] == ["pytorch/resnet50.a1_in1k"]
    globbed = CATALOG.select(["timm/resnet50.*"])
    assert len(globbed) > 5 and {s.model_set for s in globbed} == {"timm"}
    assert {s.key for s in CATALOG.select(["*.a1_in1k"])} >= {"pytorch/resnet50.a1_in1k"}
    assert len(CATALOG.select(["timm"])) == len(TIMM)


# ---- pair keys ----

def test_timm_version_enters_the_pair_key_of_timm_entries_only(sample_dir, tmp_path, monkeypatch):
    cfg = sample_config(sample_dir, tmp_path, ["resnet18", "test_resnet.r160_in1k"])
    dataset, plans = plan_run(cfg)
    keys = {plan.job.spec.name: plan.job.pair_key for plan in plans}
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1")
    again = {plan.job.spec.name: _job(cfg, plan.job.spec, None, dataset, "run").pair_key for plan in plans}
    assert again["resnet18"] == keys["resnet18"]
    assert again["test_resnet.r160_in1k"] != keys["test_resnet.r160_in1k"]


# ---- weights: the Hugging Face cache, offline ----

def test_weights_come_from_the_hugging_face_cache_offline(tmp_path):
    """Missing: one line naming the repository and how to provide it; a stand-in file in the
    cache layout: loaded from there, with HF_HUB_OFFLINE=1."""
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = probe("pytorch", "timm_weights_offline", {"name": "test_resnet.r160_in1k"}, env=env)
    error = result["error"]
    assert error and "\n" not in error
    assert "Hugging Face repository timm/test_resnet.r160_in1k" in error
    assert f"{tmp_path}/hf/hub/models--timm--test_resnet.r160_in1k" in error
    assert "HF_HOME" in error and "make weights" in error
    assert result["loaded"] == result["saved"]


# ---- end to end: random weights on Ray ----

def test_random_weights_run_of_timm_models(ray_two_fake_gpus, sample_dir, tmp_path):
    cfg = sample_config(sample_dir, tmp_path / "run", RUN_MODELS, shard_size=8)
    outcome = run_benchmark(cfg, Console(quiet=True))
    assert outcome.failed == {}
    rows = {row.model: row for row in score(cfg.out)}
    assert sorted(rows) == sorted(RUN_MODELS)
    for name, row in rows.items():
        assert (row.images, row.weights, row.status) == (15, "random", "ok"), name
        assert row.sanity == "failed", name  # random weights never pass the photo check
        documented = CATALOG.get(f"pytorch/{name}").published.documented
        assert (row.published_acc1, row.published_acc5) == (documented or (None, None))
    predictions = sorted((tmp_path / "run" / "predictions").glob("framework=pytorch/model=*/*.parquet"))
    assert len(predictions) == 2 * len(RUN_MODELS)  # 15 images in shards of 8


def test_strict_sanity_stops_a_failing_model(ray_two_fake_gpus, sample_dir, tmp_path):
    cfg = sample_config(sample_dir, tmp_path / "run", RUN_MODELS[:1], strict_sanity=True)
    outcome = run_benchmark(cfg, Console(quiet=True))
    assert list(outcome.failed) == [f"pytorch/{RUN_MODELS[0]}"]
    assert "sanity check failed" in outcome.failed[f"pytorch/{RUN_MODELS[0]}"]
    (row,) = score(cfg.out)
    assert (row.status, row.sanity, row.images) == ("failed", "failed", 0)
