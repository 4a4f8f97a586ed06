"""The README and docs/ stay true to the code they document."""

import re

import pytest

from runner.catalog import docs as catalog_docs
from runner.config import RunConfig

from .helpers import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]

# The README opens with these lines, exactly: the two commands a user needs.
TWO_COMMANDS = """\
# kpbench

```sh
make run    # sets itself up, then runs the built-in smoke benchmark on local Ray
make test   # sets itself up, then runs the tests
```
"""


def test_readme_starts_with_the_two_commands():
    head = README.split("\n## ")[0]
    assert head.index("make run") < head.index("make test")


def test_readme_first_lines_are_exactly_the_two_commands():
    assert README.startswith(TWO_COMMANDS)


def test_every_config_key_is_documented():
    reference = DOCS / "configuration.md"
    assert reference.is_file(), f"{reference} is missing: it is generated from RunConfig"
    text = reference.read_text()
    for key in RunConfig.model_fields:
        assert f"`{key}`" in text or f"`--{key.replace('_', '-')}`" in text, key


def test_every_table_and_prediction_column_is_documented():
    from runner.predictions import PREDICTION_SCHEMA, SUBSET_FIELDS
    from runner.score.rows import COLUMNS

    text = (DOCS / "results.md").read_text()
    for column in [*COLUMNS, *PREDICTION_SCHEMA.names, *(field.name for field in SUBSET_FIELDS)]:
        assert f"`{column}`" in text, column


def test_every_config_file_is_described():
    for config in (ROOT / "configs").glob("*.yaml"):
        assert f"`{config.name}`" in README, config.name


def test_catalog_page_is_what_the_catalog_files_give():
    if catalog_docs.DOCS_FILE.read_text() != catalog_docs.render():
        pytest.fail("docs/catalog.md is stale: run `make docs` and commit it")


def _anchors(page) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_lead_to_existing_pages_and_headings(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to a missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading #{anchor} in {linked.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_project_paths_named_in_the_docs_exist(page):
    paths = re.findall(r"`((?:runner|tests|bench|docker|configs|deploy|docs)/[^`\s]*)`", page.read_text())
    for named in {p.rstrip(".,:") for p in paths if not any(c in p for c in "<{")}:
        path, _, test = named.partition("::")  # a pytest node id: tests/test_x.py::test_y
        assert list(ROOT.glob(path)), f"{page.name} names {path}, which does not exist"
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(), f"{page.name} names {named}"
