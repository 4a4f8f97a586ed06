"""The model zoo: every torchvision ImageNet-1K classification weight and every keras.applications
ImageNet model, each with its documented accuracy and evaluation, checked against the installed
frameworks.

- schema: every entry (all sets) is complete and valid, and each 2019 entry equals its twin in
  the torchvision or keras set (the same weights under the framework's own name);
- coverage: the installed torchvision/Keras has nothing the catalog lacks (and torchvision.yaml is
  exactly what runner/catalog/generate.py makes from the installed torchvision);
- preprocessing fidelity: kpbench's input tensor equals torchvision's weights.transforms() on the
  same PIL image, per distinct recipe, and Keras' own preprocess_input, per entry;
- builds and Keras weight file names: a CI-sized subset here (the 2019 entries build in
  test_catalog.py); every entry under `make test-all-models` (marker all_models), which reports
  every failing model, not only the first.
"""

from __future__ import annotations

import difflib
import re
import subprocess

import pytest
import yaml

from runner.catalog import PROTOCOLS, SET_NAMES, load_catalog

from .helpers import KERAS_SLOW, ROOT, ProbeFailed, check_predictions, prediction_problems, probe

CATALOG = load_catalog()
CATALOG_DIR = ROOT / "runner" / "catalog"
TORCHVISION = CATALOG.select(["torchvision"])
KERAS = CATALOG.select(["keras"])
# the frameworks' own zoos and the 2019 set; the timm set is checked in test_timm.py
ZOO = [spec for spec in CATALOG.specs if spec.source is None]

# CI subset: one of each kind of thing the zoo adds beyond the 2019 models (every 2019 entry
# builds in test_catalog.py): new families, bicubic and non-224 inputs, builder_kwargs (ViT at
# 384, GoogLeNet), in-model preprocessing (Keras). A few seconds each on 2 CPU cores.
CI_PYTORCH = [
    "googlenet.IMAGENET1K_V1", "mobilenet_v2.IMAGENET1K_V2", "mobilenet_v3_small.IMAGENET1K_V1",
    "mnasnet0_5.IMAGENET1K_V1", "shufflenet_v2_x0_5.IMAGENET1K_V1", "regnet_y_400mf.IMAGENET1K_V2",
    "resnext50_32x4d.IMAGENET1K_V2", "efficientnet_b0.IMAGENET1K_V1", "efficientnet_v2_s.IMAGENET1K_V1",
    "convnext_tiny.IMAGENET1K_V1", "swin_v2_t.IMAGENET1K_V1", "maxvit_t.IMAGENET1K_V1",
    "vit_b_16.IMAGENET1K_SWAG_E2E_V1",
]
CI_KERAS = ["EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny", "MobileNetV3Small", "ResNet50V2"]


# ---- schema ----

@pytest.mark.parametrize("spec", ZOO, ids=lambda s: s.key)
def test_every_entry_is_complete_and_valid(spec):
    assert spec.model_set in SET_NAMES and spec.model_set != "all"
    assert set(spec.recipes) == set(PROTOCOLS)
    for recipe in spec.recipes.values():
        assert recipe.output_size == spec.input_size
    assert spec.num_params > 100_000 and spec.documented_source
    acc1, acc5 = spec.published.documented
    assert 0 < acc1 < 100 and (acc5 is None or acc1 < acc5 < 100)
    assert (spec.published.northcutt2019 is not None) == (spec.model_set == "northcutt2019")
    if spec.framework == "pytorch":
        assert re.fullmatch(r"\w+_Weights\.IMAGENET1K_\w+", spec.weights_id)
        assert len(spec.mean) == len(spec.std) == 3 and min(spec.std) > 0
    else:
        assert spec.weights_id == "imagenet" and spec.weights_file.endswith(".h5")
        assert spec.preprocess in ("caffe", "tf", "torch", "none")
    if spec.model_set == "northcutt2019":
        acc1_2019, acc5_2019 = spec.published.northcutt2019
        assert 0 < acc1_2019 < acc5_2019 < 100 and acc5 is not None


# What a 2019 entry shares with its twin. Not gflops (the keras set has none: keras.io gives no
# figure) nor builder_kwargs (only random-weight builds use them).
TWIN_FIELDS = ("builder", "weights_id", "weights_file", "input_size", "num_params", "preprocess",
               "mean", "std", "recipes", "documented_source")


