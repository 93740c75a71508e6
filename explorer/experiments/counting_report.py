"""The counting study's summary (:mod:`explorer.experiments.counting`): accuracy per (task,
d, m), the threshold m_thr per d where accuracy first falls below 0.8 (interpolated between
the probes either side, :func:`explorer.experiments.threshold.crossing`), and per task the
fit m_thr ~ slope * d + intercept with r^2 and a 95 % interval for the slope; as JSON, a
text table and a figure.
"""

from __future__ import annotations

from typing import Any

from explorer.experiments.base import Summary
from explorer.experiments.threshold import crossing, linear_fit


def accuracy_table(finished: list[tuple[Any, dict[str, Any]]]) -> dict[tuple[str, int, int], float]:
    """Mean final accuracy per (task, d, m) over the finished runs."""
    acc: dict[tuple[str, int, int], list[float]] = {}
    for _, s in finished:
        if s.get("accuracy") is not None:
            acc.setdefault((str(s.get("task", "qc")), int(s["d"]), int(s["m"])), []).append(float(s["accuracy"]))
    return {k: sum(v) / len(v) for k, v in sorted(acc.items())}


def task_result(table: dict[tuple[str, int, int], float], task: str, level: float) -> dict[str, Any]:
    """One task's ``m_thr`` per d (with the number of m probed) and the fit ``m_thr ~ slope*d + intercept``."""
    dims = sorted({d for t, d, _ in table if t == task})
    thr = []
    for d in dims:
        curve = [(m, a) for (t, dd, m), a in table.items() if t == task and dd == d]
        m_thr, censored = crossing(curve, level)
        thr.append({"d": d, "m_thr": m_thr, **({"censored": censored} if censored else {}), "probes": len(curve)})
    have = [t for t in thr if t["m_thr"] is not None]
    return {"m_thr": thr, "fit": linear_fit([t["d"] for t in have], [t["m_thr"] for t in have])}


def summarize(config: Any, finished: list[tuple[Any, dict[str, Any]]], search: str) -> Summary:
    """Accuracy per (task, d, m), m_thr(d) and the fit m_thr ~ a*d + b per task, as a table and a
    figure. ``m_thr`` and ``fit`` are the first task's (``tasks``, else ``task``); ``by_task`` has them all."""
    table = accuracy_table(finished)
    order = [t for t in (config.tasks or (config.task,)) if any(k[0] == t for k in table)]
    order += sorted({t for t, _, _ in table} - set(order))
    by_task = {t: task_result(table, t, config.threshold) for t in order}
    first = by_task[order[0]] if order else {"m_thr": [], "fit": linear_fit([], [])}
    result = {"task": order[0] if order else config.task,
              "accuracy": [{**({"task": t} if len(order) > 1 else {}), "d": d, "m": m, "accuracy": a}
                           for (t, d, m), a in table.items()],
              "m_thr": first["m_thr"], "fit": first["fit"], "by_task": by_task,
              "search": search}
    return Summary(result=result, text=summary_text(table, by_task, config),
                   figure=summary_figure(table, by_task, config))


def _fit_line(fit: dict) -> str:
    if fit["slope"] is None:
        return "fit: fewer than two d values with a threshold"
    b = fit["intercept"]
    ci = fit.get("slope_ci95")
    interval = f", slope 95% CI {ci[0]:.2f}..{ci[1]:.2f}" if ci else ""
    return (f"fit: m_thr = {fit['slope']:.3f} * d {'-' if b < 0 else '+'} {abs(b):.2f}   "
            f"(r^2 = {fit['r2']:.3f}, {fit['n']} d{interval})")


def summary_text(table: dict, by_task: dict[str, dict], config: Any) -> str:
    """Per task: the accuracy table (rows m, columns d; '-' where m was not probed), m_thr per d and the fit."""
    lines: list[str] = []
    for task, res in by_task.items():
        dims = [t["d"] for t in res["m_thr"]]
        ms = sorted({m for t, _, m in table if t == task})
        lines += [f"{task.upper()} test accuracy (rows m, columns d)", "m \\ d " + "".join(f"{d:>7}" for d in dims)]
        for m in ms:
            cells = "".join(f"{table[(task, d, m)]:>7.3f}" if (task, d, m) in table else f"{'-':>7}" for d in dims)
            lines.append(f"{m:>6}" + cells)
        cells = "".join(f"{t['m_thr']:>7.1f}" if t["m_thr"] is not None else f"{t['censored'][:5]:>7}"
                        for t in res["m_thr"])
        lines += ["m_thr " + cells + f"   (accuracy {config.threshold:g} crossing)", _fit_line(res["fit"])]
    return "\n".join(lines)


STYLES = {"qc": "-", "mfc": "--"}


def summary_figure(table: dict, by_task: dict[str, dict], config: Any) -> Any:
    """Left: accuracy vs m, one curve per (task, d) (colour: d; solid QC, dashed MFC; dotted
    line at m = d). Right: m_thr vs d per task with its fit, and m = d for reference."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    ax, ax2 = fig.subplots(1, 2)
    dims = sorted({d for _, d, _ in table})
    colours = {d: f"C{i % 10}" for i, d in enumerate(dims)}
    for task in by_task:
        for d in dims:
            curve = sorted((m, a) for (t, dd, m), a in table.items() if t == task and dd == d)
            if curve:
                ax.plot([m for m, _ in curve], [a for _, a in curve], STYLES.get(task, "-."), marker="o", ms=3,
                        color=colours[d], label=f"{task} d={d}")
    for d in dims:
        ax.axvline(d, color=colours[d], ls=":", lw=1)
    ax.axhline(config.threshold, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="vocabulary size m", ylabel="test accuracy", ylim=(-0.02, 1.02),
           title=f"{' and '.join(t.upper() for t in by_task) or config.task.upper()}: accuracy vs m (dotted: m = d)")
    ax.legend(fontsize=6, ncol=2)
    for i, (task, res) in enumerate(by_task.items()):
        have = [t for t in res["m_thr"] if t["m_thr"] is not None]
        mark = "o" if i == 0 else "s"
        ax2.plot([t["d"] for t in have], [t["m_thr"] for t in have], mark, color=f"C{i}", label=f"{task} m_thr")
        fit = res["fit"]
        if fit["slope"] is not None:
            xs = [min(dims), max(dims)]
            ax2.plot(xs, [fit["slope"] * x + fit["intercept"] for x in xs], STYLES.get(task, "-."), color=f"C{i}",
                     label=f"{task}: {fit['slope']:.2f} d {fit['intercept']:+.1f} (r²={fit['r2']:.2f})")
    if dims:
        ax2.plot(dims, dims, ":", color="grey", label="m = d")
    ax2.set(xlabel="d", ylabel=f"m at accuracy {config.threshold:g}", title="threshold m_thr(d)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


__all__ = ["accuracy_table", "summarize", "summary_figure", "summary_text", "task_result"]
