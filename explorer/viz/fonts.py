"""Fonts for figure labels: DejaVu Sans, then installed fonts that have the glyphs it lacks.

Matplotlib's default DejaVu Sans has no Han, kana or hangul glyphs, so labels such as 花
would be drawn as boxes. For the characters of the labels that DejaVu Sans cannot draw,
installed fonts are searched (CJK families first, then every other installed font file,
checked glyph by glyph with FreeType's character map) and added as fallback families
(matplotlib falls back per glyph along ``font.family``). Matplotlib's own "Last Resort"
font is never chosen: it has every code point, but as a box naming its Unicode block.

When a CJK character has no font at all, one line says so on stderr, once per process
("no CJK font found; ..."); :class:`FontChoice` counts the characters left undrawable.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from dataclasses import dataclass
from typing import Iterable

BASE = "DejaVu Sans"
# fonts with Han, kana and hangul glyphs, tried before any other installed font
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans CJK KR", "Noto Sans SC", "Noto Sans JP",
    "Source Han Sans SC", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
    "AR PL UMing CN", "AR PL UKai CN", "AR PL New Sung", "IPAexGothic", "IPAGothic", "Microsoft YaHei", "SimHei",
    "PingFang SC", "Hiragino Sans GB", "Arial Unicode MS",
)
NO_CJK_FONT = ("no CJK font found; CJK labels will show as boxes; install fonts-noto-cjk "
               "(or any font with CJK glyphs)")
_warned: set[str] = set()
_scanned: list[bool] = []  # non-empty once the system font directories were scanned


@dataclass(frozen=True)
class FontChoice:
    families: tuple[str, ...]  # for rcParams["font.family"], DejaVu Sans first
    missing: frozenset[str]  # characters of the labels that no chosen font can draw

    def drawable(self, label: str) -> bool:
        return not any(ch in self.missing for ch in label)


@functools.lru_cache(maxsize=None)
def _installed() -> tuple[tuple[str, str], ...]:
    """(family, file) of every installed font matplotlib knows, regular styles first,
    without matplotlib's Last Resort font."""
    from matplotlib import font_manager

    fonts = [f for f in font_manager.fontManager.ttflist if "last resort" not in f.name.lower()]
    fonts.sort(key=lambda f: (f.style != "normal", abs(_weight(f.weight) - 400), f.name, f.fname))
    return tuple((f.name, f.fname) for f in fonts)


def _weight(w) -> int:
    try:
        return int(w)
    except (TypeError, ValueError):
        return 400


@functools.lru_cache(maxsize=None)
def _charmap(fname: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(fname).get_charmap())
    except Exception:  # an unreadable font file: it covers nothing
        return frozenset()


def _base_file() -> str | None:
    return next((f for name, f in _installed() if name == BASE), None)


def choose(labels: Iterable[str]) -> FontChoice:
    """DejaVu Sans plus the fallback families the labels need (see the module docstring)."""
    base = _base_file()
    need = {ord(ch) for label in labels for ch in label if not ch.isspace() and unicodedata.category(ch)[0] != "C"}
    if base is not None:
        need -= _charmap(base)
    families = [BASE]
    need = _search(need, families)
    if need and _add_new_system_fonts():
        need = _search(need, families)
    missing = frozenset(chr(c) for c in need)
    if any(is_cjk(ch) for ch in missing):
        warn_once(NO_CJK_FONT)
    return FontChoice(tuple(families), missing)


def _search(need: set[int], families: list[str]) -> set[int]:
    """Append families that cover some of ``need`` (CJK families first); what is left."""
    order = sorted(_installed(), key=lambda nf: nf[0] not in CJK_FAMILIES)  # stable: CJK families first
    for name, fname in order:
        if not need:
            break
        if name in families:
            continue
        covered = need & _charmap(fname)
        if covered:
            families.append(name)
            need = need - covered
    return need


def _add_new_system_fonts() -> bool:
    """Fonts installed after matplotlib built its font cache are not in it (a user who just
    installed fonts-noto-cjk would still get boxes): add them, once per process."""
    if _scanned:
        return False
    _scanned.append(True)
    from matplotlib import font_manager

    known = {f.fname for f in font_manager.fontManager.ttflist}
    added = False
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
                added = True
            except Exception:  # a font file matplotlib cannot read
                continue
    if added:
        _installed.cache_clear()
    return added


def is_cjk(ch: str) -> bool:
    """Han, kana, hangul, CJK symbols and full-width forms."""
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC", "FULLWIDTH", "BOPOMOFO"))


def warn_once(message: str) -> None:
    """One line on stderr, the first time this message comes up in this process."""
    if message not in _warned:
        _warned.add(message)
        sys.stderr.write(f"warning: {message}\n")