@pytest.mark.parametrize("spec", CATALOG.select(["northcutt2019"]), ids=lambda s: s.key)
def test_each_2019_entry_is_its_twin_under_another_name(spec):
    """The 2019 entries are hand-written; their twins are generated from the installed
    torchvision (checked below) or checked against Keras, so this checks the 2019 ones too."""
    if spec.framework == "pytorch":
        assert spec.weights_id.endswith(".IMAGENET1K_V1")
        twin = CATALOG.get(f"pytorch/{spec.builder}.IMAGENET1K_V1")
        assert spec.gflops == twin.gflops
    else:
        twin = CATALOG.get(f"keras/{spec.builder}")
    assert {field: getattr(spec, field) for field in TWIN_FIELDS} == {
        field: getattr(twin, field) for field in TWIN_FIELDS}
    assert spec.published.documented == twin.published.documented


def test_names_are_unique_and_follow_the_frameworks():
    assert len({s.key for s in ZOO}) == len(ZOO) == 188
    assert len(CATALOG.specs) == 188 + len(CATALOG.select(["timm"]))
    for spec in TORCHVISION:
        assert spec.name == f"{spec.builder}.{spec.weights_id.split('.')[1]}"
    assert len({s.weights_id for s in TORCHVISION}) == len(TORCHVISION) == 114
    for spec in KERAS:
        assert spec.name == spec.builder
    assert len(KERAS) == 40


def test_published_accuracy_documents_its_source():
    sources = {s.documented_source for s in KERAS}
    assert all("keras.io" in source for source in sources)
    convnext = [s for s in KERAS if s.family == "convnext"]
    assert convnext and all(s.published.documented[1] is None for s in convnext)  # keras.io: "-"
    assert CATALOG.get("keras/EfficientNetV2L").published.documented == (85.7, 97.5)
    assert CATALOG.get("pytorch/resnet50.IMAGENET1K_V2").published.documented == (80.858, 95.434)


# ---- sets and selection ----

@pytest.mark.parametrize(
    "pattern, count",
    [("all", 188), ("northcutt2019", 34), ("torchvision", 114), ("keras", 40),
     ("*.IMAGENET1K_V2", 24), ("pytorch/vit_*", 10), ("EfficientNet*", 15), ("*SWAG*", 12)],
)
def test_sets_and_globs(pattern, count):
    assert len(CATALOG.select([pattern])) == count


def test_sets_come_from_the_catalog_files():
    assert {s.key for s in CATALOG.select(["keras"])} == {f"keras/{s.builder}" for s in KERAS}
    assert {s.framework for s in TORCHVISION} == {"pytorch"}
    assert [s.key for s in CATALOG.select(["resnet50.IMAGENET1K_V2", "ResNet50"])] == [
        "pytorch/resnet50.IMAGENET1K_V2", "keras/ResNet50"]


# ---- coverage: the installed frameworks have nothing the catalog lacks ----

@pytest.fixture(scope="module")
def torchvision_facts():
    return probe("pytorch", "torchvision_catalog", [])


def test_torchvision_yaml_is_what_the_installed_torchvision_gives(torchvision_facts):
    committed = (CATALOG_DIR / "torchvision.yaml").read_text()
    if committed != torchvision_facts["yaml"]:
        diff = "".join(list(difflib.unified_diff(
            committed.splitlines(True), torchvision_facts["yaml"].splitlines(True),
            "committed torchvision.yaml", "generated from the installed torchvision"))[:60])
        pytest.fail("runner/catalog/torchvision.yaml is stale: run `make catalog` and commit it\n" + diff)


def test_every_torchvision_classification_weight_is_an_entry_or_excluded(torchvision_facts):
    document = yaml.safe_load((CATALOG_DIR / "torchvision.yaml").read_text())
    excluded = set(document["excluded"])
    installed = set(torchvision_facts["weights"])
    entries = {s.name for s in TORCHVISION}
    assert not installed - entries - excluded, "not in the catalog: add them (make catalog)"
    assert not entries - installed, "catalog entries the installed torchvision does not have"
    assert excluded <= installed and not excluded & entries


def test_every_keras_application_is_an_entry():
    installed = set(probe("keras", "keras_applications", []))
    assert installed == {s.builder for s in KERAS}, installed ^ {s.builder for s in KERAS}


