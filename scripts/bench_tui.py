"""Time for `explorer tui` to open on an existing catalog: from interpreter start (imports
included) to the first screen mounted, against `python -c pass` in the same run.

    python scripts/bench_tui.py [--root DIR] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data root (default: as explorer, $EXPLORER_HOME or the checkout's indexes/)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each; medians are reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.root is None:
        from explorer.paths import default_root

        args.root = str(default_root())
    probe = PROBE.replace("ROOT", repr(args.root))
    base = statistics.median(wall([sys.executable, "-c", "pass"]) for _ in range(args.repeat))
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
        runs.append((time.perf_counter() - t, float(out[0]), out[1] == "1"))
    total = statistics.median(r[0] for r in runs)
    ready = statistics.median(r[1] for r in runs)
    torch_imported = any(r[2] for r in runs)
    if args.json:
        print(json.dumps({"bare_interpreter_s": base, "first_screen_s": ready, "process_wall_s": total,
                          "ratio_wall_over_bare": total / base, "torch_imported": torch_imported}, indent=2))
        return
    print(f"python -c pass: {base:.3f} s")
    print(f"tui first screen mounted (imports included, after interpreter start): {ready:.3f} s; process wall {total:.3f} s")
    print(f"ratio wall / bare interpreter: {total / base:.1f}; torch imported: {torch_imported}")


if __name__ == "__main__":
    main()
