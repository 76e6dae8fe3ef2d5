"""Remembered preferences: the server, the name and the theme, in ``config.toml``.

The file lives in the platform's config directory (``~/.config/tally`` on
Linux). Command-line flags and ``$TALLY_URL`` override it. The dashboard
saves the theme when it is changed in the app; saving rewrites only that
line, so the user's comments and other keys stay as they wrote them.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["Preferences", "config_path", "load", "save_value"]

KEYS = ("url", "name", "theme")
_HEADER = "# Tally's preferences. Flags and $TALLY_URL override them.\n"


@dataclass(frozen=True, slots=True)
class Preferences:
    url: str | None = None
    name: str | None = None
    theme: str | None = None
    # Why the file could not be read, to tell the user; the defaults are used meanwhile.
    problem: str | None = None


def config_path() -> Path:
    return platformdirs.user_config_path("tally") / "config.toml"


def load(path: Path | None = None) -> Preferences:
    """The preferences in ``path`` (default: :func:`config_path`); none if the file does not exist."""
    path = config_path() if path is None else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Preferences()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Preferences(problem=f"{path}: {exc}")
    values: dict[str, str] = {}
    wrong = [key for key in KEYS if key in data and not isinstance(data[key], str)]
    for key in KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            values[key] = value.strip()
    problem = f"{path}: {', '.join(wrong)} must be text in quotes" if wrong else None
    return Preferences(**values, problem=problem)


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character escaped."""
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def save_value(key: str, value: str, path: Path | None = None) -> Path:
    """Set top-level ``key`` to ``value`` in the file, keeping everything else; returns the path.

    Raises ``OSError`` if it cannot be written.
    """
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = _HEADER
    line = f"{key} = {_toml_string(value)}\n"
    lines = text.splitlines(keepends=True)
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    # Top-level keys come before the first [table]: only there is the key ours to set.
    end = next((i for i, existing in enumerate(lines) if existing.lstrip().startswith("[")), len(lines))
    found = next((i for i in range(end) if pattern.match(lines[i])), None)
    if found is not None:
        lines[found] = line
    else:
        if end and not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
        lines.insert(end, line)
    updated = "".join(lines)
    tomllib.loads(updated)  # never write a file we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(updated, encoding="utf-8")
    os.replace(temporary, path)
    return path
