"""Distribution-shift sets: layouts recognised from generated folders, subset scoring, the wide
table with timm's diffs, timm's published figures, the charts, and one run on Ray."""

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from rich.console import Console

from runner.cli import main
from runner.data import shift
from runner.data.index import open_dataset
from runner.errors import UserError
from runner.predictions import subset_top_k
from runner.report.png import write_report
from runner.score.reduce import score
from runner.score.shift_table import wide_table

from .helpers import SHARED, run_cli, sample_config, write_pair

IMAGENET = SHARED / "imagenet"
CLASS_INDEX = IMAGENET / "imagenet_class_index.json"
A_CLASSES = IMAGENET / "imagenet_a_200_classes.csv"
TIMM = SHARED / "timm"


@pytest.fixture(scope="module")
def a_classes():
    if not A_CLASSES.exists() or not CLASS_INDEX.exists():
        pytest.skip(f"ImageNet class lists not found under {IMAGENET}")
    return list(csv.DictReader(A_CLASSES.open()))


def _tree(root, folders, files=("img{k}.JPEG",), per_folder=1):
    """ROOT/<folder>/<file> tiny JPEGs; `files` are name patterns ({k}: image number)."""
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k in range(per_folder):
            name = files[k % len(files)].format(k=k, folder=folder)
            Image.new("RGB", (8, 8), (k * 40 % 255, 90, 160)).save(root / folder / name)
    return root


# ---- layouts ------------------------------------------------------------------------------

def test_v2_folders_are_class_indices_and_need_their_variant(tmp_path):
    root = _tree(tmp_path / "v2", ["0", "7", "999"], per_folder=2)
    with pytest.raises(UserError, match="ImageNet-V2 layout.*--dataset imagenet-v2-matched-frequency"):
        open_dataset(str(root))
    index = open_dataset(str(root), dataset="imagenet-v2-threshold0.7")
    assert [r.label for r in index.records] == [0, 0, 7, 7, 999, 999]
    assert (index.name, index.layout, index.summary().name) == \
        ("imagenet-v2-threshold0.7", "class_index_folders", "imagenet-v2-threshold0.7")


