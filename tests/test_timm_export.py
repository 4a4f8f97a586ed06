"""`kpbench score --format timm`: files in the format of timm's results-*.csv."""

import csv

import pytest

from runner.cli import main
from runner.errors import UserError
from runner.report.timm_export import TimmRow, render, timm_files

from .helpers import SHARED, write_pair

TIMM = SHARED / "timm"
HEADER = "model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation"
IDS = [f"ILSVRC2012_val_{n:08d}.JPEG" for n in (1, 2, 3, 4)]
LABELS = [0, 1, 2, 3]
BILINEAR = {"resize": "shorter_side", "size": 256, "crop": 224, "interpolation": "bilinear"}
SQUASH = {"resize": "squash", "size": 224, "interpolation": "nearest"}
# (framework, model, parameters, recipe, top-5 of the four images)
MODELS = [
    ("pytorch", "resnet50", 25557032, BILINEAR,  # Acc@1 2/4, Acc@5 3/4
     [[0, 8, 8, 8, 8], [1, 8, 8, 8, 8], [9, 2, 8, 8, 8], [9, 8, 8, 8, 8]]),
    ("keras", "resnet50", 25636712, BILINEAR,  # 1/4, 2/4
     [[0, 8, 8, 8, 8], [5, 1, 8, 8, 8], [8, 8, 8, 8, 8], [8, 8, 8, 8, 8]]),
    ("keras", "mobilenet", 4253864, SQUASH,  # 4/4, 4/4
     [[0, 8, 8, 8, 8], [1, 8, 8, 8, 8], [2, 8, 8, 8, 8], [3, 8, 8, 8, 8]]),
]
REAL = [[0], [5], [2], []]  # the fourth image has no ReaL label: not counted


@pytest.fixture
def scored(tmp_path, capsys):
    for framework, model, params, recipe, top5 in MODELS:
        write_pair(tmp_path, framework, model, LABELS, top5, image_ids=IDS, weights="pretrained",
                   spec={"num_params": params, "recipes": {"reference": recipe}})
    write_pair(tmp_path, "pytorch", "vgg16", LABELS[:2], MODELS[0][4][:2], image_ids=IDS[:2],
               images=4, weights="pretrained")  # half its images: incomplete
    real = tmp_path / "real.json"
    real.write_text(str(REAL))
    assert main(["score", str(tmp_path), "--real", str(real), "--format", "timm"]) == 0
    return tmp_path, capsys.readouterr().out


def test_score_writes_imagenet_and_real_files_as_timm_writes_them(scored):
    out, printed = scored
    folder = out / "results" / "timm"
    assert sorted(p.name for p in folder.iterdir()) == ["results-imagenet-real.csv",
                                                        "results-imagenet.csv"]
    assert (folder / "results-imagenet.csv").read_text() == "\n".join([
        HEADER,
        "mobilenet,224,100.000,0.000,100.000,0.000,4.25,1.000,nearest",
        "pytorch/resnet50,224,50.000,50.000,75.000,25.000,25.56,0.875,bilinear",
        "keras/resnet50,224,25.000,75.000,50.000,50.000,25.64,0.875,bilinear",
    ]) + "\n"
    # ReaL over images 1-3; keras/resnet50's top-1 on image 2 is ReaL's label, not ImageNet's.
    # keras/resnet50 and mobilenet tie, so the name orders them; ranks move from 2, 0, 1.
    assert (folder / "results-imagenet-real.csv").read_text() == "\n".join([
        HEADER + ",top1_diff,top5_diff,rank_diff",
        "keras/resnet50,224,66.667,33.333,66.667,33.333,25.64,0.875,bilinear,+41.667,+16.667,+2",
        "mobilenet,224,66.667,33.333,66.667,33.333,4.25,1.000,nearest,-33.333,-33.333,-1",
        "pytorch/resnet50,224,33.333,66.667,66.667,33.333,25.56,0.875,bilinear,-16.667,-8.333,-1",
    ]) + "\n"
    assert "not in the timm files" in printed and "pytorch/vgg16: incomplete (2 images" in printed


def test_header_is_timms():
    reference = TIMM / "results-imagenet.csv"
    if not reference.exists():
        pytest.skip(f"timm's results files not found under {TIMM}")
    assert reference.open().readline().strip() == HEADER
    with (TIMM / "results-imagenet-real.csv").open() as file:
        assert file.readline().strip() == HEADER + ",top1_diff,top5_diff,rank_diff"


@pytest.mark.parametrize("name", ["results-imagenet.csv", "results-imagenet-a-clean.csv",
                                  "results-imagenet-r-clean.csv"])
