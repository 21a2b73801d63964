"""scripts/reproduce/publish_claims.py: a finished study's pages go between the markers of docs/results.md
and README.md, the charts beside them, the rest of both files untouched, and a second run changes nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _trainer_utils import REPO

SCRIPT = REPO / "scripts" / "reproduce" / "publish_claims.py"


def study(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").write_text("## The claims at CPU scale: new\n\n![c](claims.png)\n![r](results.png)\n| new table |\n")
    (out / "verdicts.md").write_text("| claim | mark |\n|---|---|\n| calibration | + |\n")
    for name in ("claims.png", "results.png", "cams.png"):
        (out / name).write_bytes(b"png " + name.encode())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text(
        "# page\nintro\n<!-- claims study: begin -->\n## old section\n| old table |\n<!-- claims study: end -->\n"
        "<!-- issue 21 section -->\nkept\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# mixcut\n## Quickstart\n<!-- claims verdicts: begin -->\nplaceholder\n<!-- claims verdicts: end -->\n## Data\n"
    )
    return out, docs, readme


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_publishes_between_the_markers_and_is_idempotent(tmp_path):
    out, docs, readme = study(tmp_path)
    assert run(out, "--docs", docs, "--readme", readme).returncode == 0
    page = (docs / "results.md").read_text()
    assert "| new table |" in page and "| old table |" not in page and "## old section" not in page
    assert page.startswith("# page\nintro\n") and page.endswith("<!-- issue 21 section -->\nkept\n")
    assert "](results/claims.png)" in page and "](results/results.png)" in page  # charts beside the page
    assert (docs / "results" / "cams.png").read_bytes() == b"png cams.png"
    text = readme.read_text()
    assert "| calibration | + |" in text and "placeholder" not in text and "](docs/results/claims.png)" in text
    assert text.startswith("# mixcut\n## Quickstart\n") and text.endswith("<!-- claims verdicts: end -->\n## Data\n")
    before = (page, text)
    assert run(out, "--docs", docs, "--readme", readme).returncode == 0
    assert ((docs / "results.md").read_text(), readme.read_text()) == before


@pytest.mark.parametrize("broken", ["missing_study", "missing_marker"])
def test_refuses_with_a_sentence_before_writing_anything(tmp_path, broken):
    out, docs, readme = study(tmp_path)
    if broken == "missing_study":
        (out / "verdicts.md").unlink()
    else:
        readme.write_text("# mixcut\nno markers\n")
    page = (docs / "results.md").read_text()
    result = run(out, "--docs", docs, "--readme", readme)
    assert result.returncode != 0
    assert (
        ("verdicts.md is missing" in result.stderr) if broken == "missing_study" else ("claims verdicts: begin" in result.stderr)
    )
    assert (docs / "results.md").read_text() == page and not (docs / "results").exists()


def test_the_repository_pages_carry_the_markers():
    """A later edit of README.md or docs/results.md that drops a marker would make the next publication fail."""
    for path, markers in (("docs/results.md", "claims study"), ("README.md", "claims verdicts")):
        text = (REPO / path).read_text()
        assert text.count(f"<!-- {markers}: begin -->") == 1 and text.count(f"<!-- {markers}: end -->") == 1, path
