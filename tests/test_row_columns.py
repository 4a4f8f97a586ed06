"""Every column name the report, the printout and the label-set tables read or write is a
declared ScoreRow field: a misspelt name would otherwise read as an empty column."""

from runner.report import html, html_rows, printout
from runner.report.html_rows import Page, PageRow
from runner.score import label_tables
from runner.score.columns import SETTING_DEFAULTS
from runner.score.rows import COLUMNS, RANKED, ScoreRow

PAGE_MADE = {"rank", "run", "label", "er"}  # what the page computes beside the table's columns


class Asked(dict):
    """A page row's cells that record every column asked for."""

    def __init__(self, cells):
        super().__init__(cells)
        self.asked = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)


def test_the_html_page_reads_only_score_row_columns():
    cells = Asked({"run": "r", "label": "m", "rank": 1, **dict.fromkeys(COLUMNS, 1.0)})
    views = {view: Asked({"acc1": 1.0, "acc5": 1.0, "rank": 1, "er": 0.5}) for view in ("ReaL", "imagenet-a")}
    row = PageRow(cells, views)
    page = Page([row], ["ReaL"], ["imagenet-a"], random_weights=False)
    for column in html.columns(page):
        column.cell(row)
    assert {"acc1", "acc1_ci_low", "published_delta1", "model_set"} <= cells.asked
    assert cells.asked - PAGE_MADE <= set(COLUMNS)
    assert set(html.FILTERS.values()) - PAGE_MADE <= set(COLUMNS)
    named = {*html_rows.SETTINGS, *html_rows.FROM_PROVENANCE,
             *(column for pair in html_rows.TABLE_VIEWS.values() for column in pair)}
    assert named <= set(COLUMNS)


def test_the_label_tables_printout_and_settings_name_score_row_columns():
    assert set(label_tables.DESCRIBING) <= set(ScoreRow.model_fields)
    assert {*printout.SETTINGS, *printout.FIGURES} <= set(COLUMNS)
    assert {*SETTING_DEFAULTS, *RANKED, *RANKED.values()} <= set(COLUMNS)


def test_given_names_only_fields():
    row = ScoreRow.model_construct(framework="pytorch", model="m", acc1=1.0)
    assert row.given("acc1") and not row.given("cacc1")
    try:
        row.given("cacc_1")
    except AttributeError as exc:
        assert "cacc_1" in str(exc)
    else:
        raise AssertionError("given() accepted a name that is no field")
