"""``tally web``: the dashboard served to browsers (to be built)."""

from __future__ import annotations

import argparse

__all__ = ["serve_web"]


def serve_web(args: argparse.Namespace) -> int:
    raise NotImplementedError
