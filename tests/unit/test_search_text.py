"""Search text: folding, words, what is indexed, the query language, highlights, tokens."""

import pytest

from ranvier.errors import MatrixError
from ranvier.search.paging import Batch
from ranvier.search.text import (IndexedText, Term, fold, highlights, parse_query, searchable_text,
                                 words)


@pytest.mark.parametrize("written, searched", [
    ("Café", "cafe"), ("CRÈME BRÛLÉE", "creme brulee"), ("straße", "strasse"), ("ÉCOLE", "ecole"),
    ("Привет", "привет"), ("ΩMEGA", "ωmega"), ("ﬁne", "fine"), ("x²", "x2"), ("naïve", "naive"),
])
def test_case_and_diacritics_fold_to_the_same_words(written, searched):
    assert words(fold(written)) == words(fold(searched))


def test_words_of_every_script_stay_whole_and_punctuation_splits():
    assert words(fold("हिन्दी भाषा, 你好世界! e-mail user@example.com snake_case don't")) == [
        fold("हिन्दी"), "भाषा", "你好世界", "e", "mail", "user", "example", "com", "snake", "case", "don", "t"]
    assert words("!!! ... 🎉") == []


def test_words_keep_how_they_are_written_and_decomposed_accents_stay_in_their_word():
    assert words("Crème e\u0301cole") == ["Crème", "e\u0301cole"]
    assert fold("e\u0301cole") == "ecole"


def test_indexed_text_is_the_folded_words_joined_with_their_count():
    assert IndexedText.of("Hello, Wörld! Hello.") == IndexedText("hello world hello", 3)
    assert IndexedText.of("  ?! ") is None


def test_what_each_searchable_type_offers():
    assert searchable_text("m.room.message", {"msgtype": "m.text", "body": "hi"}) == "hi"
    assert searchable_text("m.room.message", {"body": 42}) is None
    assert searchable_text("m.room.name", {"name": "Lounge"}) == "Lounge"
    topic = {"topic": "plain", "m.topic": {"m.text": [
        {"body": "plain"}, {"mimetype": "text/html", "body": "<b>bold</b>"},
        {"mimetype": "text/plain", "body": "another"}, "junk"]}}
    assert searchable_text("m.room.topic", topic) == "plain\nanother"
    assert searchable_text("m.room.topic", {"m.topic": {"m.text": [{"body": "only here"}]}}) == "only here"
    assert searchable_text("m.room.encrypted", {"body": "ciphertext"}) is None
    assert searchable_text("m.room.member", {"displayname": "x"}) is None


def test_query_words_phrases_and_prefixes():
    assert parse_query('Hello "Big  World" hel* "foo ba"* e-mail !!! "unterminated phrase') == [
        Term(("hello",)), Term(("big", "world")), Term(("hel",), prefix=True), Term(("foo", "ba"), prefix=True),
        Term(("e", "mail")), Term(("unterminated", "phrase")),
    ]
    assert parse_query("hello HELLO héllo") == [Term(("hello",))]
    assert parse_query("  ...  ") == []
    assert len(parse_query(" ".join(f"w{i}" for i in range(40)))) == 16


def test_highlights_are_the_query_words_and_the_matching_words_as_written():
    found = highlights(parse_query("cafe hel*"), ["Café HELLO helium world", "nothing"])
    assert found == ["Café", "HELLO", "cafe", "hel", "helium"]


def test_next_batch_tokens_round_trip_and_refuse_anything_else():
    batch = Batch("rank", 120, (0.123456789012345, 99), 7, (("room_id", "!a:b"),))
    assert Batch.decode(batch.encode()) == batch
    for bad in ("", "!!!", "bm90IGpzb24", Batch("rank", -1, (0.5, 1), None).encode(),
                Batch("rank", 1, (0.5, 1), None, (("colour", "x"),)).encode()):
        with pytest.raises(MatrixError) as raised:
            Batch.decode(bad)
        assert raised.value.errcode == "M_INVALID_PARAM"
