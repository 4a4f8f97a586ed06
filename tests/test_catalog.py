"""The catalog's 2019 set: the 34 models of the 2019 benchmark, with the 2019 table's figures, and
each builds and predicts; selection and the offline weights error.
(The torchvision and keras sets, and checks over every entry, the 2019 ones included, are in
test_zoo.py.)"""

import csv

import pytest

from runner.catalog import load_catalog
from runner.errors import UserError

from .helpers import KERAS_SLOW, SHARED, check_predictions, offline_weight_caches, probe

KERAS = ["densenet121", "densenet169", "densenet201", "mobilenet", "mobilenetV2", "nasnetmobile",
         "resnet50", "vgg16", "vgg19", "xception", "inceptionresnetv2", "inceptionv3",
         "nasnetlarge"]
PYTORCH = ["alexnet", "densenet121", "densenet161", "densenet169", "densenet201", "inception_v3",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "squeezenet1_0",
           "squeezenet1_1", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
           "vgg19", "vgg19_bn"]

CATALOG = load_catalog()
NORTHCUTT = CATALOG.select(["northcutt2019"])


def test_the_34_models_of_2019():
    assert sorted(s.name for s in NORTHCUTT if s.framework == "keras") == sorted(KERAS)
    assert sorted(s.name for s in NORTHCUTT if s.framework == "pytorch") == sorted(PYTORCH)
    assert len({s.key for s in NORTHCUTT}) == 34
    assert {s.model_set for s in NORTHCUTT} == {"northcutt2019"}


def test_published_2019_figures_match_the_reference_table():
    table = SHARED / "northcutt2019" / "published_table.csv"
    if not table.exists():
        pytest.skip(f"reference table not found at {table}")
    for row in csv.DictReader(table.open()):
        framework = "keras" if row["platform"].startswith("Keras") else "pytorch"
        spec = CATALOG.get(f"{framework}/{row['model']}")
        assert spec.published.northcutt2019 == (float(row["acc1"]), float(row["acc5"]))


def test_every_pytorch_entry_builds_and_predicts():
    check_predictions("pytorch", probe("pytorch", "build_and_predict", PYTORCH))


def test_keras_entries_build_and_predict():
    names = [n for n in KERAS if n not in KERAS_SLOW]
    check_predictions("keras", probe("keras", "build_and_predict", names))


@pytest.mark.slow
def test_heaviest_keras_entries_build_and_predict():
    check_predictions("keras", probe("keras", "build_and_predict", sorted(KERAS_SLOW)))


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("resnet50", ["keras/resnet50", "pytorch/resnet50"]),
        ("pytorch/vgg1?_bn", ["pytorch/vgg11_bn", "pytorch/vgg13_bn", "pytorch/vgg16_bn",
                              "pytorch/vgg19_bn"]),
        ("keras/nasnet*", ["keras/nasnetmobile", "keras/nasnetlarge"]),
    ],
)
def test_selection(pattern, expected):
    assert sorted(s.key for s in CATALOG.select([pattern])) == sorted(expected)
    assert len(CATALOG.select(["northcutt2019"])) == 34


def test_unknown_model_suggests_names():
    with pytest.raises(UserError, match=r"unknown model 'resnet51'.*did you mean 'resnet50'"):
        CATALOG.select(["resnet51"])
    with pytest.raises(UserError, match="unknown framework 'torch'"):
        CATALOG.select(["resnet50"], frameworks=["torch"])


@pytest.mark.parametrize("framework, name", [("pytorch", "squeezenet1_1"), ("keras", "mobilenet")])
def test_missing_weights_offline_is_one_clear_error(tmp_path, framework, name):
    env = offline_weight_caches(tmp_path)
    (result,) = probe(framework, "load_pretrained", [name], env=env).values()
    assert result["type"] == "WeightsUnavailable"
    cache = tmp_path / ("torch/hub/checkpoints" if framework == "pytorch" else "keras/models")
    assert f"weights file {cache}/" in result["error"]
    assert "make weights" in result["error"] and "\n" not in result["error"]


# Each architecture the 2019 benchmark ran in both frameworks, as (Keras name, PyTorch name).
PAIRS_2019 = {("densenet121", "densenet121"), ("densenet169", "densenet169"),
              ("densenet201", "densenet201"), ("resnet50", "resnet50"), ("vgg16", "vgg16"),
              ("vgg19", "vgg19"), ("inceptionv3", "inception_v3")}


def test_arch_pairs_the_same_network_across_frameworks():
    for spec in CATALOG.specs:
        if spec.model_set in ("northcutt2019", "torchvision", "keras"):
            assert spec.arch, spec.key
    keras = {s.arch: s.name for s in NORTHCUTT if s.framework == "keras"}
    pytorch = {s.arch: s.name for s in NORTHCUTT if s.framework == "pytorch"}
    assert {(keras[arch], pytorch[arch]) for arch in keras.keys() & pytorch.keys()} == PAIRS_2019
    assert CATALOG.get("keras/ResNet50").arch == CATALOG.get("pytorch/resnet50.IMAGENET1K_V1").arch
    assert CATALOG.get("keras/ResNet50V2").arch != CATALOG.get("keras/ResNet50").arch
    # a 2019 entry and its twin under the framework's own name share the key
    for spec in NORTHCUTT:
        twin = (f"pytorch/{spec.builder}.IMAGENET1K_V1" if spec.framework == "pytorch"
                else f"keras/{spec.builder}")
        assert CATALOG.get(twin).arch == spec.arch, spec.key
    # every Keras architecture that torchvision also has uses torchvision's builder name
    builders = {s.builder for s in CATALOG.specs if s.framework == "pytorch"}
    shared = {s.arch for s in CATALOG.specs if s.framework == "keras"} & builders
    assert {"resnet50", "efficientnet_b0", "efficientnet_v2_s", "convnext_tiny", "mobilenet_v3_large",
            "densenet121", "inception_v3", "vgg16"} <= shared
