"""Each run option is defined once, in RunConfig: the `run` flags, their help and
docs/configuration.md all come from its fields."""

import difflib

import pytest
from pydantic import BaseModel, Field

from runner.cli import build_parser
from runner.config import RunConfig, load_config
from runner.options import REFERENCE, RunOption, overrides, reference_markdown

# One command line per field and the value it must give: a new field fails here until it has one.
FLAG_CASES = {
    "data": (["--data", "val"], "val"),
    "labels": (["--labels", "l.csv"], "l.csv"),
    "classes": (["--classes", "c.txt"], "c.txt"),
    "dataset": (["--dataset", "imagenet-a"], "imagenet-a"),
    "subset_classes": (["--subset-classes", "a.csv"], "a.csv"),
    "out": (["--out", "runs/x"], "runs/x"),
    "s3_endpoint": (["--s3-endpoint", "http://127.0.0.1:9000"], "http://127.0.0.1:9000"),
    "models": (["--models", "resnet18", "keras/*"], ["resnet18", "keras/*"]),
    "frameworks": (["--frameworks", "keras,pytorch"], ["keras", "pytorch"]),
    # repeatable: several files after one flag, or the flag again
    "catalog": (["--catalog", "a.yaml", "b.yaml", "--catalog", "c.yaml"], ["a.yaml", "b.yaml", "c.yaml"]),
    "weights": (["--weights", "random"], "random"),
    "protocol": (["--protocol", "northcutt2019"], "northcutt2019"),
    "batch_size": (["--batch-size", "8"], 8),
    "keras_mode": (["--keras-mode", "batched"], "batched"),
    "keras_backends": (["--keras-backends", "tensorflow,jax,torch"], ["tensorflow", "jax", "torch"]),
    "precision": (["--precision", "bf16"], "bf16"),
    "variants": (["--variants", "interpolation=bilinear,bicubic", "crop_pct=1.0"],
                 ["interpolation=bilinear,bicubic", "crop_pct=1.0"]),
    "forward_threads": (["--forward-threads", "3"], 3),
    "decode_threads": (["--decode-threads", "5"], 5),
    "share_decoding": (["--no-share-decoding"], False),
    "decode_cache_gb": (["--decode-cache-gb", "0.5"], 0.5),
    "replicas": (["--replicas", "3"], 3),
    "replica_start_seconds": (["--replica-start-seconds", "2.5"], 2.5),
    "device_retries": (["--device-retries", "0"], 0),
    "shard_size": (["--shard-size", "100"], 100),
    "seed": (["--seed", "-1"], -1),
    "address": (["--address", "ray://head:10001"], "ray://head:10001"),
    "device": (["--device", "cpu"], "cpu"),
    "gpu_share": (["--gpu-share", "0.4"], 0.4),
    "gpus_per_actor": (["--gpus-per-actor", "0.25"], 0.25),
    "cpus_per_actor": (["--cpus-per-actor", "2"], 2.0),
    "cpus_per_gpu_actor": (["--cpus-per-gpu-actor", "0.25"], 0.25),
    "local_cpus": (["--local-cpus", "1"], 1),
    "local_gpus": (["--local-gpus", "2"], 2),
    "dashboard": (["--dashboard"], True),
    "overwrite": (["--overwrite"], True),
    "sanity": (["--no-sanity"], False),
    "strict_sanity": (["--strict-sanity"], True),
}


def _run_args(*argv):
    return build_parser().parse_args(["run", *argv])


def test_every_field_has_a_case():
    assert list(FLAG_CASES) == list(RunConfig.model_fields)


@pytest.mark.parametrize("key", FLAG_CASES)
def test_each_flag_sets_its_key_and_only_it(key):
    argv, expected = FLAG_CASES[key]
    given = overrides(_run_args(*argv))
    assert given[key] == expected
    assert {other for other, value in given.items() if value is not None} == {key}
    config = load_config(None, {**given, "data": given["data"] or "val"})
    assert getattr(config, key) == expected


