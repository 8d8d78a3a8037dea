"""Run a documentation page as a reader would: its shell and Python blocks, in page order.

What a page may say, for this runner (docs/architecture.md, "Docs that run", says it briefly):

- A ```` ```bash ```` (or ``sh``, ``shell``, ``console``) block is run by one ``bash`` per page,
  under ``set -euo pipefail``, so variables and background servers carry from block to block.
  In a ``console`` block only the lines starting with ``$ `` are commands.
- A ```` ```python ```` block is executed in one namespace per page, in the test process. One
  whose paragraph ends with "Save this as `NAME`:" is also written to ``NAME`` for the shell
  blocks after it; one fenced ```` ```python title="path" ```` is an excerpt of that file
  instead, checked to be verbatim.
- ``# -> TEXT`` at the end of a shell line promises ``TEXT`` in the block's output, after what
  the block's previous promise matched. A ```` ```text output ```` block
  right after a shell block is its output: each line must appear in order, ``...`` matching
  anything within a line, a line of only ``...`` any number of lines.
- ``<!-- not run: REASON -->`` on the line before a fence skips the block (REASON is required).

Each page gets a temporary directory of its own as working directory and ``HOME``, this
virtual environment's ``bin`` first on ``PATH``, ``AUTHCORE_DB`` naming an SQLite file there,
and every documented port (8000, 8001, 8002, 8010, 8011, 9100) replaced by a free one. What a
block started in the background is killed with the page's process group at the end.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import attrs

from tests.service.ports import free_ports

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = frozenset({"bash", "sh", "shell", "console"})
#: The ports the docs use, each replaced by a free one per page.
PORTS = (8000, 8001, 8002, 8010, 8011, 9100)
#: The longest one block may take (a server start, a revocation followed for a few seconds).
BLOCK_SECONDS = 60.0

_FENCE = re.compile(
    r"^```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<code>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE
)
_MARKER = re.compile(r"^<!-- not run:(?P<reason>.*?)-->\s*$")
_SAVE_AS = re.compile(r"Save this as\s+`(?P<name>[\w./-]+)`:\s*$")
_TITLE = re.compile(r'title="(?P<path>[^"]+)"')
_PROMISE = re.compile(r"\s#\s->\s(?P<text>.+?)\s*$")
_DONE = "__authcore_docs_block_done__"


@attrs.frozen
class Block:
    """One fenced block of a page."""

    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    info: str
    code: str
    skipped: str | None  # the reason of a <!-- not run: ... --> marker
    save_as: str | None  # a Python block the text asks to save as a file
    output: str | None  # the ```text output block that follows a shell block

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.lang} block)"

    @property
    def runs(self) -> bool:
        return self.skipped is None and (self.lang in SHELLS or self.lang == "python")

    def commands(self) -> str:
        if self.lang != "console":
            return self.code
        return "".join(line[2:] + "\n" for line in self.code.splitlines() if line.startswith("$ "))

    def promises(self) -> list[str]:
        return [m["text"] for line in self.code.splitlines() if (m := _PROMISE.search(line))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in page order (an output block joins its command's)."""
    text = path.read_text(encoding="utf-8")
    found: list[Block] = []
    previous_end = -1
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        marker = _MARKER.match(before)
        save = _SAVE_AS.search(text[: match.start()].rstrip())
        block = Block(
            page=path.name,
            line=text.count("\n", 0, match.start()) + 1,
            lang=match["lang"],
            info=match["info"].strip(),
            code=match["code"],
            skipped=None if marker is None else marker["reason"].strip(),
            save_as=save["name"] if save and match["lang"] == "python" else None,
            output=None,
        )
        adjacent = previous_end >= 0 and not text[previous_end : match.start()].strip()
        if block.lang == "text" and block.info == "output" and adjacent and found:
            found[-1] = attrs.evolve(found[-1], output=block.code)
        found.append(block)
        previous_end = match.end()
    return found


def matches_output(expected: str, output: str) -> str | None:
    """None if every line of ``expected`` appears in ``output`` in order, else the first that
    does not (``...`` matches anything within a line; a line of only ``...``, any lines)."""
    lines = output.splitlines()
    position = 0
    for wanted in expected.strip("\n").splitlines():
        if wanted.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.strip().split("...")))
        for index in range(position, len(lines)):
            if pattern.fullmatch(lines[index].strip()):
                position = index + 1
                break
        else:
            return wanted
    return None


def missing_promise(promises: list[str], output: str) -> str | None:
    """None if each promised text is in ``output``, each after the one before, else the first
    that is not (by position, not by line: curl prints a body without a final newline)."""
    position = 0
    for promise in promises:
        found = output.find(promise, position)
        if found < 0:
            return promise
        position = found + len(promise)
    return None


def substitute_ports(code: str, ports: Mapping[int, int]) -> str:
    for documented, free in ports.items():
        code = re.sub(rf"\b{documented}\b", str(free), code)
    return code


def page_environment(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(directory)
    env["AUTHCORE_DB"] = f"sqlite:///{directory / 'authcore.db'}"
    return env


class Shell:
    """One ``bash`` for a page: blocks run in it one after another; output per block."""

    def __init__(self, directory: Path, env: Mapping[str, str]) -> None:
        self._errors = (directory / ".docs-stderr").open("w+", encoding="utf-8")
        self._process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=directory,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            start_new_session=True,  # its own process group: servers it starts die with it
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self._process.stdout is not None
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()
        self._send("set -euo pipefail\n")

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _send(self, text: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(text)
        self._process.stdin.flush()

    def run(self, code: str) -> tuple[bool, str, str]:
        """Run ``code``; return (finished, its stdout, its stderr)."""
        errors_from = self._errors.seek(0, os.SEEK_END)
        # A subshell-free block: `set -e` ends the shell at the first failing command.
        # `jobs` forgets the jobs that ended, as an interactive shell does before each prompt,
        # so the next block's first background server is %1 again, as it is for a reader.
        self._send(f"{code}\njobs >/dev/null\nprintf '\\n{_DONE}\\n'\n")
        out: list[str] = []
        finished = False
        deadline = time.monotonic() + BLOCK_SECONDS
        # Not only the end of stdout: a server the block started in the background holds it
        # open after the shell itself has ended.
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                if self._process.poll() is not None and self._lines.empty():
                    break
                continue
            if line is None:
                break
            if line.rstrip("\n") == _DONE:
                finished = True
                break
            out.append(line)
        self._errors.seek(errors_from)
        return finished, "".join(out), self._errors.read()

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._errors.close()


def page_ports() -> dict[int, int]:
    return dict(zip(PORTS, free_ports(len(PORTS)), strict=True))


def runnable(path: Path) -> Iterator[Block]:
    return (block for block in blocks(path) if block.runs)
