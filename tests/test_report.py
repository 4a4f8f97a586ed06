"""`kpbench report`: PNG charts that depend on the run, and an index page."""

import numpy as np
from PIL import Image

from runner.cli import main
from runner.report.png import write_report
from runner.report.tables import write_results
from runner.score.reduce import LabelOptions, score

from .helpers import write_pair

TOP5 = [[0, 1, 2, 3, 4], [5, 1, 2, 3, 4], [2, 0, 1, 3, 4], [9, 9, 9, 9, 3]]
IDS = [f"ILSVRC2012_val_{n:08d}.JPEG" for n in (1, 2, 3, 4)]


def _run(out, models, **provenance):
    for framework, model in models:
        write_pair(out, framework, model, [0, 1, 2, 3], TOP5, image_ids=IDS, **provenance)


def _charts(locations):
    return {place.name: len(place.read_bytes()) for place in locations if place.name.endswith(".png")}


def test_chart_count_and_size_follow_the_run(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    _run(small, [("pytorch", "resnet1"), ("keras", "resnet1")], protocol="reference")
    write_results(small, score(small))
    small_charts = _charts(write_report(small))
    # reference protocol with no documented figure: no published scatter
    assert set(small_charts) == {"acc1_by_family.png", "acc1_tiers.png"}

    models = [("pytorch", f"vgg{i}") for i in range(8)] + [("keras", "mobilenet1")]
    _run(large, models, protocol="northcutt2019")
    options = LabelOptions(omit=np.array([3]), real=[[0], [1], [2], []])
    write_results(large, score(large, options))
    large_charts = _charts(write_report(large))
    assert set(large_charts) == {"acc1_by_family.png", "acc1_tiers.png", "measured_vs_published.png",
                                 "plain_vs_cleaned.png", "plain_vs_real.png"}
    assert large_charts["acc1_by_family.png"] != small_charts["acc1_by_family.png"]
    for folder, charts in ((small, small_charts), (large, large_charts)):
        for name, size in charts.items():
            assert size > 1000
            with Image.open(folder / "results" / name) as image:
                assert image.format == "PNG" and image.width > 300
    wide = Image.open(large / "results" / "acc1_by_family.png").width
    assert wide > Image.open(small / "results" / "acc1_by_family.png").width  # 9 models vs 1


def test_index_embeds_every_chart_and_says_random(tmp_path):
    _run(tmp_path, [("pytorch", "resnet1")], protocol="northcutt2019")
    assert main(["report", str(tmp_path)]) == 0  # scores first: no table yet
    index = (tmp_path / "results" / "report.md").read_text()
    assert "weights: random" in index
    for png in (tmp_path / "results").glob("*.png"):
        assert f"]({png.name})" in index


def test_family_chart_has_a_bar_per_framework_timm_included(tmp_path):
    from runner.report.png import _by_family

    _run(tmp_path, [("pytorch", "resnet1"), ("keras", "resnet1"), ("timm", "resnet1")])
    axes = _by_family(score(tmp_path)).axes[0]
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["keras", "pytorch", "timm"]
    assert len(axes.patches) == 3  # one bar each, none dropped
