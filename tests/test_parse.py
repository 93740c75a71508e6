"""The query expression grammar: examples, errors, and a render/parse round trip."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from explorer.errors import ParseError
from explorer.query.parse import Expression, Term, parse


def terms(*pairs):
    return tuple(Term(w, float(x)) for w, x in pairs)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("woman - man + king", terms(("woman", 1), ("man", -1), ("king", 1))),
        ("woman-man+king", terms(("woman", 1), ("man", -1), ("king", 1))),
        ("0.5*king + 0.5 * queen", terms(("king", 0.5), ("queen", 0.5))),
        ('"花" - "flower" + water', terms(("花", 1), ("flower", -1), ("water", 1))),
        ('"New York" - city', terms(("New York", 1), ("city", -1))),
        (r'"say \"hi\"" + "back\\slash"', terms(('say "hi"', 1), ("back\\slash", 1))),
        ("- man + woman", terms(("man", -1), ("woman", 1))),
        ("-2*man", terms(("man", -2),)),
        ("2024", terms(("2024", 1),)),
        ("2024 - 1999", terms(("2024", 1), ("1999", -1))),
        ("2*x", terms(("x", 2),)),
        ("2 * x - 1e-1*y", terms(("x", 2), ("y", -0.1))),
        (".5*x", terms(("x", 0.5),)),
        ('3*"2024"', terms(("2024", 3),)),
        ("  king  ", terms(("king", 1),)),
        ("日本 + Россия", terms(("日本", 1), ("Россия", 1))),
    ],
)
def test_examples(text, expected):
    assert parse(text) == Expression(expected)


def test_single_quotes_and_escapes():
    assert parse(r"'it\'s' - 'a\\b'") == Expression(terms(("it's", 1), ("a\\b", -1)))
    assert parse("'say \"hi\"'") == Expression(terms(('say "hi"', 1),))


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\t\n", "king +", "king -", "king queen", "+ + king", "king - - man", "+ -",
     '"king', "'king", 'king + "que\\"en', "*king", "2*", "king + 2*", '""', "''",
     "(king)", "king * queen", '"a"b', "1e999*king"],
)
def test_errors(text):
    with pytest.raises(ParseError):
        parse(text)


@pytest.mark.parametrize("text", ["2*-king", "2* + king", "king + 3* - man"])
def test_weight_without_word_is_an_error(text):
    with pytest.raises(ParseError):
        parse(text)


def test_analogy_shape():
    assert parse("woman - man + king").analogy() == ("man", "woman", "king")
    assert parse("- man + woman + king").analogy() == ("man", "woman", "king")
    for text in ["woman + man + king", "woman - man", "woman - man - king", "woman - man + king + queen",
                 "0.5*woman - man + king", "woman - 2*man + king", "king"]:
        assert parse(text).analogy() is None, text


# Words: any text without surrogates, biased towards the characters the grammar cares about.
_chars = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.sampled_from(list("+-*()\"'\\ \t.eE0123456789花語")),
)
words = st.text(_chars, min_size=1, max_size=12)
weights = st.one_of(
    st.sampled_from([1.0, -1.0, 0.5, -2.0, 1e-7, 1e20]),
    st.floats(allow_nan=False, allow_infinity=False),
)
expressions = st.lists(st.builds(Term, words, weights), min_size=1, max_size=5).map(
    lambda ts: Expression(tuple(ts))
)


@given(expressions)
def test_render_parse_round_trip(expr):
    parsed = parse(expr.render())
    assert parsed == expr
    # equality of floats: also check the sign is carried (0.0 == -0.0 is the only leeway)
    for a, b in zip(parsed.terms, expr.terms):
        assert a.weight == b.weight and (a.weight < 0) == (b.weight < 0)
