"""Bad input: one clear line on stderr, a non-zero exit, and nothing started."""

import shutil

import pytest

from runner.catalog import load_catalog

from .helpers import run_cli


@pytest.fixture
def empty_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _flat_with_wrong_labels(tmp_path, sample_dir):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in list((sample_dir / "val").glob("*/*.JPEG"))[:3]:
        shutil.copy(image, flat / image.name)
    (tmp_path / "labels.csv").write_text("file,label\nother.JPEG,1\n")
    return ["--data", str(flat), "--labels", str(tmp_path / "labels.csv")]


def _config(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, s: ["--data", str(s / "val"), "--classes", str(s / "classes.txt"),
                       "--models", "resnet51"],
         "unknown model 'resnet51'"),
        (lambda t, s: ["--data", str(t / "missing")], "data folder not found"),
        (lambda t, s: ["--data", str(t / "empty")], "no images in"),
        (lambda t, s: ["--config", _config(t, f"data: {s}/val\nbatchsize: 8\n")],
         "unknown config key 'batchsize' (did you mean 'batch_size'?)"),
        (lambda t, s: ["--config", _config(t, f"data: {s}/val\nshard_size: -3\n")],
         "shard_size: Input should be greater than 0"),
        (lambda t, s: ["--data", str(s / "val"), "--keras-backends", "jax,jax"],
         "keras_backends: Value error, each backend at most once"),
        (lambda t, s: ["--data", str(s / "val"), "--keras-backends", "tensorflow,cuda"],
         "keras_backends.1: Input should be 'tensorflow', 'jax' or 'torch'"),
        (lambda t, s: ["--config", _config(t, f"data: {s}/val\nbatch_size: '8'\n")],
         "batch_size: Input should be a valid integer"),
        (lambda t, s: ["--config", str(t / "nope.yaml")], "config file not found"),
        (lambda t, s: ["--data", str(s / "val")], "has 5 class folders, not 1000"),
        (lambda t, s: ["--config", _config(t, f"data: {s}/val\nbatch_size: 0\n")],
         "batch_size: Input should be greater than 0"),
        (lambda t, s: ["--config", _config(t, f"data: {s}/val\nweights: imagenet\n")],
         "weights: Input should be 'pretrained' or 'random'"),
        (lambda t, s: ["--config", _config(t, "data: [1, 2\n")], "not valid YAML"),
        (_flat_with_wrong_labels, "3 of 3 images"),
    ],
    ids=["unknown-model", "missing-folder", "empty-folder", "unknown-key", "negative-size",
         "duplicate-backend", "unknown-backend",
         "wrong-type", "missing-config", "partial-classes-without-list", "zero-size",
         "bad-choice", "bad-yaml", "labels-not-matching-files"],
)
def test_bad_input_is_one_line_before_any_actor(tmp_path, sample_dir, empty_dir, make_args,
                                                message):
    result = run_cli("run", *make_args(tmp_path, sample_dir), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kpbench: error: ") and message in lines[0]
    assert result.stdout == ""  # the plan line prints only once Ray is up: it never started


def test_unwritable_output_folder(tmp_path, sample_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("run", "--data", str(sample_dir / "val"), "--classes",
                     str(sample_dir / "classes.txt"), "--out", str(blocker / "out"))
    assert result.returncode == 2
    assert "cannot write to output folder" in result.stderr


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "score", "models", "sample-data", "weights"):
        assert command in result.stdout


def test_models_prints_the_catalog():
    result = run_cli("models")
    assert result.returncode == 0
    assert "188 models" in result.stdout and "nasnetlarge" in result.stdout
    # input size, parameter count and documented accuracy, names never cut
    row = next(line for line in result.stdout.splitlines() if "vit_h_14.IMAGENET1K_SWAG_E2E_V1" in line)
    assert row.split()[2:7] == ["torchvision", "518", "633.5M", "88.55", "/"]
    assert "34 models" in run_cli("models", "northcutt2019").stdout
    everything = run_cli("models", "--all").stdout  # timm's entries too
    assert f"{len(load_catalog().specs)} models" in everything and "resnet50.a1_in1k" in everything
    assert "25 models" in run_cli("models", "*.IMAGENET1K_V2", "ConvNeXtTiny").stdout
