"""The report page in a real browser: headless Chromium (Debian's `chromium` package, driven by
Playwright's Python API with that executable) loads report/index.html from file:// with the
network cut off. Screenshots are kept in runs/artifacts/ (or $KPBENCH_ARTIFACTS)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from runner.cli import main

from .helpers import ROOT, SHARED, write_report_run

ARTIFACTS = Path(os.environ.get("KPBENCH_ARTIFACTS", ROOT / "runs" / "artifacts"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def browser():
    executable = next(filter(None, map(shutil.which, BROWSERS)), None)
    if executable is None:
        pytest.skip("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                    "`apt-get install chromium` to run the browser tests (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed (it is in requirements.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, chromium_sandbox=False)
        yield browser
        browser.close()


class Opened:
    """A report page in a fresh offline browser context, with what it logged and fetched."""

    def __init__(self, browser, path: Path):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
        self.fetched: list[str] = []  # anything beyond the file itself and data: URLs
        self.context.route("**/*", self._block)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(path.as_uri(), wait_until="load")

    def _block(self, route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.fetched.append(route.request.url)
            route.abort()

    def labels(self) -> list[str]:
        return self.page.eval_on_selector_all("#results tbody tr:not([hidden])",
                                              "rows => rows.map(row => row.dataset.label)")

    def values(self, header: str) -> list[float]:
        index = self.headers().index(header)
        return self.page.eval_on_selector_all(
            "#results tbody tr:not([hidden])",
            f"rows => rows.map(row => Number(row.cells[{index}].dataset.value))")

    def headers(self) -> list[str]:
        return self.page.eval_on_selector_all("#results thead th",
                                              "cells => cells.map(cell => cell.innerText.trim())")

    def sort(self, header: str) -> None:
        """Click the column's header (its name stays the same once sorted: the arrow is decoration)."""
        self.page.get_by_role("button", name=header, exact=True).click()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


def test_sorting_filtering_no_errors_no_network(browser, tmp_path):
    run = write_report_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    opened = Opened(browser, run / "report" / "index.html")
    assert opened.labels() == ["MobileNet", "resnet50", "ResNet50", "vgg16"]  # by rank
    assert opened.page.locator("#shown").inner_text() == "4 of 4 rows"

    opened.sort("GFLOPs")  # numbers: largest first
    assert opened.labels() == ["vgg16", "resnet50", "ResNet50", "MobileNet"]
    assert opened.page.locator("th[aria-sort]").inner_text().startswith("GFLOPs")
    assert opened.values("GFLOPs") == [15.5, 4.1, 3.9, 0.57]
    opened.sort("GFLOPs")  # again: reversed
    assert opened.labels() == ["MobileNet", "ResNet50", "resnet50", "vgg16"]
    opened.sort("Acc@1")
    assert opened.values("Acc@1") == [100.0, 75.0, 50.0, 25.0]
    opened.sort("framework")  # text: A to Z, ties keep the order they had
    assert opened.labels() == ["MobileNet", "ResNet50", "resnet50", "vgg16"]

    opened.page.select_option('select[data-filter="framework"]', "pytorch")
    assert opened.labels() == ["resnet50", "vgg16"]
    assert opened.page.locator("#shown").inner_text() == "2 of 4 rows"
    opened.page.fill("#search", "vgg")
    assert opened.labels() == ["vgg16"]
    opened.page.fill("#search", "")
    opened.page.select_option('select[data-filter="framework"]', "")
    assert len(opened.labels()) == 4

    assert opened.page.locator("figure.chart svg").count() == 5  # tiers: every table has them
    assert opened.page.locator(".random-banner").is_visible()
    shot = opened.screenshot("report-browser.png")
    assert shot.stat().st_size > 20_000
    assert opened.errors == [] and opened.fetched == []


def test_the_2019_import_with_real(browser, imported_2019):
    real = SHARED / "imagenet" / "real.json"
    assert main(["score", str(imported_2019), "--real", str(real)]) == 0
    assert main(["report", str(imported_2019)]) == 0
    opened = Opened(browser, imported_2019 / "report" / "index.html")
    assert len(opened.labels()) == 34 and "ReaL Acc@1" in opened.headers()
    opened.sort("ReaL Acc@1")
    table = json.loads((imported_2019 / "results" / "accuracy.json").read_text())["rows"]
    best = max(table, key=lambda row: row["real_acc1"])
    assert opened.labels()[0] == best["model"] == "nasnetlarge"
    opened.page.select_option('select[data-filter="framework"]', "keras")
    assert len(opened.labels()) == 13
    opened.page.select_option('select[data-filter="framework"]', "")
    assert opened.page.locator("figure.chart figcaption").all_inner_texts() == [
        "Accuracy against compute", "Accuracy against size", "Frameworks per architecture",
        "Measured against published", "Rank movement", "Tiers"]
    opened.sort("Acc@1")
    opened.screenshot("report-2019.png")
    assert opened.errors == [] and opened.fetched == []
