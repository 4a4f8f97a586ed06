"""`kpbench report`: the self-contained HTML page, its rows, columns, charts and provenance.
(tests/test_report_browser.py loads it in Chromium.)"""

import csv
import json
import re

import pytest

from runner.cli import main
from runner.report.html import write_html_report
from runner.report.html_provenance import summarise
from runner.report.html_rows import build_page
from runner.report.runs import RunTables, read_run
from runner.score.rows import ScoreRow

from .helpers import write_pair, write_report_run

LABELS = [0, 1, 2, 3]


def make_run(out, weights="random"):
    assert main(["score", str(write_report_run(out, weights))]) == 0
    return out


def headers(page: str) -> list[str]:
    return re.findall(r'<th scope="col"[^>]*><button type="button">([^<]*)</button>', page)


def captions(page: str) -> list[str]:
    return re.findall(r"<figcaption>([^<]*)</figcaption>", page)


def test_one_run_gives_a_self_contained_page_beside_the_png_report(tmp_path):
    run = make_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    page = (run / "report" / "index.html").read_text()
    assert (run / "results" / "report.md").is_file() and (run / "results" / "acc1_by_family.png").is_file()
    # nothing to fetch: no src; href and url() only to data: or into the page (chart parts)
    assert not re.search(r"\bsrc\s*=", page) and "@import" not in page
    links = re.findall(r'\bhref="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    assert links[0] == "data:," and all(link.startswith("#chart") for link in links[1:])
    ids = re.findall(r'\bid="([^"]*)"', page)
    assert len(ids) == len(set(ids))
    assert page.count("<tbody>") == 2 and page.count('<tr data-framework=') == 4
    assert headers(page)[:8] == ["framework", "model", "arch", "family", "set", "protocol", "Acc@1",
                                 "Acc@5"]
    for absent in ("backend", "ReaL Acc@1", "run"):
        assert absent not in headers(page)
    assert captions(page) == ["Accuracy against compute", "Accuracy against size",
                              "Frameworks per architecture", "Measured against published", "Tiers"]


def test_random_weights_are_marked_at_the_top_and_on_every_chart(tmp_path):
    page = write_html_report([read_run(str(make_run(tmp_path / "run")))], tmp_path / "out").read_text()
    body = page[page.index("<body>"):]
    assert body.index('class="random-banner"') < body.index("<h1>")
    charts = re.findall(r"<figure class=\"chart\">.*?</figure>", page, re.DOTALL)
    assert len(charts) == 5 and all("weights: random" in chart for chart in charts)
    pretrained = make_run(tmp_path / "pretrained", weights="pretrained")
    page = write_html_report([read_run(str(pretrained))], tmp_path / "out2").read_text()
    assert "weights: random" not in page and 'class="random-banner"' not in page


def body_cells(page: str) -> dict[str, list[str]]:
    """Each table row's cells (their text), by the row's label."""
    rows = re.findall(r'<tr [^>]*data-label="([^"]*)">(.*?)</tr>', page)
    return {label: [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells)]
            for label, cells in rows}


def test_claim_and_rank_interval_columns_come_from_the_table(tmp_path):
    run = make_run(tmp_path / "run")
    table = json.loads((run / "results" / "accuracy.json").read_text())["rows"]
    page = write_html_report([read_run(str(run))], tmp_path / "out").read_text()
    shown = headers(page)
    claim, ranks = shown.index("claim"), shown.index("rank 95%")
    assert shown[claim - 1] == "Δ published"
    cells = body_cells(page)
    assert len(cells) == len(table) == 4
    for row in table:
        assert row["claim"] == "consistent"  # 4 images: every figure is inside the wide interval
        assert cells[row["model"]][claim] == row["claim"]
        assert cells[row["model"]][ranks] == f"{row['rank1_low']}–{row['rank1_high']}"
    assert {row["model"]: (row["rank1_low"], row["rank1_high"]) for row in table}["MobileNet"] == (1, 1)
    # tables scored before these columns existed: no such columns on the page
    new = ("claim", "rank1_low", "rank1_high")
    rows = [ScoreRow.model_construct(**{k: v for k, v in row.items() if k not in new}) for row in table]
    older = headers(write_html_report([_tables(rows)], tmp_path / "older").read_text())
    assert "claim" not in older and "rank 95%" not in older and "Acc@1" in older


