"""The demo corpus: every verse once, with readable titles."""

from __future__ import annotations

from tidewire.kjv_corpus import load_kjv_verses


def test_the_corpus_has_every_verse_once_in_canonical_order() -> None:
    verses = load_kjv_verses()
    assert len(verses) == 31_101
    assert len({verse.document_id for verse in verses}) == len(verses)
    assert verses[0].title == "Genesis 1:1"
    assert verses[0].text.startswith("In the beginning God created the heaven and the earth")
    assert verses[-1].title == "Revelation 22:21"
    assert sum(1 for verse in verses if verse.book == "Psalms" and verse.chapter == 119) == 176
