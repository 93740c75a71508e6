"""Vector sets in and out of the store: Embedding Projector, Parquet, word2vec, GloVe.

numpy and DuckDB only (no torch). Exports read a stored set (a tied set follows its
``same_as`` row to the files); imports create a model (``source_kind = 'imported'``)
with a tokens table built from the words and one vector set named ``input``, written
with :func:`explorer.store.sets.write_vector_set` (norms, FAISS index, checksums), so
``explorer query --model NAME`` works on it.

Formats
-------
``projector``
    A directory holding ``vectors.tsv`` (one line per token: its floats separated by
    tabs, no header) and ``metadata.tsv`` (a header line ``token<TAB>token_id<TAB>script``,
    then one line per token in the same order), as https://projector.tensorflow.org loads
    them. Import reads ``vectors.tsv`` and the ``token`` column (or the only column) of
    ``metadata.tsv`` next to it.
``parquet``
    One file with columns ``token_id INTEGER, token VARCHAR, vector FLOAT[]``, written by
    DuckDB (``COPY ... TO ... (FORMAT parquet)``). Import needs ``token`` and ``vector``
    (any numeric list or array type); rows are taken in file order.
``word2vec``
    Text: a header line ``N D``, then ``word v1 ... vD`` per line, separated by single
    spaces (a trailing space, as word2vec.c writes, is accepted on import).
``word2vec-binary``
    A header line ``N D``, then per word: the UTF-8 word, one space and D little-endian
    float32 (4·D bytes), with nothing in between records -- exactly as gensim writes it.
    A newline before a word (as word2vec.c writes) is accepted on import.
``glove`` (import only)
    word2vec text without the header line; D is the number of fields of the first line
    minus one.

Words
-----
An export names each token by its vocabulary string (``words="raw"``, the default:
unique within a model, e.g. ``'▁king'``) or its decoded text (``words="text"``, e.g.
``' king'``; not always unique). The three formats treat the word differently:

* **Parquet** stores it exactly.
* **Projector metadata** escapes it with backslashes so that every token stays on its
  line and in its column: ``\\`` -> ``\\\\``, tab -> ``\\t``, newline -> ``\\n``,
  carriage return -> ``\\r``, and every other character that Python treats as a line
  break (U+000B, U+000C, U+001C-U+001E, U+0085, U+2028, U+2029) -> ``\\xHH`` or
  ``\\uHHHH``. Import undoes exactly these escapes (any other backslash is kept as is),
  so the word comes back unchanged.
* **word2vec** words cannot hold whitespace: the format separates fields by spaces and
  records by newlines, and gensim strips a leading newline from binary words. An export
  therefore maps, character by character: space -> ``'▁'`` (U+2581, SentencePiece's
  word-boundary mark, so ``' king'`` is written ``▁king``); a control character
  U+0000-U+001F or U+007F -> its Unicode control picture U+2400-U+241F or U+2421 (a
  newline becomes ``'␊'``, a tab ``'␉'``); any other whitespace character (U+0085, U+00A0,
  U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) -> ``<U+XXXX>``; the
  empty word -> ``<empty>``. The mapping leaves a word that is already valid unchanged,
  so export -> import -> export is byte-identical. It cannot be undone (``'a b'`` and
  ``'a▁b'`` are both written ``a▁b``), so an export where two tokens would be written as
  the same word is refused, naming both (drop one with ``--where``, or use Parquet or
  the projector format, which keep words exactly). Import never unescapes.

Imported tokens are ``token_id`` = line order (from 0), ``raw = text = word``,
``leading_space = false``, ``script`` from :func:`explorer.query.tokeninfo.script_of`.

Numbers
-------
Text formats write each float32 as the shortest decimal that DuckDB prints for it, then
read every value back the way this module, numpy and gensim read it (decimal ->
float64 -> float32) and rewrite the rare value that would not come back identical with
its float64 ``repr`` (exact). A round trip is therefore bit-for-bit (except NaN payloads,
and imports refuse NaN and infinity: a vector set is searched by cosine).

Malformed files are refused with one line naming the file and the line (for binary
files, the record counted as a line, the header being line 1; for Parquet, the row).
"""

from explorer.store.interchange.encoding import (
    EMPTY_WORD, EXPORT_FORMATS, IMPORT_FORMATS, tsv_escape, tsv_unescape, word2vec_word,
)
from explorer.store.interchange.ingest import ImportReport, default_name, import_arrays, import_file
from explorer.store.interchange.readers import detect_format, read_vectors
from explorer.store.interchange.writers import VectorFileReport, export_set

__all__ = [
    "EMPTY_WORD", "EXPORT_FORMATS", "IMPORT_FORMATS", "VectorFileReport", "ImportReport", "default_name", "detect_format",
    "export_set", "import_arrays", "import_file", "read_vectors", "tsv_escape", "tsv_unescape", "word2vec_word",
]