def test_an_unnamed_v2_layout_is_one_line_before_ray_starts(tmp_path):
    root = _tree(tmp_path / "v2", ["0", "1"])
    result = run_cli("run", "--data", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("kpbench: error: ") and "--dataset imagenet-v2-matched-frequency" in line


@pytest.mark.parametrize("folders, dataset, message", [
    (["0", "1000"], "imagenet-v2-top-images", "must be 0..999"),
    (["0", "07"], "imagenet-v2-top-images", "must be 0..999"),
    (["n01440764"], "imagenet-v2-matched-frequency", "expects class folders named 0..999 by class index"),
    (["0", "1"], "imagenet-sketch", "expects class folders named by WordNet id"),
    (["0"], "imagenet-x", "unknown dataset 'imagenet-x'"),
])
def test_bad_layouts_are_one_line_errors(tmp_path, folders, dataset, message):
    with pytest.raises(UserError, match=message):
        open_dataset(str(_tree(tmp_path / "data", folders)), dataset=dataset)


def test_sketch_is_named_like_imagenet(tmp_path, a_classes):
    root = _tree(tmp_path / "sketch", ["n01440764", "n15075141"], files=("sketch_{k}.JPEG",))
    index = open_dataset(str(root), classes=str(CLASS_INDEX), dataset="imagenet-sketch")
    assert index.name == "imagenet-sketch" and index.subset is None
    assert [r.label for r in index.records] == [0, 999]
    assert open_dataset(str(root), classes=str(CLASS_INDEX)).name == "imagenet"  # same layout


def test_a_layout_recognised_from_timms_class_list(tmp_path, a_classes):
    if shift.imagenet_wnids() is None:
        pytest.skip("timm is not installed: its class lists are what recognition reads")
    wnids = [row["wnid"] for row in a_classes]
    a = _tree(tmp_path / "a", wnids, files=("0.{k}_{folder}.jpg",))
    index = open_dataset(str(a))  # no --dataset, no --classes: timm gives both lists
    assert index.name == "imagenet-a" and len(index) == 200
    assert index.subset == tuple(sorted(int(row["label_1k"]) for row in a_classes))
    assert {r.label for r in index.records} == set(index.subset)
    clean = _tree(tmp_path / "clean", wnids, files=("ILSVRC2012_val_{k:08d}.JPEG",))
    assert open_dataset(str(clean)).name == "imagenet-a-clean"
    _tree(clean, wnids[:1], files=("other.jpg",), per_folder=1)
    with pytest.raises(UserError, match="mixes ImageNet validation files"):
        open_dataset(str(clean))


def test_named_a_set_with_a_class_file_instead_of_timm(tmp_path, a_classes, monkeypatch):
    monkeypatch.setattr(shift, "_timm_list", lambda name: None)  # as without timm
    wnids = [row["wnid"] for row in a_classes[:3]]
    root = _tree(tmp_path / "a", wnids, files=("{k}.jpg",))
    with pytest.raises(UserError, match="install timm, or give a file of them with --subset-classes"):
        open_dataset(str(root), classes=str(CLASS_INDEX), dataset="imagenet-a")
    index = open_dataset(str(root), classes=str(CLASS_INDEX), dataset="imagenet-a",
                         subset_classes=str(A_CLASSES))
    assert len(index.subset) == 200 and index.records[0].label == int(a_classes[0]["label_1k"])
    with pytest.raises(UserError, match="did you mean --dataset imagenet-a-clean"):
        open_dataset(str(_tree(tmp_path / "c", wnids, files=("ILSVRC2012_val_{k:08d}.JPEG",))),
                     classes=str(CLASS_INDEX), dataset="imagenet-a", subset_classes=str(A_CLASSES))
    with pytest.raises(UserError, match="not among its 200 classes, e.g. 'n01440764'"):
        open_dataset(str(_tree(root, ["n01440764"], files=("{k}.jpg",))), classes=str(CLASS_INDEX),
                     dataset="imagenet-a", subset_classes=str(A_CLASSES))
    bad = tmp_path / "bad.txt"
    bad.write_text("n01440764\n")
    with pytest.raises(UserError, match="expected the 200 WordNet ids of ImageNet-A"):
        open_dataset(str(root), classes=str(CLASS_INDEX), dataset="imagenet-a", subset_classes=str(bad))


def test_dataset_name_enters_the_pair_key_only_when_not_imagenet(tmp_path, sample_dir):
    from runner.plan.pairs import plan_run

    def key(**overrides):
        cfg = sample_config(sample_dir, tmp_path / "out", ["pytorch/resnet18"], **overrides)
        return plan_run(cfg)[1][0].job.pair_key

    assert key() == key(dataset="imagenet")
    assert key(dataset="imagenet-sketch") != key()


# ---- scoring over a subset ----------------------------------------------------------------

def test_subset_top_k_takes_the_argmax_over_the_subset():
    probs = np.full((1, 1000), 0.0001, np.float32)
    probs[0, [3, 10, 20]] = [0.5, 0.3, 0.1]  # 3 is the 1000-class argmax, outside the subset
    classes, top = subset_top_k(probs, [10, 20, 30, 40, 50, 60])
    assert classes[0].tolist()[:2] == [10, 20] and top[0, 0] == pytest.approx(0.3)


def test_a_subset_prediction_counts_though_the_1000_class_argmax_is_outside(tmp_path):
    subset = {"name": "imagenet-a", "subset": [10, 20, 30, 40, 50, 60]}
    outside = [[3, 4, 5, 7, 8]] * 2  # none of these is in the subset
    write_pair(tmp_path, "pytorch", "m", [10, 20], outside, dataset=subset,
               subset_top5=[[10, 20, 30, 40, 50], [30, 20, 10, 40, 50]])
    (row,) = score(tmp_path)
    assert (row.dataset, row.acc1, row.acc5) == ("imagenet-a", 50.0, 100.0)
    assert row.published_acc1 is None  # the catalog's figures are ImageNet's


# ---- several runs: the wide table, published figures, charts --------------------------------

def _runs(tmp_path):
    """imagenet, imagenet-a-clean and imagenet-a runs of two models; four images each."""
    subset = [0, 1, 2, 3]
    right = {"imagenet": (4, 3), "imagenet-a-clean": (4, 4), "imagenet-a": (1, 2)}  # (good, bad)
    outs = []
    for name, (good_right, bad_right) in right.items():
        out = tmp_path / name
        meta = {"name": name, **({"subset": subset} if name != "imagenet" else {})}
        for model, hits in (("good", good_right), ("bad", bad_right)):
            top5 = [[label if i < hits else 9, 8, 7, 6, 5] for i, label in enumerate(subset)]
            extra = {"subset_top5": top5} if name != "imagenet" else {}
            write_pair(out, "timm", model, subset, top5, dataset=meta, **extra)
        outs.append(out)
    return outs


def test_wide_table_has_timms_diffs(tmp_path):
    rows = [row for out in _runs(tmp_path) for row in score(out)]
    wide, columns = wide_table(rows)
    by_model = {row["model"]: row for row in wide}
    assert columns[:3] == ["framework", "model", "weights"]
    # A against A-clean: good 25 - 100, bad 50 - 100; ranks on A-clean tie (1, 1), on A 2 and 1
    assert by_model["good"]["imagenet-a_top1_diff"] == -75.0
    assert by_model["bad"]["imagenet-a_top1_diff"] == -50.0
    assert (by_model["good"]["imagenet-a_rank_diff"], by_model["bad"]["imagenet-a_rank_diff"]) == (-1, 0)
    assert "imagenet-a-clean_top1_diff" not in columns  # a baseline has no baseline
    assert by_model["bad"]["imagenet_acc1"] == 75.0 and by_model["good"]["imagenet-a_tier"] == 1
    with pytest.raises(UserError, match="two runs hold imagenet predictions of timm/good"):
        wide_table(rows + rows[:1])
    # ReaL labels (score --real) on the ImageNet run form their own group, against ImageNet
    for row in rows:
        if row.dataset == "imagenet":
            row.real_acc1, row.real_rank1 = row.acc1 + 5, row.rank1
    wide, columns = wide_table(rows)
    assert columns.index("imagenet-real_acc1") < columns.index("imagenet-a-clean_acc1")
    assert {row["imagenet-real_top1_diff"] for row in wide} == {5.0}


def test_wide_table_has_a_row_per_keras_backend(tmp_path):
    rows = [row for out in _runs(tmp_path) for row in score(out)]
    assert "backend" not in wide_table(rows)[1]  # every row on the default: no column
    on_jax = [row.model_copy(update={"framework": "keras", "backend": "jax", "acc1": 1.0})
              for row in rows]
    on_tf = [row.model_copy(update={"framework": "keras", "backend": "tensorflow"}) for row in rows]
    wide, columns = wide_table(rows + on_jax + on_tf)
    assert columns[:4] == ["framework", "backend", "model", "weights"]
    keras = {(row["model"], row["backend"]): row for row in wide if row["framework"] == "keras"}
    assert set(keras) == {(model, backend) for model in ("good", "bad") for backend in ("jax", "tensorflow")}
    assert keras["good", "jax"]["imagenet_acc1"] == 1.0
    assert keras["good", "tensorflow"]["imagenet_acc1"] == 100.0
    with pytest.raises(UserError, match="predictions of keras/good@jax"):
        wide_table(rows + on_jax + on_jax[:1])


def test_score_over_several_runs_writes_the_wide_table_and_the_chart(tmp_path, capsys):
    outs = _runs(tmp_path)
    assert main(["score", *map(str, outs)]) == 0
    assert "kpbench accuracy by dataset" in capsys.readouterr().out
    wide = list(csv.DictReader((outs[0] / "results" / "accuracy-wide.csv").open()))
    assert {row["model"] for row in wide} == {"good", "bad"}
    plain = list(csv.DictReader((outs[2] / "results" / "accuracy.csv").open()))
    assert {row["dataset"] for row in plain} == {"imagenet-a"}
    charts = {path.name for path in write_report(outs[0])}
    assert {"effective_robustness.png", "acc1_tiers.png"} <= charts
    assert "effective_robustness.png" not in {path.name for path in write_report(outs[2])}


def test_published_figures_from_timms_results(tmp_path, capsys):
    if not (TIMM / "results-imagenet-a.csv").exists():
        pytest.skip(f"timm's results not found under {TIMM}")
    tag, ambiguous = "resnetv2_50x3_bit.goog_in21k_ft_in1k", "resnet50.a1_in1k"  # once / twice
    meta = {"name": "imagenet-a", "subset": [0, 1]}
    for model in (tag, ambiguous):
        write_pair(tmp_path, "timm", model, [0, 1], [[0, 1, 2, 3, 4]] * 2, dataset=meta,
                   subset_top5=[[0, 1, 2, 3, 4]] * 2)
    write_pair(tmp_path, "pytorch", "resnet50", [0, 1], [[0, 1, 2, 3, 4]] * 2, dataset=meta,
               subset_top5=[[0, 1, 2, 3, 4]] * 2)
    assert main(["score", str(tmp_path), "--published", str(TIMM)]) == 0
    assert f"lists {ambiguous} at several input sizes" in capsys.readouterr().out
    rows = {row["model"]: row for row in json.loads(
        (tmp_path / "results" / "accuracy.json").read_text())["rows"]}
    assert (rows[tag]["published_acc1"], rows[tag]["published_acc5"]) == (46.387, 76.68)
    assert rows[tag]["published_delta1"] == pytest.approx(50.0 - 46.387)
    assert rows[tag]["published_source"] == "timm results-imagenet-a.csv"
    assert rows[ambiguous]["published_acc1"] is None and rows["resnet50"]["published_acc1"] is None
    # the claim check follows the figure: timm's 46.387 lies inside 1 of 2's interval (1.3 .. 98.7)
    assert rows[tag]["claim"] == "consistent" and rows[ambiguous]["claim"] is None
    assert main(["score", str(tmp_path), "--published", str(tmp_path / "nowhere")]) == 2


# ---- a run on Ray: the actor writes the subset top-5 --------------------------------------

def test_run_over_an_a_layout_writes_subset_predictions(ray_two_fake_gpus, tmp_path, a_classes):
    from runner.run.driver import run_benchmark

    root = _tree(tmp_path / "a", [row["wnid"] for row in a_classes[:3]], files=("{k}.jpg",),
                 per_folder=2)
    cfg = sample_config(tmp_path, tmp_path / "out", ["pytorch/squeezenet1_1"], data=str(root),
                        classes=str(CLASS_INDEX), dataset="imagenet-a",
                        subset_classes=str(A_CLASSES), shard_size=4)
    assert run_benchmark(cfg, Console(quiet=True)).failed == {}
    files = sorted((tmp_path / "out" / "predictions").rglob("*.parquet"))
    table = pq.read_table(files)
    subset = {int(row["label_1k"]) for row in a_classes}
    assert table.num_rows == 6
    assert all(set(top) <= subset for top in table["subset_top5_class"].to_pylist())
    assert any(not set(top) <= subset for top in table["top5_class"].to_pylist())  # 1000-class
    (row,) = score(tmp_path / "out")
    firsts = [top[0] for top in table["subset_top5_class"].to_pylist()]
    expected = 100 * np.mean(np.array(firsts) == table["label"].to_numpy())
    assert (row.dataset, row.acc1, row.weights) == ("imagenet-a", expected, "random")
