"""The root command group: the one-line error contract for everything a command does not
catch itself, and help that reads well at any width.

- A usage error (unknown option, a value of the wrong type) is one line,
  ``error: <Click's message> (see `explorer CMD --help`)``, exit 2, not Click's box.
- Any other exception is a bug; it is still one line, ``error: internal error (TypeError:
  ...); set EXPLORER_DEBUG=1 for the traceback``, exit 1. With ``EXPLORER_DEBUG=1`` the
  exception propagates and Python prints its traceback.
- Each command's help paragraphs are reflowed once, when the command tree is built, so a
  docstring's hard line breaks do not break lines mid-sentence in ``--help``.
- Flags (``--json``) show no value placeholder (Typer 0.29 shows ``<bool>``, yet a flag
  takes no value).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup

DEBUG_ENV = "EXPLORER_DEBUG"
# Typer 0.29 vendors Click (typer._click), older releases use click itself: take the base
# class from the exceptions Typer exports, whichever Click that is.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_BULLET = re.compile(r"\s*(?:[-*•]|\d+[.)])\s")


def reflow(text: str | None) -> str | None:
    """Join the lines of each paragraph; blank lines (paragraph breaks), ``\\b`` blocks
    (Click's "keep as written"), indented blocks, bullets and anything after ``\\f`` stay."""
    if not text:
        return text
    import inspect

    body, sep, tail = inspect.cleandoc(text).partition("\f")
    paragraphs = re.split(r"\n[ \t]*\n", body)
    return "\n\n".join(_reflow_paragraph(p) for p in paragraphs) + sep + tail


def _reflow_paragraph(p: str) -> str:
    lines = p.splitlines()
    if not lines:
        return p
    bullets = _BULLET.match(lines[0]) is not None  # indented lines continue a bullet
    if p.startswith("\b") or (not bullets and any(line[:1] in (" ", "\t") for line in lines[1:])):
        return p
    items: list[str] = []
    for line in lines:
        if not items or _BULLET.match(line):
            items.append(line.strip())
        else:
            items[-1] += " " + line.strip()
    return "\n".join(items)


def polish(command: Any) -> None:
    """Reflow the help of ``command`` and every command below it."""
    command.help = reflow(getattr(command, "help", None))
    for sub in getattr(command, "commands", {}).values():
        polish(sub)


def _patch_flag_metavar() -> None:
    """Typer >= 0.29 renders a flag's type as ``<bool>``; a flag takes no value, so show none."""
    from typer import core

    option = getattr(core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if original is None or getattr(original, "_explorer_flag_patch", False):
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._explorer_flag_patch = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_patch_flag_metavar()


def error_line(message: str, code: int) -> None:
    """Write ``error: message`` as one line on stderr and exit with ``code``."""
    text = " ".join(str(message).split()) or "unknown error"
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()
    sys.exit(code)


class ExplorerGroup(TyperGroup):
    """``explorer``'s root group (``typer.Typer(cls=ExplorerGroup)``)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        polish(self)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK_EXCEPTION as exc:
            _usage_error(exc)
        except typer.Abort:
            error_line("aborted", 1)
        except (KeyboardInterrupt, MemoryError):
            raise  # cli_errors turns them into one line inside a command; outside, Python's own handling
        except Exception as exc:  # a bug: one line, the traceback on request
            if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
                raise
            detail = " ".join(str(exc).split())
            error_line(f"internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
                       f"set {DEBUG_ENV}=1 for the traceback", 1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _usage_error(exc: Any) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed already (as Click does)
        sys.exit(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and type(exc).__name__ != "ClickException" else ""
    error_line(f"{exc.format_message()}{hint}", exc.exit_code)
