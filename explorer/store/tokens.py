"""The tokens table as a :class:`explorer.query.vocab.TokenTable` (DuckDB-backed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from explorer.errors import ExplorerError
from explorer.query.vocab import TokenRow
from explorer.store.catalog import Catalog


class CatalogTokens:
    """Token lookups for one model, straight from the catalog (no tokenizer load).

    ``encode`` (multi-token words only) loads ``tokenizer.json`` with the ``tokenizers``
    library on first use; torch and transformers are never imported here.
    """

    def __init__(self, catalog: Catalog, model_id: int, name: str, tokenizer_file: Path | None = None):
        self.catalog = catalog
        self.model_id = model_id
        self.name = name
        self.tokenizer_file = tokenizer_file
        self._tokenizer = None

    def candidates(self, word: str) -> list[TokenRow]:
        """Remembered while the catalog is unchanged (``Catalog.remembered``)."""
        memo = self.catalog.remembered()
        key = ("candidates", self.model_id, word)
        found = memo.get(key)
        if found is None:
            found = memo[key] = self._candidates(word)
        return list(found)

    def _candidates(self, word: str) -> list[TokenRow]:
        # Two indexed point lookups (a UNION: an OR would scan every row). The model filter
        # comes after them, out of a MATERIALIZED CTE: DuckDB 2.0 turns `model_id = ? AND
        # lookup = ?` into a sequential scan (17 ms on Gemma's catalog, against 3 ms).
        rows = self.catalog.query(
            "WITH hits AS MATERIALIZED (SELECT model_id, token_id, raw, text FROM tokens WHERE lookup = lower(ltrim(?)) "
            "UNION SELECT model_id, token_id, raw, text FROM tokens WHERE raw = ?) "
            "SELECT token_id, raw, text FROM hits WHERE model_id = ? ORDER BY token_id",
            [word, word, self.model_id],
        )
        return [TokenRow(*r) for r in rows]

    def close_spellings(self, word: str, n: int) -> list[str]:
        w = word.lower()
        rows = self.catalog.query(
            "SELECT t FROM (SELECT DISTINCT trim(text) AS t FROM tokens WHERE model_id = ? AND NOT is_special "
            "AND NOT is_byte AND length(trim(text)) BETWEEN ? AND ?) "
            "ORDER BY damerau_levenshtein(lower(t), ?), t LIMIT ?",
            [self.model_id, max(1, len(w) - 2), len(w) + 2, w, n],
        )
        return [r[0] for r in rows if r[0] and r[0].lower() != w]

    def texts(self) -> list[str]:
        """Every token's decoded text, in token-id order."""
        rows = self.catalog.query("SELECT text FROM tokens WHERE model_id = ? ORDER BY token_id", [self.model_id])
        return [t for (t,) in rows]

    def labels(self, ids: Sequence[int]) -> dict[int, str]:
        """Text of each id that is a token; remembered while the catalog is unchanged."""
        known = self.catalog.remembered().setdefault(("labels", self.model_id), {})
        wanted = {int(i) for i in ids}
        missing = sorted(wanted.difference(known))
        if missing:
            found = self._labels(missing)
            known.update({i: found.get(i) for i in missing})  # None: not a token (remembered too)
        return {i: known[i] for i in wanted if known[i] is not None}

    def _labels(self, ids: list[int]) -> dict[int, str]:
        rows = self.catalog.query(  # a join on the id list: half the time of `token_id IN (SELECT unnest(?))`
            "SELECT t.token_id, t.text FROM (SELECT unnest(?::INTEGER[]) AS token_id) q "
            "JOIN tokens t ON t.token_id = q.token_id AND t.model_id = ?",
            [ids, self.model_id],
        )
        return dict(rows)

    def encode(self, text: str) -> list[TokenRow] | None:
        if self.tokenizer_file is None or not Path(self.tokenizer_file).exists():
            return None
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(self.tokenizer_file))
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        labels = self.labels(enc.ids)
        return [TokenRow(i, t, labels.get(i, t)) for i, t in zip(enc.ids, enc.tokens)]


