"""Every relative link in README.md and docs/*.md leads to a file of the repository.

A link outside the repository (``../shared/…``) works on one machine only; a renamed file
leaves a dead link behind.  Anchors (``#exit-codes``, ``install.md#docker``) must name a
heading of the file they point into.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target), the text possibly spanning lines; [label]: target
INLINE = re.compile(r"!?\[(?:[^\]]|\n)*?\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def links(text: str) -> list[str]:
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    return INLINE.findall(prose) + REFERENCE.findall(prose)


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("//")


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            title = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading.group(1)).lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def problems(document: Path) -> list[str]:
    wrong = []
    for target in links(document.read_text(encoding="utf-8")):
        if not is_relative(target):
            continue
        where, _, anchor = target.partition("#")
        path = (document.parent / where).resolve() if where else document
        if not path.is_relative_to(ROOT):
            wrong.append(f"{target}: outside the repository")
        elif not path.exists():
            wrong.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            wrong.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    return wrong


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_of_the_repository(document: Path) -> None:
    assert problems(document) == []


def test_the_documents_name_nothing_outside_the_repository() -> None:
    # not even as text: a reader cannot open ../shared/… from a clone
    for document in DOCUMENTS:
        assert "../shared" not in document.read_text(encoding="utf-8"), document


def test_the_checker_finds_dead_links(tmp_path: Path) -> None:
    assert links("see [a](docs/x.md) and ![b\nc](img/y.png)\n\n[r]: ../z.md\n") == [
        "docs/x.md",
        "img/y.png",
        "../z.md",
    ]
    assert links("```\n[a](nowhere.md)\n```\n`[b](nowhere.md)`") == []
    assert not is_relative("https://example.org/a.md")
    assert anchors(ROOT / "docs" / "install.md") >= {"exit-codes"}


def test_the_readme_links_the_architecture_and_the_vendor_api() -> None:
    readme_links = links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"docs/architecture.md", "docs/vendor-api.md", "docs/install.md"} <= set(readme_links)
