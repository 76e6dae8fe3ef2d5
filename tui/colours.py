"""The theme's colours for lines built with plain colour names.

Widgets build their lines with the plain colour names ``green``, ``red`` and
``yellow`` (meaning good, bad and wait); :func:`themed` turns them into the
theme's success, error and warning colours when a line is drawn, so that every
colour follows the theme, and a change of theme draws them again in the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from rich.style import Style
from rich.text import Span, Text

__all__ = ["MEANINGS", "themed"]

# The colour names widgets use, and the theme's variable each stands for.
MEANINGS = {"green": "success", "red": "error", "yellow": "warning"}


def themed(text: Text, variables: Mapping[str, str]) -> Text:
    """``text`` with its green, red and yellow in the theme's colours (``variables``: the app's theme variables)."""
    palette = tuple(sorted((name, variables.get(meaning, name)) for name, meaning in MEANINGS.items()))
    spans = [Span(span.start, span.end, _style(span.style, palette)) for span in text.spans]
    return Text(text.plain, style=_style(text.style, palette), spans=spans, end=text.end, justify=text.justify,
                overflow=text.overflow, no_wrap=text.no_wrap)  # fmt: skip


@lru_cache(maxsize=256)
def _style(style: str | Style, palette: tuple[tuple[str, str], ...]) -> str | Style:
    if not isinstance(style, str):
        return style
    colours = dict(palette)
    return " ".join(colours.get(word, word) for word in style.split())
