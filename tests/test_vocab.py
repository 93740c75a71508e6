"""Word -> token resolution over an in-memory vocabulary."""

import pytest

from explorer.errors import ExplorerError, UnknownWord
from explorer.query.vocab import ListTokens, TokenRow, resolve

TEXTS = [" king", "king", " King", " queen", "queen", "花", " man"]
RAWS = ["Ġking", "king", "ĠKing", "Ġqueen", "queen", "花", "Ġman"]


@pytest.fixture
def table():
    return ListTokens(TEXTS, name="toy", raws=RAWS)


def test_auto_picks_the_word_initial_variant_and_lists_the_others(table):
    r = resolve(table, "king")
    assert (r.token_ids, r.tokens, r.variant) == ((0,), (" king",), "initial")
    assert r.alternatives == (("king", 1), (" King", 2))
    assert r.single and r.token == " king" and r.notice is None


def test_bare_variant(table):
    r = resolve(table, "king", variant="bare")
    assert (r.token_ids, r.tokens, r.variant) == ((1,), ("king",), "bare")
    assert r.alternatives == ((" king", 0), (" King", 2))


def test_raw_variant(table):
    r = resolve(table, "Ġking", variant="raw")
    assert (r.token_ids, r.tokens, r.variant) == ((0,), (" king",), "raw")
    r = resolve(table, "king", variant="raw")
    assert (r.token_ids, r.variant) == ((1,), "raw")


def test_case_variant_is_resolved_exactly(table):
    r = resolve(table, "King")
    assert (r.token_ids, r.variant) == ((2,), "initial")
    assert r.alternatives == ((" king", 0), ("king", 1))


def test_falls_back_to_bare_when_there_is_no_initial_variant(table):
    r = resolve(table, "花")
    assert (r.token_ids, r.tokens, r.variant, r.alternatives) == ((5,), ("花",), "bare", ())


def test_unknown_word_suggests_close_spellings(table):
    with pytest.raises(UnknownWord) as e:
        resolve(table, "kingg")
    msg = str(e.value)
    assert msg.startswith("unknown word 'kingg' in toy")
    suggestions = msg.split("close spellings: ")[1].split(", ")
    assert {"king", "King"} <= set(suggestions) and "queen" not in suggestions


def test_explicit_variant_that_is_absent_is_refused(table):
    with pytest.raises(UnknownWord, match="in the vocabulary: '花'"):
        resolve(table, "花", variant="initial")


@pytest.mark.parametrize("kw", [{"variant": "word"}, {"multi": "sum"}])
def test_bad_options(table, kw):
    with pytest.raises(ExplorerError, match="unknown"):
        resolve(table, "king", **kw)


class SplittingTokens(ListTokens):
    """A table whose tokenizer splits any text into a word-start marker and two pieces."""

    def encode(self, text):
        self.encoded = text
        return [TokenRow(90, "Ġ", " "), TokenRow(91, "sun", "sun"), TokenRow(92, "flower", "flower")]


def test_multi_token_word_is_refused_by_default():
    table = SplittingTokens(TEXTS, name="toy")
    with pytest.raises(UnknownWord) as e:
        resolve(table, "sunflower")
    msg = str(e.value)
    assert "not a single token" in msg and "--multi average" in msg and "'sun' 'flower'" in msg
    assert table.encoded == " sunflower"


def test_multi_token_word_is_averaged_on_request():
    table = SplittingTokens(TEXTS, name="toy")
    r = resolve(table, "sunflower", multi="average")
    assert (r.token_ids, r.tokens, r.variant) == ((91, 92), ("sun", "flower"), "pieces")
    assert not r.single and r.token == "sunflower"
    assert r.notice is not None and "2 tokens" in r.notice and "mean" in r.notice
    assert r.to_dict()["token_ids"] == [91, 92]
    resolve(table, "sunflower", variant="bare", multi="average")
    assert table.encoded == "sunflower"


def test_single_piece_encoding_is_still_unknown():
    class OnePiece(ListTokens):
        def encode(self, text):
            return [TokenRow(7, text, text)]

    with pytest.raises(UnknownWord, match="unknown word"):
        resolve(OnePiece(TEXTS), "zebra", multi="average")
