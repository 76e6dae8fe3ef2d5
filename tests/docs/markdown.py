"""What the docs tests read in Markdown: links, headings' anchors (as GitHub makes them) and fenced blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPOSITORY", "Link", "anchors", "broken_links", "code_blocks", "documents", "links", "prose"]

REPOSITORY = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(```|~~~)")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_EXTERNAL = ("http://", "https://", "mailto:")


@dataclass(frozen=True, slots=True)
class Link:
    source: Path
    line: int
    target: str


def documents() -> list[Path]:
    """The README and every page in docs/."""
    return [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]


def prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of each fenced code block."""
    blocks: list[tuple[str, str]] = []
    body: list[str] = []
    info, fenced = "", False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            if fenced:
                blocks.append((info, "\n".join(body)))
            else:
                info, body = line.lstrip()[3:].strip(), []
            fenced = not fenced
        elif fenced:
            body.append(line)
    return blocks


def links(path: Path) -> list[Link]:
    """Every link and image in ``path``'s prose (not in code)."""
    found = []
    for number, line in prose(path.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append(Link(path, number, match.group(1)))
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation gone, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings, numbered like GitHub's when a heading repeats."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose(path.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(paths: list[Path]) -> list[str]:
    """Every relative link in ``paths`` whose file or anchor does not exist, said for a person."""
    problems = []
    for path in paths:
        for link in links(path):
            if link.target.startswith(_EXTERNAL):
                continue
            target, _, anchor = link.target.partition("#")
            destination = (path.parent / target).resolve() if target else path
            where = f"{path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path}:{link.line}"
            if not destination.exists():
                problems.append(f"{where}: {link.target}: no such file")
            elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination)):
                problems.append(f"{where}: {link.target}: no heading with the anchor #{anchor}")
    return problems
