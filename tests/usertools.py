"""Running the installed ``explorer`` as a user does (subprocess, pseudo-terminal), and
checking that a failed command left the store as it was (file checksums, row counts)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

EXPLORER = Path(sys.executable).parent / "explorer"  # the console script pip installed
REPO = Path(__file__).resolve().parent.parent
LONG = "x" * 100  # a long directory name: titles holding a path wrap at any width
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[@-Z\\-_]")


def user_env(home: Path | None, columns: int = 200, lines: int = 40, **extra: str) -> dict[str, str]:
    """The environment of a person at a terminal of that size: EXPLORER_HOME set or not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPLORER_")}
    env.update(COLUMNS=str(columns), LINES=str(lines), **extra)
    env.pop("EXPLORER_DEBUG", None)
    if home is not None:
        env["EXPLORER_HOME"] = str(home)
    return env


def explorer(*args: str, cwd: Path, home: Path | None, columns: int = 200, timeout: float = 300,
             **extra: str) -> subprocess.CompletedProcess:
    """The installed ``explorer ARGS`` in a subprocess, from ``cwd``, with no --root."""
    assert EXPLORER.is_file(), f"no console script at {EXPLORER}: pip install -e ."
    return subprocess.run([str(EXPLORER), *args], cwd=cwd, env=user_env(home, columns, **extra),
                          capture_output=True, text=True, timeout=timeout)


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Exit 0 and no traceback."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    no_traceback(proc)
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """A user error: non-zero exit, no traceback, exactly one line on stderr starting with
    'error: ' (and not an internal error: the program names what was wrong)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, f"exit 0 for bad input; stdout: {proc.stdout[-1500:]}"
    no_traceback(proc)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def words(text: str) -> list[str]:
    """Whitespace-separated tokens of Rich output, table borders removed."""
    return re.sub(r"[│┃┆┊║|]", " ", text).split()


# --- the store, before and after --------------------------------------------------------

def checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every file under the data root (relative path -> digest)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def count_sql(sql_json: Callable[[str], list[dict]], tables: list[str] | None = None) -> dict[str, int]:
    """Rows per catalog table, asked through ``explorer sql --format json`` (``sql_json``
    runs one query and returns its rows); ``tables``: these (a new table shows in the
    catalog file's checksum), else every table."""
    if tables is None:
        tables = [r["table_name"] for r in sql_json("SELECT table_name FROM duckdb_tables() ORDER BY table_name")]
    if not tables:
        return {}
    union = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM \"{t}\"" for t in tables)
    return {r["t"]: r["n"] for r in sql_json(union)}


def subprocess_sql(home: Path, cwd: Path) -> Callable[[str], list[dict]]:
    def sql_json(query: str) -> list[dict]:
        proc = ok(explorer("sql", query, "--format", "json", cwd=cwd, home=home))
        rows = json.loads(proc.stdout)
        return rows["rows"] if isinstance(rows, dict) else rows

    return sql_json


@dataclass
class StoreState:
    files: dict[str, str]
    rows: dict[str, int]

    def diff(self, other: "StoreState") -> list[str]:
        changed = sorted(k for k in self.files.keys() | other.files.keys() if self.files.get(k) != other.files.get(k))
        rows = sorted(k for k in self.rows.keys() | other.rows.keys() if self.rows.get(k) != other.rows.get(k))
        return [f"file {k}" for k in changed] + [f"rows {k}: {self.rows.get(k)} -> {other.rows.get(k)}" for k in rows]


def store_state(root: Path, sql_json: Callable[[str], list[dict]], like: StoreState | None = None) -> StoreState:
    """Checksums and row counts (of the tables ``like`` counted, when given)."""
    return StoreState(checksums(root), count_sql(sql_json, sorted(like.rows) if like else None))


# --- a pseudo-terminal ------------------------------------------------------------------

@dataclass
class PtyRun:
    returncode: int | None  # None: still running at the timeout (then killed)
    saw_screen: bool
    screen_text: str  # everything the program wrote, escape sequences removed


def run_in_pty(argv: list[str], *, cwd: Path, env: dict[str, str], wait_for: list[str], keys: bytes,
               columns: int = 100, lines: int = 30, timeout: float = 60.0) -> PtyRun:
    """Start ``argv`` on a pseudo-terminal of that size, wait until every string of
    ``wait_for`` has appeared on the screen, type ``keys``, and wait for the exit."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = dict(env, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True)
    os.close(slave)
    raw, sent, end = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                raw += chunk
            elif proc.poll() is not None:
                break
            text = ANSI.sub("", raw.decode("utf-8", "replace"))
            if not sent and all(w in text for w in wait_for):
                time.sleep(0.3)  # let the first screen settle before the key
                os.write(master, keys)
                sent = True
        try:
            code = proc.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return PtyRun(code, sent, ANSI.sub("", raw.decode("utf-8", "replace")))
