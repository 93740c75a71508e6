"""Time for `explorer tui` to open on an existing catalog: from interpreter start (imports
included) to the first screen mounted, against `python -c pass` in the same run.

    python scripts/bench_tui.py [--root indexes]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PROBE = r"""
import time, asyncio
t0 = time.perf_counter()
from pathlib import Path
from explorer.tui.app import make_app
async def main():
    app = make_app(Path(ROOT))
    async with app.run_test(size=(120, 40)) as pilot:
        ready = time.perf_counter() - t0
        import sys
        print(ready, int('torch' in sys.modules))
asyncio.run(main())
"""


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="indexes")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    probe = PROBE.replace("ROOT", repr(args.root))
    base = statistics.median(wall([sys.executable, "-c", "pass"]) for _ in range(args.repeat))
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
        runs.append((time.perf_counter() - t, float(out[0]), out[1] == "1"))
    total = statistics.median(r[0] for r in runs)
    ready = statistics.median(r[1] for r in runs)
    print(f"python -c pass: {base:.3f} s")
    print(f"tui first screen mounted (imports included, after interpreter start): {ready:.3f} s; process wall {total:.3f} s")
    print(f"ratio wall / bare interpreter: {total / base:.1f}; torch imported: {any(r[2] for r in runs)}")


if __name__ == "__main__":
    main()
