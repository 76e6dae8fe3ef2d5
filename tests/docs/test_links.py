"""Every relative link and anchor in the README and docs/ leads somewhere, and the README stays a front page."""

from __future__ import annotations

from pathlib import Path

from tests.docs.markdown import REPOSITORY, anchors, broken_links, documents, links, slug

# A front page, not a manual: the rest lives in docs/.
README_MAX_LINES = 150


def test_every_relative_link_and_anchor_resolves() -> None:
    """Each relative link in README.md and docs/*.md names a file that exists, and a heading in it if it has #."""
    assert broken_links(documents()) == []


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    """Negative control: a missing file and a missing anchor are reported; code blocks and good links are not."""
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## Some `code` here, too\n")
    page.write_text(
        "# Title\n\n"
        "[fine](other.md#some-code-here-too) [fine too](#title) [gone](missing.md) [wrong](other.md#nowhere)\n"
        "`[in code](missing-too.md)`\n\n```\n[in a block](missing-three.md)\n```\n"
        "[web](https://example.com/x#y)\n"
    )
    assert broken_links([page]) == [
        f"{page}:3: missing.md: no such file",
        f"{page}:3: other.md#nowhere: no heading with the anchor #nowhere",
    ]


def test_anchors_are_made_as_github_makes_them() -> None:
    """Headings become GitHub's anchors: code marks and punctuation dropped, spaces to hyphens, repeats numbered."""
    assert slug("`tally.v1`") == "tallyv1"
    assert slug("Limits (server defaults)") == "limits-server-defaults"
    assert slug("Libraries, and why") == "libraries-and-why"
    assert slug("`tally-server`") == "tally-server"
    assert {"tallyv1", "the-bare-number-path"} <= anchors(REPOSITORY / "docs" / "protocol.md")


def test_the_readme_is_a_front_page_that_links_every_page() -> None:
    """The README is at most 150 lines and links every page in docs/ (so nothing there is orphaned)."""
    readme = REPOSITORY / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES
    linked = {(readme.parent / link.target.partition("#")[0]).resolve() for link in links(readme)}
    pages = set(sorted((REPOSITORY / "docs").glob("*.md")))
    assert pages - linked == set()