# -- browsing (the TUI's sets tab) ----------------------------------------------------


@dataclass(frozen=True)
class TokenSearch:
    """Tokens of one model whose text contains ``text``, in ``script``, starting a word or
    not (``leading_space``), with ids in ``[first, last]``; None: any."""

    model_id: int
    text: str = ""
    script: str | None = None
    leading_space: bool | None = None
    first: int | None = None
    last: int | None = None


def find_tokens(catalog: Catalog, s: TokenSearch, limit: int) -> tuple[list[tuple], int]:
    """The first ``limit`` matches ``(token_id, raw, text, script, leading_space,
    is_special)`` by id, and the number of matches."""
    clauses, params = ["model_id = ?"], [s.model_id]
    for clause, value in (("contains(text, ?)", s.text or None), ("script = ?", s.script),
                          ("leading_space = ?", s.leading_space), ("token_id >= ?", s.first), ("token_id <= ?", s.last)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = " AND ".join(clauses)
    with catalog.read() as con:
        rows = con.execute(f"SELECT token_id, raw, text, script, leading_space, is_special FROM tokens "
                           f"WHERE {where} ORDER BY token_id LIMIT {int(limit)}", params).fetchall()
        total = con.execute(f"SELECT count(*) FROM tokens WHERE {where}", params).fetchone()[0]
    return rows, total


def token_scripts(catalog: Catalog, model_id: int) -> list[tuple[str, int]]:
    """``(script, tokens)`` of one model, most tokens first."""
    return catalog.query("SELECT script, count(*) FROM tokens WHERE model_id = ? GROUP BY 1 ORDER BY 2 DESC", [model_id])


def stored_sets(catalog: Catalog) -> list[tuple]:
    """Every vector set and hidden-state corpus: ``(model_id, model, set, kind, rows, dim,
    dtype, note)``, by model then name."""
    if not catalog.exists():
        return []
    return catalog.query(
        """SELECT m.model_id, m.name, v.name, v.kind, v.n_rows, v.dim, v.dtype,
                  CASE WHEN v.same_as IS NOT NULL THEN 'tied: same rows as ' || t.name ELSE coalesce(v.note, '') END
           FROM vector_sets v JOIN models m USING (model_id) LEFT JOIN vector_sets t ON t.set_id = v.same_as
           UNION ALL
           SELECT m.model_id, m.name, 'layers 0..' || (c.n_layers - 1) || ' of ' || c.name, 'hidden states',
                  c.committed, c.dim, c.dtype, 'corpus ' || c.name || ' (' || c.status || ', ' || c.n_docs || ' documents)'
           FROM corpora c JOIN models m USING (model_id)
           ORDER BY 1, 3""")


def token_ids(catalog: Catalog, model_id: int, script: str | None, where: str | None) -> list[int]:
    """Ids of one model's tokens in ``script`` and matching ``where`` (an expression checked
    by predicate.check_where); a predicate DuckDB refuses is one line."""
    clauses, params = ["model_id = ?"], [model_id]
    if script:
        clauses.append("script = ?")
        params.append(script)
    if where:
        clauses.append(where)
    try:
        return [r[0] for r in catalog.query(f"SELECT token_id FROM tokens WHERE {' AND '.join(clauses)}", params)]
    except ExplorerError:
        raise
    except Exception as exc:
        raise ExplorerError(f"bad --where predicate on the tokens table: {str(exc).splitlines()[0]}") from None


def token_texts(catalog: Catalog, model_id: int, n_rows: int) -> list[tuple[int, str]]:
    """(token_id, text) of one model's rows 0..n_rows-1, by id."""
    return catalog.query(
        "SELECT token_id, text FROM tokens WHERE model_id = ? AND token_id >= 0 AND token_id < ? ORDER BY token_id",
        [model_id, n_rows])