def test_without_flags_the_config_file_decides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: val\nshare_decoding: false\noverwrite: true\nbatch_size: 8\n"
                    "frameworks: [keras]\nlocal_gpus: 2\n")
    from_file = load_config(str(path), overrides(_run_args("--config", str(path))))
    assert (from_file.share_decoding, from_file.overwrite, from_file.batch_size,
            from_file.frameworks, from_file.local_gpus) == (False, True, 8, ["keras"], 2)
    flagged = _run_args("--config", str(path), "--share-decoding", "--no-overwrite",
                        "--batch-size", "3", "--frameworks", "pytorch")
    config = load_config(str(path), overrides(flagged))
    assert (config.share_decoding, config.overwrite, config.batch_size, config.frameworks,
            config.local_gpus) == (True, False, 3, ["pytorch"], 2)


def _run_help(capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: each help on one line
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    return capsys.readouterr().out


def test_help_gives_each_description_and_default(capsys, monkeypatch):
    text = " ".join(_run_help(capsys, monkeypatch).split())
    for key, field in RunConfig.model_fields.items():
        assert " ".join(field.description.replace("`", "").split()) in text, key
    assert text.count("(default: ") + text.count("(required)") == len(RunConfig.model_fields)
    for expected in (
        "--data DATA dataset: class folders (ROOT/<wnid>/*.JPEG)",
        "or a URI such as s3://... (required)",
        "--batch-size BATCH_SIZE images per forward pass: PyTorch's, and Keras' in batched mode; auto:",
        "(default: 64)",
        "comma-separated, from pytorch, keras (default: pytorch,keras)",
        "--models MODEL [MODEL ...] models to run:",
        "under their 2019 names (default: torchvision keras)",
        "--share-decoding, --no-share-decoding decode each image",
        "slots (default: auto)",
        "on a CPU machine fakes them, for tests (default: detected)",
        "--overwrite, --no-overwrite replace predictions",
        "(default: RAY_ADDRESS, else a local Ray)",
    ):
        assert expected in text


@pytest.mark.parametrize("argv, message", [
    (["--replicas", "x"], "argument --replicas: invalid count_or_auto value: 'x'"),
    (["--batch-size", "x"], "argument --batch-size: invalid count_or_auto value: 'x'"),
    (["--weights", "imagenet"],
     "argument --weights: invalid choice: 'imagenet' (choose from 'pretrained', 'random')"),
    (["--models"], "argument --models: expected at least one argument"),
    (["--gpus-per-actor", "half"], "argument --gpus-per-actor: invalid float value: 'half'"),
])
def test_bad_flag_values_are_one_argparse_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _run_args(*argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"kpbench run: error: {message}"


def test_a_field_type_without_a_flag_rule_is_named():
    class Odd(BaseModel):
        mapping: dict[str, int] = Field({}, description="no flag form")

    with pytest.raises(TypeError, match=r"RunConfig.mapping: no flag for dict\[str, int\]"):
        RunOption("mapping", Odd.model_fields["mapping"]).argparse_kwargs()


def test_reference_rows():
    text = reference_markdown()
    for key in RunConfig.model_fields:
        assert f"\n| `{key}` | `--{key.replace('_', '-')}" in text, key
    assert "| `batch_size` | `--batch-size` | integer > 0, or `auto` | `64` |" in text
    assert "| `replicas` | `--replicas` | integer > 0, or `auto` | `auto` |" in text
    assert "| `gpus_per_actor` | `--gpus-per-actor` | number > 0, ≤ 1 | see `gpu_share` |" in text
    assert ("| `gpu_share` | `--gpu-share` | number > 0, ≤ 1, or mapping of `pytorch`, "
            "`keras_reproducible`, `keras_batched` to numbers |") in text
    assert ("| `frameworks` | `--frameworks A,B` | list of `pytorch`, `keras` | "
            "`[pytorch, keras]` |") in text
    assert "| `local_gpus` | `--local-gpus` | integer ≥ 0 | detected |" in text
    assert "| `share_decoding` | `--share-decoding` / `--no-share-decoding` | boolean | `true` |" in text


def test_committed_reference_matches_run_config():
    committed = REFERENCE.read_text() if REFERENCE.is_file() else ""
    generated = reference_markdown()
    if committed != generated:
        diff = "\n".join(difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "committed", "from RunConfig",
            lineterm=""))
        pytest.fail(f"{REFERENCE.relative_to(REFERENCE.parents[1])} is stale: run "
                    f"`make docs` and commit it\n{diff}")