# ---- preprocessing fidelity ----

def _one_per_distinct_torch_recipe() -> dict[str, list[str]]:
    groups: dict[tuple, list[str]] = {}
    for spec in ZOO:
        if spec.framework == "pytorch":
            groups.setdefault((spec.recipe("reference"), spec.mean, spec.std), []).append(spec.name)
    return {names[0]: names for names in groups.values()}


def test_torch_input_equals_weights_transforms_on_the_same_pil_image(sample_dir):
    """For each distinct (resize, crop, interpolation, mean, std) of the catalog: 27 of them,
    from 256/224 bilinear to 518/518 bicubic, ImageNet mean/std and EfficientNetV2-L's 0.5.
    transforms() resizes a PIL image with PIL (antialiased), as the recipes do, and then does
    the same float arithmetic as the adapter: the tensors are identical."""
    groups = _one_per_distinct_torch_recipe()
    assert len(groups) == 27
    images = sorted(str(p) for p in (sample_dir / "val").glob("*/*.JPEG"))
    worst = probe("pytorch", "torch_preprocess_fidelity", {"entries": sorted(groups), "images": images})
    assert worst == {name: 0.0 for name in groups}


def test_keras_input_equals_each_applications_preprocess_input():
    """Every Keras entry's mode (caffe, tf, torch, none) against its own module's preprocess_input."""
    results = probe("keras", "keras_preprocess_fidelity", {"entries": [s.name for s in ZOO
                                                                       if s.framework == "keras"]})
    assert {name: r["max_diff"] for name, r in results.items()} == dict.fromkeys(results, 0.0)
    modes = {r["module"]: CATALOG.get(f"keras/{name}").preprocess for name, r in results.items()}
    assert {module for module, mode in modes.items() if mode == "none"} == {
        "efficientnet", "efficientnet_v2", "convnext", "mobilenet_v3"}


# ---- builds and Keras weight files: a CI subset; everything under `make test-all-models` ----

def test_ci_subset_of_pytorch_entries_builds_and_predicts():
    check_predictions("pytorch", probe("pytorch", "build_and_predict", CI_PYTORCH))


def test_ci_subset_of_keras_entries_builds_and_predicts():
    check_predictions("keras", probe("keras", "build_and_predict", CI_KERAS))


def _names(framework: str, model_set: str = "all") -> list[str]:
    return [s.name for s in CATALOG.select([model_set], [framework])]


@pytest.mark.parametrize("names", [
    # the 2019 entries (without the two heaviest builds) and the CI subset of the zoo
    pytest.param([n for n in _names("keras", "northcutt2019") if n not in KERAS_SLOW] + CI_KERAS,
                 id="ci"),
    pytest.param(_names("keras"), id="all", marks=pytest.mark.all_models),
])
def test_keras_weight_file_names_are_the_ones_keras_downloads(names):
    requested = probe("keras", "keras_weight_files", names, timeout=3600)
    catalog = {name: CATALOG.get(f"keras/{name}").weights_file for name in names}
    wrong = {name: (file, catalog[name]) for name, file in requested.items() if file != catalog[name]}
    assert requested.keys() == catalog.keys()
    assert not wrong, f"(requested by Keras, in the catalog): {wrong}"


# Models per child process: bounds a process's memory (the largest entries are ~2.5 GB each).
ALL_MODELS_CHUNK = {"pytorch": 12, "keras": 6}


@pytest.mark.all_models
def test_every_entry_builds_and_predicts():
    """Every entry, ALL_MODELS_CHUNK per child process; the problems of every chunk of both
    frameworks are collected, and the test fails once, listing every failing model."""
    problems = []
    for framework, size in ALL_MODELS_CHUNK.items():
        names = _names(framework)
        for chunk in [names[i : i + size] for i in range(0, len(names), size)]:
            try:
                results = probe(framework, "build_and_predict", chunk, timeout=3600)
            except (ProbeFailed, subprocess.TimeoutExpired) as exc:  # died or hung: unchecked
                last = (str(exc).strip().splitlines() or ["no output"])[-1]
                problems.append(f"{framework}: {', '.join(chunk)}: not checked, their process "
                                f"failed: {last}")
                continue
            problems += prediction_problems(framework, results)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
