"""Users' own models (--catalog FILE.yaml): each bad entry is one clear line before Ray starts;
what an entry derives; the builder's source in the pair key. (Running them: test_real_weights.py.)"""

from __future__ import annotations

import pytest

from runner.catalog import load_catalog
from runner.cli import main
from runner.errors import UserError
from runner.plan.pairs import plan_run
from runner.predictions import PairRecord
from runner.score.reduce import _protocol

from .helpers import sample_config

BUILDER = "def lite0():\n    raise RuntimeError('not called while checking the catalog')\n"
ENTRY = """\
  - framework: pytorch
    name: efficientnet_lite0
    builder: my_models.py:lite0
    input_size: 224
    mean: [0.5, 0.5, 0.5]
    std: [0.5, 0.5, 0.5]
    recipes: {reference: {resize: shorter_side, size: 256, crop: 224, interpolation: bicubic}}
"""


def _catalog(tmp_path, entries: str = ENTRY, header: str = "set: mine\n", builder: str = BUILDER):
    (tmp_path / "my_models.py").write_text(builder)
    path = tmp_path / "mine.yaml"
    path.write_text(header + "models:\n" + entries)
    return path


def _one_error_line(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kpbench: error: "), lines
    return lines[0]


BAD_ENTRIES = {
    "missing field": (ENTRY.replace("    input_size: 224\n", ""), "input_size: Field required"),
    "unknown field": (ENTRY + "    weights: imagenet\n", "weights: Extra inputs are not permitted"),
    "pytorch without mean/std": (ENTRY.replace("    mean: [0.5, 0.5, 0.5]\n", ""),
                                 "pytorch entries take preprocess 'torch' with a mean and std"),
    "unknown framework": (ENTRY.replace("framework: pytorch", "framework: jax"),
                          "framework: Input should be"),
    "no reference recipe": (ENTRY.replace("recipes: {reference:", "recipes: {northcutt2019:"),
                            "every entry needs recipes.reference"),
    "bad recipe": (ENTRY.replace("bicubic", "lanczos"), "recipes.reference.interpolation"),
    "builder without function": (ENTRY.replace("my_models.py:lite0", "my_models.py"),
                                 "builder: String should match"),
    "builder file missing": (ENTRY.replace("my_models.py", "missing.py"), "builder file not found:"),
    "builder function missing": (ENTRY.replace(":lite0", ":lite9"), "builder 'lite9' is not defined in"),
    "builder module missing": (ENTRY.replace("my_models.py:lite0", "no_such_package.models:lite0"),
                               "cannot import builder module 'no_such_package.models'"),
    "name clash with the catalog": (ENTRY.replace("name: efficientnet_lite0", "name: resnet50"),
                                    "pytorch/resnet50 is already in the catalog's northcutt2019 set"),
    "name twice": (ENTRY + ENTRY, "pytorch/efficientnet_lite0 is already in"),
    "entry not a mapping": ("  - just a string\n", "an entry is not a mapping"),
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_a_bad_entry_is_one_line(tmp_path, capsys, case):
    entries, expected = BAD_ENTRIES[case]
    line = _one_error_line(capsys, "models", "--catalog", str(_catalog(tmp_path, entries)))
    assert expected in line
    assert str(tmp_path / "mine.yaml") in line


def test_a_set_named_like_a_built_in_set_is_one_line(tmp_path, capsys):
    path = _catalog(tmp_path, header="set: timm\n")
    assert "set 'timm' is a built-in set name" in _one_error_line(capsys, "models", "--catalog", str(path))


def test_an_unparsable_builder_file_is_one_line(tmp_path, capsys):
    path = _catalog(tmp_path, builder="def lite0(:\n")
    assert "does not parse: line 1" in _one_error_line(capsys, "models", "--catalog", str(path))


def test_a_missing_catalog_file_is_one_line(tmp_path, capsys):
    line = _one_error_line(capsys, "models", "--catalog", str(tmp_path / "nothing.yaml"))
    assert "catalog file not found" in line


def test_run_refuses_a_bad_catalog_before_ray_starts(tmp_path, capsys, sample_dir):
    path = _catalog(tmp_path, ENTRY.replace(":lite0", ":lite9"))
    line = _one_error_line(capsys, "run", "--catalog", str(path), "--models", "mine", "--weights",
                           "random", "--data", str(sample_dir / "val"), "--classes",
                           str(sample_dir / "classes.txt"), "--out", str(tmp_path / "out"))
    assert "builder 'lite9' is not defined" in line


# ---- what entries derive ----

def test_an_entry_needs_only_the_essentials(tmp_path):
    (spec,) = load_catalog().with_user_catalogs([str(_catalog(tmp_path))]).select(["mine"])
    assert (spec.key, spec.source, spec.model_set, spec.family) == (
        "pytorch/efficientnet_lite0", "user", "mine", "mine")
    assert spec.builder == f"{tmp_path / 'my_models.py'}:lite0"  # relative to the YAML
    assert spec.preprocess == "torch" and spec.num_params is None and len(spec.builder_sha256) == 64
    # selected like built-in entries: by set, name and glob, and in `all`
    catalog = load_catalog().with_user_catalogs([str(tmp_path / "mine.yaml")])
    for pattern in ("mine", "efficientnet_lite0", "pytorch/efficientnet_lite*", "all"):
        assert spec in catalog.select([pattern]), pattern


def test_a_keras_entry_defaults_to_in_model_preprocessing(tmp_path):
    entry = ("  - {framework: keras, name: tiny, builder: my_models.py:lite0, input_size: 32,\n"
             "     recipes: {reference: {resize: squash, size: 32, interpolation: bilinear}}}\n")
    (spec,) = load_catalog().with_user_catalogs([str(_catalog(tmp_path, entry))]).select(["mine"])
    assert spec.preprocess == "none"


def test_without_a_northcutt2019_recipe_the_reference_recipe_runs_and_the_table_says_so(tmp_path):
    (spec,) = load_catalog().with_user_catalogs([str(_catalog(tmp_path))]).select(["mine"])
    assert spec.recipe("northcutt2019") == spec.recipe("reference")
    record = {"framework": "pytorch", "model": spec.name, "run_id": "r", "weights": "pretrained",
              "protocol": "northcutt2019", "dataset": {"images": 1}, "spec": spec.model_dump(mode="json")}
    assert _protocol(PairRecord.model_validate(record)) == "northcutt2019 (reference recipe)"
    assert _protocol(PairRecord.model_validate({**record, "protocol": "reference"})) == "reference"


def test_the_builder_source_enters_the_pair_key(tmp_path, sample_dir):
    path = _catalog(tmp_path)

    def keys() -> dict[str, str]:
        cfg = sample_config(sample_dir, tmp_path / "out", ["mine", "resnet18"], catalog=[str(path)])
        return {plan.job.spec.name: plan.job.pair_key for plan in plan_run(cfg)[1]}

    before = keys()
    (tmp_path / "my_models.py").write_text(BUILDER + "# an edit\n")
    after = keys()
    assert after["efficientnet_lite0"] != before["efficientnet_lite0"]
    assert after["resnet18"] == before["resnet18"]


def test_built_in_specs_dump_as_before():
    """New spec fields stay out of the dump (and so out of pair keys) while unset."""
    for name in ("pytorch/resnet50", "pytorch/resnet50.IMAGENET1K_V2", "keras/ResNet50"):
        dump = load_catalog().get(name).model_dump(mode="json")
        assert "source" not in dump and "builder_sha256" not in dump


def test_the_strict_check_needs_the_check(sample_dir, tmp_path):
    with pytest.raises(UserError, match="strict_sanity needs the sanity check"):
        sample_config(sample_dir, tmp_path, ["resnet18"], sanity=False, strict_sanity=True)

