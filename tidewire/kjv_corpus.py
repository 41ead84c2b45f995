"""The King James Bible (31,101 verses) from the `bible-cli` package: the demo's and benchmarks' real corpus.

The package's ``__init__`` needs a terminal, so its data file is located without importing it.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tidewire.errors import PrerequisiteError

# The 66 books in the order of the data file.
BOOK_NAMES = (
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah",
    "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah", "Jeremiah",
    "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum",
    "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi", "Matthew", "Mark", "Luke", "John", "Acts",
    "Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
    "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews",
    "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
)  # fmt: skip


@dataclass(frozen=True)
class Verse:
    """One verse, as the demo writes it into `documents`."""

    book: str
    book_abbreviation: str
    chapter: int
    verse: int
    text: str

    @property
    def document_id(self) -> str:
        return f"kjv-{self.book_abbreviation}-{self.chapter}-{self.verse}"

    @property
    def title(self) -> str:
        return f"{self.book} {self.chapter}:{self.verse}"


def dataset_path() -> Path:
    """Where `bible-cli` keeps the corpus, found without importing the package."""
    spec = importlib.util.find_spec("bible_cli")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteError("the KJV corpus package `bible-cli` is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset.json"


@cache
def load_kjv_verses() -> tuple[Verse, ...]:
    """All verses in canonical order."""
    books = json.loads(dataset_path().read_text(encoding="utf-8-sig"))
    if len(books) != len(BOOK_NAMES):
        raise PrerequisiteError(f"unexpected KJV data file {dataset_path()}: {len(books)} books, not 66")
    verses = []
    for name, book in zip(BOOK_NAMES, books, strict=True):
        for chapter_number, chapter in enumerate(book["chapters"], start=1):
            for verse_number, text in enumerate(chapter, start=1):
                verses.append(Verse(name, book["abbrev"], chapter_number, verse_number, text))
    return tuple(verses)