def _add_other_scorers_columns(run):
    """What other scorers add to the table: backends, intervals, tiers, a shift dataset and a
    label-set table (the report must show them without knowing their code)."""
    table = run / "results" / "accuracy.json"
    document = json.loads(table.read_text())
    shifted = []
    for row in document["rows"]:
        row["backend"] = "jax" if row["framework"] == "keras" else None
        row["acc1_ci_low"], row["acc1_ci_high"] = row["acc1"] - 5, row["acc1"] + 5
        row["tier"] = 1 if row["acc1"] >= 75 else 2
        shifted.append({**row, "dataset": "imagenet-a", "acc1": row["acc1"] / 3})
    document["rows"] += shifted
    table.write_text(json.dumps(document))
    with (run / "results" / "accuracy-cleanlab.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, ["framework", "backend", "model", "acc1", "acc5"])
        writer.writeheader()
        for row in document["rows"][:4]:
            writer.writerow({"framework": row["framework"], "backend": row["backend"],
                             "model": row["model"], "acc1": 100 - row["acc1"], "acc5": 99.0})


def test_columns_of_other_scorers_show_when_present(tmp_path):
    run = make_run(tmp_path / "run")
    _add_other_scorers_columns(run)
    page = write_html_report([read_run(str(run))], tmp_path / "out").read_text()
    shown = headers(page)
    assert shown[:3] == ["framework", "backend", "model"]
    for column in ("tier", "cleanlab Acc@1", "imagenet-a Acc@1", "ER imagenet-a"):
        assert column in shown
    assert page.count('<tr data-framework=') == 4  # the shift dataset is a column, not rows
    assert '<select data-filter="backend">' in page
    assert re.search(r'data-value="100.0">100.00 <span class="ci">\[95.00, 105.00\]</span>', page)
    assert captions(page)[-3:] == ["Rank movement", "Effective robustness", "Tiers"]


def _tables(rows, name="run", **fields) -> RunTables:
    return RunTables(name=name, location=name, rows=rows, random_weights=False,
                     label_sets=fields.get("label_sets", {}), provenance=fields.get("provenance", []))


def _row(model, acc1, framework="pytorch", **fields):
    # only these columns set, as in a table that has no others
    return ScoreRow.model_construct(framework=framework, model=model, acc1=acc1, acc5=99.0, **fields)


def test_ranks_and_effective_robustness_over_the_page():
    # shift accuracies on the line logit(shift) = logit(imagenet) - 1, but model d 10 points above
    def on_line(acc):
        import math
        logit = math.log(acc / (100 - acc)) - 1
        return 100 / (1 + math.exp(-logit))

    imagenet = {"a": 60.0, "b": 70.0, "c": 80.0, "d": 75.0}
    rows = [_row(m, acc, real_acc1=90 - acc) for m, acc in imagenet.items()]
    rows += [_row(m, on_line(acc) + (10 if m == "d" else 0), dataset="imagenet-a")
             for m, acc in imagenet.items()]
    page = build_page([_tables(rows)])
    by_model = {row.cells["model"]: row for row in page.rows}
    assert page.label_sets == ["ReaL"] and page.datasets == ["imagenet-a"]
    assert [by_model[m].cells["rank"] for m in "abcd"] == [4, 3, 1, 2]
    assert [by_model[m].views["ReaL"]["rank"] for m in "abcd"] == [1, 2, 4, 3]  # reversed
    robustness = {m: by_model[m].views["imagenet-a"]["er"] for m in "abcd"}
    assert max(robustness, key=robustness.get) == "d" and robustness["d"] > 5
    assert all(-5 < robustness[m] < 0 for m in "abc")  # the fit is pulled up by d


def test_label_set_tables_match_rows_by_backend_only_when_they_name_one():
    rows = [_row("m", 50.0, "keras", backend="jax"), _row("m", 40.0, "keras", backend="tensorflow")]
    sets = {"plain": [{"framework": "keras", "model": "m", "acc1": 10.0}],
            "split": [{"framework": "keras", "backend": "jax", "model": "m", "acc1": 20.0}]}
    page = build_page([_tables(rows, label_sets=sets)])
    assert [row.value("plain") for row in page.rows] == [10.0, 10.0]
    assert [row.value("split") for row in page.rows] == [20.0, None]


def test_rows_of_two_runs_with_the_same_settings_stay_apart_and_get_told_apart():
    page = build_page([_tables([_row("m", 50.0), _row("m", 60.0, framework="keras")], "first"),
                       _tables([_row("m", 51.0)], "second")])
    assert sorted(row.cells["label"] for row in page.rows) == [
        "keras/m", "pytorch/m [first]", "pytorch/m [second]"]


def test_provenance_summary_names_gpu_driver_cuda_and_dates():
    provenance = [
        {"kpbench_version": "0.1.0", "libraries": {"torch": "2.14.1"}, "device": "cuda:0 (NVIDIA H200)",
         "nvidia_driver": "580.65.06", "cuda": "13.0", "weights": "pretrained",
         "written": [1795982614.0], "dataset": {"fingerprint": "6c5c", "images": 15}},
        {"kpbench_version": "0.1.0", "libraries": {"torch": "2.14.1"}, "device": "cpu",
         "nvidia_driver": None, "cuda": None, "weights": "pretrained", "written": [1795986214.0],
         "dataset": {"fingerprint": "6c5c", "images": 15}},
    ]
    summary = summarise(_tables([], provenance=provenance))
    assert summary["NVIDIA driver"] == "580.65.06 (1), none (CPU) (1)"
    assert summary["CUDA"] == "13.0 (1), none (CPU) (1)"
    assert summary["frameworks"] == "torch 2.14.1" and summary["dataset"] == "6c5c · 15 images"
    assert summary["run dates"] == "2026-11-29 20:03 UTC to 2026-11-29 21:03 UTC"
    assert summary["precision"] == "not recorded"
    older = summarise(_tables([], provenance=[{"file_times": [1795982614.0]}]))
    assert older["NVIDIA driver"] == "not recorded"
    assert older["run dates"] == "2026-11-29 20:03 UTC (file times: the files record none)"


def test_several_runs_need_out(tmp_path, capsys):
    first, second = make_run(tmp_path / "first"), make_run(tmp_path / "second", "pretrained")
    capsys.readouterr()
    assert main(["report", str(first), str(second)]) == 2
    assert "give --out DIR for several runs" in capsys.readouterr().err
    assert main(["report", str(first), str(second), "--out", str(tmp_path / "both")]) == 0
    page = (tmp_path / "both" / "index.html").read_text()
    assert page.count('<tr data-framework=') == 8 and '<select data-filter="run">' in page
    # one run given as a URI: its page goes to RUN/report there, or to --out
    assert main(["report", first.as_uri()]) == 0
    assert (first / "report" / "index.html").is_file()
    assert main(["report", first.as_uri(), "--out", str(tmp_path / "uri")]) == 0
    assert (tmp_path / "uri" / "index.html").is_file()
    unscored = tmp_path / "unscored"  # scored first, local or URI
    write_pair(unscored, "pytorch", "m", LABELS, [[0, 1, 2, 3, 4]] * 4)
    assert main(["report", unscored.as_uri(), "--out", str(tmp_path / "x")]) == 0
    assert (unscored / "results" / "accuracy.json").is_file() and (tmp_path / "x" / "index.html").is_file()


@pytest.mark.parametrize("rows", [[], [_row("m", float("nan"))]])
def test_a_table_without_figures_still_renders(tmp_path, rows):
    path = write_html_report([_tables(rows)], tmp_path)
    assert "<table id=\"results\">" in path.read_text()