def test_timms_own_files_come_back_byte_for_byte(name):
    """Number formats (3 decimals, param_count in millions with thousands separators, quoted)
    and row order (Acc@1, Acc@5, name) are timm's: its own rows render to its own file."""
    path = TIMM / name
    if not path.exists():
        pytest.skip(f"timm's results files not found under {TIMM}")
    rows = [TimmRow(model=r["model"], img_size=int(r["img_size"]), top1=float(r["top1"]),
                    top5=float(r["top5"]), param_count=float(r["param_count"].replace(",", "")),
                    crop_pct=float(r["crop_pct"]), interpolation=r["interpolation"])
            for r in csv.DictReader(path.open())]
    assert len(rows) > 1000
    assert render(rows[::-1]) == path.read_text()


def _row(framework, model, acc1, dataset=None, **fields):
    row = {"framework": framework, "model": model, "acc1": acc1, "acc5": acc1 + 10,
           "status": "ok", "missing": 0, "weights": "pretrained", "params": 1_000_000,
           "img_size": 224, "crop_pct": 0.875, "interpolation": "bicubic", **fields}
    return row | ({"dataset": dataset} if dataset else {})


def test_one_file_per_dataset_named_as_timm_with_diffs_against_the_right_base():
    rows = [_row("pytorch", "a", 80.0), _row("pytorch", "b", 70.0),
            _row("pytorch", "a", 60.0, "imagenet-a-clean"), _row("pytorch", "b", 65.0, "imagenet-a-clean"),
            _row("pytorch", "a", 20.0, "imagenet-a"), _row("pytorch", "b", 30.0, "imagenet-a"),
            _row("pytorch", "a", 68.0, "imagenetv2"), _row("pytorch", "a", 40.0, "ImageNet-Sketch"),
            _row("pytorch", "b", 10.0, "objectnet")]
    files, left_out = timm_files(rows)
    assert left_out == []
    assert sorted(files) == ["results-imagenet-a-clean.csv", "results-imagenet-a.csv",
                             "results-imagenet.csv", "results-imagenetv2-matched-frequency.csv",
                             "results-objectnet.csv", "results-sketch.csv"]
    for name in ("results-imagenet.csv", "results-imagenet-a-clean.csv"):
        assert files[name].splitlines()[0] == HEADER
    # A against A-clean, where b ranks first (65 > 60), and then first again on A: no move
    assert files["results-imagenet-a.csv"].splitlines()[1:] == [
        "b,224,30.000,70.000,40.000,60.000,1.00,0.875,bicubic,-35.000,-35.000,0",
        "a,224,20.000,80.000,30.000,70.000,1.00,0.875,bicubic,-40.000,-40.000,0"]
    assert files["results-imagenetv2-matched-frequency.csv"].splitlines()[1].endswith(
        ",-12.000,-12.000,0")
    # b ranks second on ImageNet, first (of one) on objectnet
    assert files["results-objectnet.csv"].splitlines()[1].endswith(",-60.000,-60.000,+1")


def test_model_names_are_unique_and_say_framework_backend_and_random_weights():
    rows = [_row("pytorch", "resnet50", 76.0), _row("keras", "resnet50", 75.0),
            _row("keras", "vgg16", 70.0, backend="jax"), _row("keras", "vgg19", 71.0, backend="tensorflow"),
            _row("pytorch", "alexnet", 0.1, weights="random")]
    models = [line.split(",")[0] for line in timm_files(rows)[0]["results-imagenet.csv"].splitlines()[1:]]
    assert models == ["pytorch/resnet50", "keras/resnet50", "vgg19", "vgg16@jax",
                      "alexnet (weights: random)"]
    with pytest.raises(UserError, match="more than one row named keras/m"):
        timm_files([_row("keras", "m", 1.0), _row("keras", "m", 2.0), _row("pytorch", "m", 3.0)])


def test_rows_without_a_complete_figure_are_left_out_and_named():
    rows = [_row("pytorch", "a", 80.0), _row("pytorch", "b", float("nan")),
            _row("keras", "c", 50.0, status="failed"),
            _row("keras", "d", 50.0, status="incomplete", missing=3)]
    files, left_out = timm_files(rows)
    assert len(files["results-imagenet.csv"].splitlines()) == 2
    assert left_out == ["pytorch/b: no readable image", "keras/c: failed",
                        "keras/d: incomplete (3 images without a prediction)"]


def test_a_later_export_removes_files_it_no_longer_writes(scored):
    out, _ = scored
    assert main(["score", str(out), "--format", "timm"]) == 0  # without --real this time
    assert [p.name for p in (out / "results" / "timm").iterdir()] == ["results-imagenet.csv"]
