"""The README stays true to the code it documents."""

from pathlib import Path

from runner.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))


def test_readme_starts_with_the_two_commands():
    head = README.split("\n## ")[0]
    assert head.index("make run") < head.index("make test")


def test_every_config_key_is_documented():
    for key in RunConfig.model_fields:
        assert f"| `{key}` |" in DOCS, key


def test_every_config_file_is_described():
    for config in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"):
        assert f"`{config.name}`" in README, config.name
