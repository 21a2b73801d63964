"""Publish a finished claims study (scripts/reproduce/cifar10_claims.sh OUT) into the docs, by program:
docs/results.md's claims section and the README's "What the claims study found" block are replaced by
what the study wrote, so no table on either page is filled by hand.

    python scripts/reproduce/publish_claims.py OUT [--docs docs] [--readme README.md]

* docs/results.md: everything between ``<!-- claims study: begin -->`` and ``<!-- claims study: end -->``
  becomes OUT/results.md (its chart links pointed at docs/results/), and the charts (claims.png,
  results.png, cams.png) are copied to docs/results/;
* README.md: everything between ``<!-- claims verdicts: begin -->`` and ``<!-- claims verdicts: end -->``
  becomes OUT/verdicts.md (the verdict table) with the claims chart and a link to docs/results.md.

The rest of both files is left as it is; running it twice gives the same files.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

CHARTS = ("claims.png", "results.png", "cams.png")
DOCS_MARKERS = ("<!-- claims study: begin -->", "<!-- claims study: end -->")
README_MARKERS = ("<!-- claims verdicts: begin -->", "<!-- claims verdicts: end -->")


def replace_between(text: str, markers: tuple[str, str], body: str, where: str) -> str:
    """``text`` with what lies between the two marker lines replaced by ``body``."""
    begin, end = markers
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"{where}: needs exactly one '{begin}' line followed by one '{end}' line.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body.strip()}\n{end}{tail}"


def chart_links(markdown: str, prefix: str) -> str:
    """Point the study's chart links (bare names, or any earlier prefix) at ``prefix``."""
    names = "|".join(re.escape(c) for c in CHARTS)
    return re.sub(rf"\]\((?:[^)]*/)?({names})\)", rf"]({prefix}\1)", markdown)


def publish(out: Path, docs: Path, readme: Path) -> list[Path]:
    """Write the study in ``out`` into ``docs``/results.md, ``docs``/results/ and ``readme``; returns what changed."""
    results, verdicts = out / "results.md", out / "verdicts.md"
    for need in (results, verdicts, out / "claims.png"):
        if not need.is_file():
            raise SystemExit(f"{need} is missing: run scripts/reproduce/cifar10_claims.sh {out} to the end first.")
    page = docs / "results.md"
    page_text = replace_between(page.read_text(), DOCS_MARKERS, chart_links(results.read_text(), "results/"), str(page))
    rel = docs.name  # the README sits beside docs/
    block = "\n".join([
        "## What the claims study found",
        "",
        f"Every claim of the mixing papers checked at CPU scale, one mark per claim ({rel}/results.md has every "
        f"table, the protocol and the seeds; written there and here by `scripts/reproduce/publish_claims.py`).",
        "",
        verdicts.read_text().strip(),
        "",
        f"![claims: reliability before/after temperature scaling, occlusion and attack curves]({rel}/results/claims.png)",
    ])  # fmt: skip
    readme_text = replace_between(readme.read_text(), README_MARKERS, block, str(readme))
    # both pages checked: only now write anything
    charts = docs / "results"
    charts.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CHARTS:
        if (out / name).is_file():
            shutil.copyfile(out / name, charts / name)
            written.append(charts / name)
    page.write_text(page_text)
    readme.write_text(readme_text)
    return written + [page, readme]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the OUT_DIR of a finished scripts/reproduce/cifar10_claims.sh")
    ap.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[2] / "docs")
    ap.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[2] / "README.md")
    args = ap.parse_args(argv)
    for path in publish(args.out, args.docs, args.readme):
        print("written:", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
