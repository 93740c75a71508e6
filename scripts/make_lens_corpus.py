"""Build explorer/data/lens_corpus.tsv.gz, the default training text of `explorer lens train`.

Source: the Debian Installation Guide for amd64 (Debian package installation-guide-amd64,
20230508+deb12u1; copyright 1996-2023 Bruce Perens, Sven Rudolph, Igor Grobman, James Treacy,
Adam Di Carlo, Chris Tillman, the Debian Installer team and other contributors; licensed under
the GNU GPL, version 2). The same book in English, French, German, Russian and Simplified
Chinese, so every language has the same kind and amount of text.

Usage (the package is fetched with apt, not installed):
    apt-get download installation-guide-amd64 && dpkg-deb -x installation-guide-amd64_*.deb x
    python scripts/make_lens_corpus.py x/usr/share/doc/installation-guide-amd64 [--pages N]

Each document is one or more consecutive sentences of the paragraphs (<p> elements outside code blocks)
of one page, about 80 tokens of Gemma's tokenizer (max 128 in export-states); pages are taken in
reading order (preface, chapters, appendices) up to ``--pages``, the same pages in every
language, and within a language documents keep that order, so the last tenth of each
language's documents (the held-out part) is the same last pages in every language.
"""

from __future__ import annotations

import argparse
import gzip
import re
from html.parser import HTMLParser
from pathlib import Path

LANGS = {"en": "en", "fr": "fr", "de": "de", "ru": "ru", "zh": "zh_CN"}
TARGET_CHARS = {"en": 330, "fr": 330, "de": 330, "ru": 300, "zh": 120}
SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


class Paragraphs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.out, self.buf, self.depth_p, self.depth_pre = [], [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth_p += 1
        elif tag in ("pre", "code", "script", "style"):
            self.depth_pre += 1

    def handle_endtag(self, tag):
        if tag == "p" and self.depth_p:
            self.depth_p -= 1
            text = re.sub(r"\s+", " ", "".join(self.buf)).strip()
            if len(text) >= 40 and self.depth_pre == 0:
                self.out.append(text)
            self.buf = []
        elif tag in ("pre", "code", "script", "style") and self.depth_pre:
            self.depth_pre -= 1

    def handle_data(self, data):
        if self.depth_p and not self.depth_pre:
            self.buf.append(data)


def pages(directory: Path) -> list[str]:
    names = sorted(p.name for p in directory.glob("*.html") if p.name not in ("index.html", "apf.html"))  # apf: the GPL
    return [n for n in names if n.startswith("pr")] + [n for n in names if n.startswith("ch")] + [n for n in names if n.startswith("ap")]


def documents(path: Path, lang: str) -> list[str]:
    p = Paragraphs()
    p.feed(path.read_text(encoding="utf-8"))
    docs, cur = [], ""
    for para in p.out:
        for sentence in SENTENCE.split(para):
            joiner = "" if lang == "zh" else " "
            if cur and len(cur) + len(sentence) > 1.3 * TARGET_CHARS[lang]:
                docs.append(cur)
                cur = ""
            cur = f"{cur}{joiner}{sentence}".strip() if cur else sentence
            if len(cur) >= TARGET_CHARS[lang]:
                docs.append(cur)
                cur = ""
    if cur:
        docs.append(cur)
    return [d.replace("\t", " ") for d in docs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("guide", type=Path)
    ap.add_argument("--pages", type=int, default=0, help="take the first N pages in reading order (0: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "explorer/data/lens_corpus.tsv.gz")
    args = ap.parse_args()
    names = pages(args.guide / "en")
    names = names[: args.pages] if args.pages else names
    lines = ["lang\ttext"]
    for lang, sub in LANGS.items():
        for name in names:
            lines += [f"{lang}\t{d}" for d in documents(args.guide / sub / name, lang)]
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines) - 1} documents from {len(names)} pages -> {args.out}")


if __name__ == "__main__":
    main()
