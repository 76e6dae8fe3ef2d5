"""A program on a real pseudo-terminal, and a small screen that reads back what it drew.

The reader thread drains the pty all the time (a dashboard that cannot write
its output blocks), keeps every byte written (for tests about what must never
reach a terminal) and replays it on :class:`Screen`, a grid of cells that
understands what Textual writes: cursor moves, erases, colours (ignored) and
text. Tests then ask for what is on the screen now, as a user would read it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import threading
import time
from pathlib import Path

from rich.cells import get_character_cell_size
from textual.renderables.digits import DIGITS, DIGITS3X3, DIGITS3X3_BOLD

__all__ = ["Screen", "Terminal", "big", "shows_big", "until_shown"]

# One control sequence or one run of text, in the order written.
# until_shown gives a screen that keeps changing this many times its timeout to show what it waits for.
STILL_CHANGING = 6
_TOKEN = re.compile(
    r"\x1b\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])"  # CSI
    r"|\x1b[\]P_^X][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, DCS, APC, PM, SOS (to BEL or ST)
    r"|\x1b[ -/]*[0-~]"  # other escapes: ESC 7, ESC =, ESC ( B …
    r"|(?P<control>[\x00-\x1f\x7f])"
    r"|(?P<text>[^\x00-\x1f\x7f]+)"
)
# A sequence cut off at the end of what has arrived so far: wait for the rest.
_INCOMPLETE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]P_^X][^\x07\x1b]*\x1b?|[ -/]*)?\Z")


class Screen:
    """The visible cells of a terminal of ``columns`` x ``lines``, fed with what a program writes."""

    def __init__(self, columns: int, lines: int) -> None:
        self.columns, self.lines = columns, lines
        self.cells = [[" "] * columns for _ in range(lines)]
        self.row = self.column = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = ""

    def feed(self, data: bytes) -> None:
        text = self._tail + self._decoder.decode(data)
        cut = _INCOMPLETE.search(text)
        self._tail, text = (text[cut.start() :], text[: cut.start()]) if cut else ("", text)
        for token in _TOKEN.finditer(text):
            if token.group("text") is not None:
                self._write(token.group("text"))
            elif token.group("control") is not None:
                self._control(token.group("control"))
            elif token.group("final") is not None:
                self._csi(token.group("params"), token.group("final"))

    def _write(self, text: str) -> None:
        for char in text:
            width = get_character_cell_size(char)
            if width == 0:
                continue
            if 0 <= self.row < self.lines and self.column + width <= self.columns:
                self.cells[self.row][self.column] = char
                if width == 2:
                    self.cells[self.row][self.column + 1] = ""
            self.column += width

    def _control(self, char: str) -> None:
        if char == "\r":
            self.column = 0
        elif char == "\n":
            self.row = min(self.row + 1, self.lines - 1)
        elif char == "\b":
            self.column = max(self.column - 1, 0)

    def _csi(self, params: str, final: str) -> None:
        private = params.startswith(("?", ">", "<", "="))
        numbers = [int(n) if n.isdigit() else 0 for n in params.lstrip("?><=").split(";")]
        first = numbers[0] or 1
        if private:
            if final in "hl" and {47, 1047, 1049} & set(numbers):
                self._erase(0, 0, self.lines, 0)  # the alternate screen starts blank
            return
        if final in "Hf":
            self.row = min(max(first, 1), self.lines) - 1
            self.column = min(max(numbers[1] if len(numbers) > 1 and numbers[1] else 1, 1), self.columns) - 1
        elif final == "A":
            self.row = max(self.row - first, 0)
        elif final == "B":
            self.row = min(self.row + first, self.lines - 1)
        elif final == "C":
            self.column = min(self.column + first, self.columns - 1)
        elif final == "D":
            self.column = max(self.column - first, 0)
        elif final == "G":
            self.column = min(first, self.columns) - 1
        elif final == "d":
            self.row = min(first, self.lines) - 1
        elif final == "J":
            mode = numbers[0]
            if mode == 0:
                self._erase(self.row, self.column, self.lines, 0)
            elif mode == 1:
                self._erase(0, 0, self.row, self.column + 1)
            else:
                self._erase(0, 0, self.lines, 0)
        elif final == "K":
            mode = numbers[0]
            start = 0 if mode in (1, 2) else self.column
            end = self.column + 1 if mode == 1 else self.columns
            for column in range(start, min(end, self.columns)):
                self.cells[self.row][column] = " "

    def _erase(self, row: int, column: int, end_row: int, end_column: int) -> None:
        """Blank from (row, column) up to (end_row, end_column), exclusive."""
        for r in range(row, min(end_row + 1, self.lines)):
            start = column if r == row else 0
            stop = end_column if r == end_row else self.columns
            for c in range(start, stop):
                self.cells[r][c] = " "

    def text(self) -> str:
        """The screen as lines of text, trailing blanks removed."""
        return "\n".join("".join(line).rstrip() for line in self.cells)


class Terminal:
    """A program on a pseudo-terminal of ``size`` (columns, lines); a thread keeps reading what it writes."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int] = (80, 24)) -> None:
        columns, lines = size
        self.size = size
        self.screen = Screen(columns, lines)
        self.output = b""  # everything written, for tests about bytes that must never be sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the size is set before the program can ask for it
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read_forever, daemon=True)
        self._reader.start()

    def _read_forever(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                data = os.read(self.fd, 65536) if ready else b""
            except OSError:  # EIO: the program and everything it started closed the pty
                return
            if ready and not data:
                return
            if data:
                with self._lock:
                    self.output += data
                    self.screen.feed(data)

    def text(self) -> str:
        """What the screen shows now."""
        with self._lock:
            return self.screen.text()

    def shows(self, *needles: str) -> bool:
        """True if every one of ``needles`` is on the screen now."""
        text = self.text()
        return all(needle in text for needle in needles)

    def has_written(self, needle: bytes) -> bool:
        with self._lock:
            return needle in self.output

    def type(self, text: str) -> None:
        """Write ``text`` as typed keys, all at once (a macro, a paste)."""
        try:
            os.write(self.fd, text.encode())
        except OSError as exc:
            tail = self.output[-3000:].decode(errors="replace")
            raise AssertionError(f"the program is gone (exit status {self._reap(os.WNOHANG)}): {tail}") from exc

    def type_slowly(self, keys: list[str], gap: float) -> None:
        """Write each of ``keys`` with ``gap`` seconds between them: the delay between keystrokes is the test."""
        for n, key in enumerate(keys):
            if n:
                time.sleep(gap)
            os.write(self.fd, key.encode())

    def cpu_seconds(self) -> float:
        """The CPU time the program has used so far (0 once it is gone): it is working, however slowly."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def alive(self) -> bool:
        return self._reap(os.WNOHANG) is None

    def _reap(self, options: int) -> int | None:
        if self.status is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, options)
                if pid:
                    self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float) -> int | None:
        """The exit status once the program has exited, or None if it is still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._reap(os.WNOHANG) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.status

    def kill(self) -> None:
        """SIGKILL the program (no cleanup of any kind), reap it, and stop reading."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(0)
        self._stop.set()
        self._reader.join(timeout=5)
        if self.fd >= 0:  # once: a second close could hit another file that got the same number since
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def describe(self) -> str:
        """The screen, for failure messages."""
        return f"screen of {self.size[0]}x{self.size[1]}:\n{self.text()}"


async def until_shown(terminal: Terminal, *needles: str, timeout: float = 10.0) -> str:
    """Wait until every one of ``needles`` is on the screen at once; return the screen then.

    The deadline waits on the screen, not on the clock: it passes after ``timeout`` seconds in which
    the screen did not change (nor, before its first frame, did the program do any work). A busy
    machine that draws slowly moves it on; a program stuck, or settled without showing them, does
    not. A screen that keeps changing without ever showing them fails after ``STILL_CHANGING`` times that.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    seen, worked = terminal.text(), terminal.cpu_seconds()
    deadline = started + timeout
    while not terminal.shows(*needles):
        now, text = loop.time(), terminal.text()
        if text != seen or (not text.strip() and terminal.cpu_seconds() > worked + 0.05):
            seen, worked, deadline = text, terminal.cpu_seconds(), now + timeout
        if now > deadline or now > started + STILL_CHANGING * timeout:
            why = f"a screen unchanged for {timeout:g} s" if now > deadline else "a screen that never settled"
            raise AssertionError(f"{needles!r} not on the screen ({why}); {terminal.describe()}")
        await asyncio.sleep(0.02)
    return terminal.text()


def big(text: str, *, bold: bool = True) -> tuple[str, str, str]:
    """The three rows Textual's big digits draw ``text`` with (as the dashboard's total does, in bold)."""
    font = DIGITS3X3_BOLD if bold else DIGITS3X3
    rows: tuple[list[str], list[str], list[str]] = ([], [], [])
    for char in text.replace(".", "•"):
        if char in DIGITS:
            at = DIGITS.index(char) * 3
            for row in range(3):
                rows[row].append(font[at + row].ljust(3))
        else:
            rows[0].append(" ")
            rows[1].append(" ")
            rows[2].append(char)
    top, middle, bottom = ("".join(row).rstrip() for row in rows)
    return top, middle, bottom


def shows_big(screen: str, text: str) -> bool:
    """True if ``screen`` shows ``text`` in big digits, whole: its three rows one under the other, aligned."""
    lines = screen.splitlines()
    top, middle, bottom = big(text)
    for row in range(len(lines) - 2):
        start = lines[row].find(top)
        while start >= 0:
            if lines[row + 1][start:].startswith(middle) and lines[row + 2][start:].startswith(bottom):
                return True
            start = lines[row].find(top, start + 1)
    return False
