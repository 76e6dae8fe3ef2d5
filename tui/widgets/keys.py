"""The key bar at the bottom: the keys that work now, as many as fit whole, never cut.

Read from the bindings that handle the keys (the focused panel's first, then the
app's), like Textual's footer, but laid out to the width: a key that does not fit
whole is left out rather than cut, and "? help", which lists every key, always
stays. Each key can be clicked.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

__all__ = ["KeyBar"]

GAP = "  "


class KeyBar(Static):
    """One line of ``key description`` pairs for the screen's active bindings (``show`` ones only)."""

    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; width: 100%; padding: 0 1; background: $footer-background; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda screen: self.refresh_keys())
        self.refresh_keys()

    def on_resize(self) -> None:
        self.refresh_keys()

    def pairs(self) -> list[tuple[str, str, str]]:
        """(key, description, action to run on a click) for each binding shown, the focused panel's first."""
        seen: set[str] = set()
        pairs: list[tuple[str, str, str]] = []
        for node, binding, enabled, _ in self.screen.active_bindings.values():
            if not binding.show or not enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            namespace = "app" if node is self.app else "focused" if node is self.app.focused else "screen"
            pairs.append((self.app.get_key_display(binding), binding.description, f"{namespace}.{binding.action}"))
        return pairs

    def refresh_keys(self) -> None:
        room = max(self.content_size.width, 1)
        pairs = self.pairs()
        help_pair = next((pair for pair in pairs if pair[2] == "app.help"), None)
        chosen: list[tuple[str, str, str]] = [help_pair] if help_pair is not None else []
        used = sum(len(f"{key} {text}") for key, text, _ in chosen)
        for pair in pairs:
            if pair is help_pair:
                continue
            width = len(f"{pair[0]} {pair[1]}") + len(GAP)
            if used + width <= room:
                chosen.append(pair)
                used += width
        # Help first, quitting last, the rest as the bindings come (the focused panel's before the app's).
        order = {id(pair): index for index, pair in enumerate(pairs)}
        chosen.sort(key=lambda pair: (pair[2] != "app.help", pair[2] == "app.quit", order[id(pair)]))
        parts = [
            Content.assemble((key, "bold $footer-key-foreground"), " ", description).stylize(f"@click={action}")
            for key, description, action in chosen
        ]
        self.update(Content(GAP).join(parts))
