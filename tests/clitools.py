"""Running the ``explorer`` CLI in tests, and the one-line-error contract."""

from __future__ import annotations

from typer.testing import CliRunner

from explorer.cli.main import app

runner = CliRunner()


def run(root, *args):
    return runner.invoke(app, ["--root", str(root), *args])


def one_line_error(result, code: int | None = None) -> str:
    """Assert a user error: non-zero exit (``code`` if given), no traceback, exactly one
    line on stderr starting with 'error: '; return that line."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
