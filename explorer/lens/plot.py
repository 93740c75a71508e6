"""Pictures of a language-attribution run: a matplotlib figure and a terminal plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.lens.attribution import LensResult

_BARS = " ▁▂▃▄▅▆▇█"
# figure labels in English: the default matplotlib font has no CJK or Cyrillic glyphs
ENGLISH_NAMES = {"English": "English", "Français": "French", "Deutsch": "German", "Русский": "Russian", "中文": "Chinese"}


def spark(values: list[float], hi: float = 1.0) -> str:
    return "".join(_BARS[min(len(_BARS) - 1, max(0, round(v / hi * (len(_BARS) - 1))))] for v in values)


def terminal_plot(result: LensResult, target_label: str, width: int = 40) -> str:
    """One line per layer: two bars (target, English) scaled to 0..1."""
    lines = [f"layer  {target_label:>8} vs English (each bar 0..1)"]
    for s in result.layers:
        t = "█" * round(s.p_target * width)
        e = "█" * round(s.p_english * width)
        lines.append(f"{s.layer:>5}  T {t:<{width}} {s.p_target:5.2f}")
        lines.append(f"{'':>5}  E {e:<{width}} {s.p_english:5.2f}")
    return "\n".join(lines)


def draw_lens_panel(result: LensResult, ax, ax_e, target_label: str, title: str | None = None,
                    entropy_range: tuple[float, float] | None = None) -> None:
    """One run onto given axes: target and English curves with 95% bands on ``ax``, the
    entropy strip on ``ax_e`` (colours over ``entropy_range``, default the run's own);
    ``target_label`` in English where it is not (see ENGLISH_NAMES)."""
    from matplotlib.ticker import MaxNLocator

    target_label = ENGLISH_NAMES.get(target_label, target_label)
    layers = [s.layer for s in result.layers]
    for name, mean, ci, color in (
        (target_label, [s.p_target for s in result.layers], [s.p_target_ci for s in result.layers], "tab:blue"),
        ("English", [s.p_english for s in result.layers], [s.p_english_ci for s in result.layers], "tab:orange"),
    ):
        ax.plot(layers, mean, label=name, color=color, marker="o", markersize=3)
        ax.fill_between(layers, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)], color=color, alpha=0.2)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title(title or f"{result.model}: {result.task} {_describe(result)}  (n={result.entries}, 95% CI)")
    ent = [s.entropy for s in result.layers]
    lo, hi = entropy_range or (min(ent), max(ent))
    ax_e.imshow([ent], aspect="auto", cmap="viridis", extent=(layers[0] - 0.5, layers[-1] + 0.5, 0, 1), vmin=lo, vmax=hi)
    ax_e.set_yticks([])
    ax_e.set_ylabel("entropy", rotation=0, ha="right", va="center")
    ax_e.set_xlabel("layer (0 = embedding output)")
    ax_e.xaxis.set_major_locator(MaxNLocator(integer=True))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def save_lens_png(result: LensResult, path: Path, target_label: str) -> Path:
    """The figure of a run (target and English curves with 95% bands, an entropy strip)."""
    fig, (ax, ax_e) = _pyplot().subplots(2, 1, figsize=(7, 4.8), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    draw_lens_panel(result, ax, ax_e, target_label)
    return _save(fig, path)


def save_lens_pair_png(results: dict[str, LensResult], path: Path, target_label: str) -> Path:
    """The figure twice, side by side on the same axes: ``results`` maps a lens name
    (logit, then tuned) to its run; each panel is titled with the lens it read with."""
    fig, axes = _pyplot().subplots(2, len(results), figsize=(7 * len(results), 4.8), sharex=True, sharey="row",
                                   gridspec_kw={"height_ratios": [4, 1]}, squeeze=False)
    ent = [s.entropy for r in results.values() for s in r.layers]
    for col, result in enumerate(results.values()):
        lens = result.config.get("lens", "logit")
        title = f"{result.model}: {result.task} {_describe(result)}, {lens} lens  (n={result.entries}, 95% CI)"
        draw_lens_panel(result, axes[0][col], axes[1][col], target_label, title, (min(ent), max(ent)))
    return _save(fig, path)


def _describe(result: LensResult) -> str:
    c = result.config
    if result.task == "translate":
        return f"{c.get('from')}→{c.get('to')}"
    return str(c.get("lang", ""))


def save_fidelity_png(report, path: Path) -> Path:
    """Two curves per layer, KL(final || lens) in bits for the logit and the learned lens
    (``report``: a FidelityReport)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [f.layer for f in report.layers]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(layers, [f.kl_logit for f in report.layers], "o-", label="logit lens")
    ax.plot(layers, [f.kl_tuned for f in report.layers], "s-", label=f"learned lens ({report.kind})")
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel("KL(final || lens), bits")
    ax.set_title(f"{report.model}: lens fidelity on {report.heldout_tokens} held-out tokens")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
