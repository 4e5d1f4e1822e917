"""Concept corpora: the packaged default list and user files.

A corpus is a list of ``ConceptWord(word, prompt)``. ``word`` is what users see and tune;
``prompt`` (optional) is the text actually encoded, e.g. ``"a wooden fence"`` for ``fence``.

File formats accepted by ``load_corpus``:

* ``.txt``: one concept a line, ``word`` or ``word<TAB>prompt``; blank lines and lines starting
  with ``#`` are ignored.
* ``.json``: a list of strings, or a list of ``{"word": ..., "prompt": ...}`` objects
  (``prompt`` optional).

Words are stripped and compared case-insensitively for duplicates; the first occurrence wins
and the others are reported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from inficond.exceptions import DataError

DEFAULT_CORPUS = "default_corpus.txt"


@dataclass(frozen=True)
class ConceptWord:
    """One concept: the ``word`` shown to users and the optional ``prompt`` that is encoded."""

    word: str
    prompt: str | None = None

    @property
    def text(self) -> str:
        """The text to encode: the prompt when given, else the word."""
        return self.prompt or self.word


@dataclass
class CorpusReport:
    """What ``load_corpus`` kept and dropped.

    Attributes
    ----------
    n_read : int
        Entries read (after skipping blank and comment lines).
    duplicates : list of (line or position, word)
        Entries dropped because the word (case-insensitive) came earlier.
    """

    n_read: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.duplicates:
            return f"{self.n_read} concepts, no duplicates"
        shown = ", ".join(f"{w!r} (entry {n})" for n, w in self.duplicates[:10])
        more = f" and {len(self.duplicates) - 10} more" if len(self.duplicates) > 10 else ""
        return f"{self.n_read} entries, {len(self.duplicates)} duplicates dropped: {shown}{more}"


def _clean(word: str) -> str:
    return " ".join(word.split())


def dedupe(words: list[ConceptWord], positions: list[int] | None = None) -> tuple[list[ConceptWord], CorpusReport]:
    """Drop repeated words (case-insensitive, whitespace-normalised); first one wins."""
    positions = positions or list(range(1, len(words) + 1))
    seen: set[str] = set()
    kept, report = [], CorpusReport(n_read=len(words))
    for pos, w in zip(positions, words):
        key = w.word.lower()
        if key in seen:
            report.duplicates.append((pos, w.word))
            continue
        seen.add(key)
        kept.append(w)
    return kept, report


def parse_txt(text: str, source: str = "<text>") -> tuple[list[ConceptWord], list[int]]:
    """Parse the ``.txt`` format; returns the entries and their 1-based line numbers."""
    words, lines = [], []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, prompt = raw.partition("\t")
        word, prompt = _clean(word), _clean(prompt)
        if not word:
            raise DataError(f"{source}:{n}: empty word before the tab; each line is `word` or `word<TAB>prompt`")
        words.append(ConceptWord(word, prompt or None))
        lines.append(n)
    return words, lines


def parse_json(data, source: str = "<json>") -> list[ConceptWord]:
    """Parse the ``.json`` format (already decoded)."""
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a JSON list of words or of {{word, prompt}} objects, got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            word, prompt = item, None
        elif isinstance(item, dict) and isinstance(item.get("word"), str):
            word, prompt = item["word"], item.get("prompt")
            if prompt is not None and not isinstance(prompt, str):
                raise DataError(f"{source}: entry {i}: 'prompt' must be a string, got {type(prompt).__name__}")
        else:
            raise DataError(
                f"{source}: entry {i} is {json.dumps(item)[:60]}; expected a string or an object with a string 'word'"
            )
        word = _clean(word)
        if not word:
            raise DataError(f"{source}: entry {i} is an empty word")
        out.append(ConceptWord(word, _clean(prompt) or None if prompt else None))
    return out


def load_corpus(path: str | Path, return_report: bool = False):
    """Read a user corpus from a ``.txt`` or ``.json`` file.

    Parameters
    ----------
    path : str or Path
    return_report : bool, default False
        Also return a ``CorpusReport`` (duplicates dropped).

    Returns
    -------
    list of ConceptWord, or (list, CorpusReport)

    Raises
    ------
    DataError
        Missing file, unknown extension, malformed content, or no concept at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"corpus file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"corpus file {path} is not UTF-8 text ({e})") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"corpus file {path} is not valid JSON: {e}") from None
        words = parse_json(data, str(path))
        positions = list(range(len(words)))
    elif suffix in (".txt", ""):
        words, positions = parse_txt(text, str(path))
    else:
        raise DataError(f"corpus file {path}: unknown format {suffix!r}; use .txt (one word a line) or .json")
    if not words:
        raise DataError(f"corpus file {path} has no concepts (only blank or # lines?)")
    kept, report = dedupe(words, positions)
    return (kept, report) if return_report else kept


def _default_text() -> str:
    return resources.files("inficond.concepts").joinpath(DEFAULT_CORPUS).read_text(encoding="utf-8")


def default_corpus() -> list[ConceptWord]:
    """The packaged corpus: Broden's object and part labels (the paper's corpus source), about
    640 words, built by ``scripts/build_default_corpus.py``; deduplicated."""
    words, lines = parse_txt(_default_text(), DEFAULT_CORPUS)
    return dedupe(words, lines)[0]


def default_corpus_digest() -> str:
    """Short digest of the packaged corpus file; encoders that centre on it include it in identity()."""
    return hashlib.sha256(_default_text().encode()).hexdigest()[:12]
