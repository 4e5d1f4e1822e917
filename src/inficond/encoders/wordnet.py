"""WordNet 3.0 noun hypernyms for ImageNet classes, read from the WordNet database files.

ImageNet's wnids are WordNet 3.0 noun synset offsets (``n02099601`` is the synset at byte
02099601 of ``data.noun``), so one ``seek`` finds a class's synset and its ``@`` (hypernym) and
``@i`` (instance hypernym) pointers give the parents. Reading the database directly needs no
NLTK and no download: the files come from Debian's ``wordnet-base`` package
(``/usr/share/wordnet``), or any directory holding WordNet 3.0's ``data.noun`` (NLTK's
``corpora/wordnet`` works too), named by ``$INFICOND_WORDNET``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from inficond.exceptions import EncoderLoadError

DEFAULT_DIRS = ("/usr/share/wordnet",)


def wordnet_dir() -> Path:
    """The directory holding ``data.noun``; raises ``EncoderLoadError`` saying how to get it."""
    cands = [os.environ["INFICOND_WORDNET"]] if os.environ.get("INFICOND_WORDNET") else list(DEFAULT_DIRS)
    for d in cands:
        if (Path(d) / "data.noun").is_file():
            return Path(d)
    raise EncoderLoadError(
        f"WordNet 3.0 database not found (looked for data.noun in {', '.join(cands)}); "
        "install Debian's wordnet-base (apt-get install wordnet-base) or set INFICOND_WORDNET to a "
        "directory holding WordNet 3.0's data.noun"
    )


class WordNetNouns:
    """Synsets of WordNet 3.0's noun database, looked up by offset.

    Parameters
    ----------
    directory : str or Path, optional
        Holds ``data.noun``; default ``wordnet_dir()``.
    """

    def __init__(self, directory: str | Path | None = None):
        self.path = Path(directory) / "data.noun" if directory else wordnet_dir() / "data.noun"
        self._fh = open(self.path, "rb")

    @functools.lru_cache(maxsize=None)
    def synset(self, offset: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(lemmas, hypernym offsets) of the noun synset at byte ``offset``."""
        self._fh.seek(offset)
        line = self._fh.readline().decode("utf-8")
        fields = line.split(" | ", 1)[0].split()
        if len(fields) < 4 or not fields[0].isdigit() or int(fields[0]) != offset or fields[2] != "n":
            raise EncoderLoadError(f"{self.path}: no noun synset at offset {offset:08d} (is this WordNet 3.0?)")
        n_words = int(fields[3], 16)
        lemmas = tuple(fields[4 + 2 * i].replace("_", " ") for i in range(n_words))
        pos = 4 + 2 * n_words
        n_ptr = int(fields[pos])
        parents = []
        for i in range(n_ptr):
            sym, off = fields[pos + 1 + 4 * i], fields[pos + 2 + 4 * i]
            if sym in ("@", "@i"):
                parents.append(int(off))
        return lemmas, tuple(parents)

    def hypernym_levels(self, wnid: str, depth: int) -> list[list[tuple[str, ...]]]:
        """Lemma lists of the ancestors of ``wnid`` (``"n02099601"``), level by level, ``depth`` levels up.

        Level 1 holds the direct parents, level 2 their parents, and so on (breadth first; a synset
        reached twice is kept at its nearest level).
        """
        if not (len(wnid) == 9 and wnid[0] == "n" and wnid[1:].isdigit()):
            raise ValueError(f"not a WordNet noun id: {wnid!r} (expected 'n' + 8 digits)")
        seen = {int(wnid[1:])}
        level = [int(wnid[1:])]
        out = []
        for _ in range(depth):
            nxt = []
            for off in level:
                for p in self.synset(off)[1]:
                    if p not in seen:
                        seen.add(p)
                        nxt.append(p)
            if not nxt:
                break
            out.append([self.synset(p)[0] for p in nxt])
            level = nxt
        return out

    def close(self) -> None:
        self._fh.close()


@functools.lru_cache(maxsize=1)
def wordnet_nouns() -> WordNetNouns:
    return WordNetNouns()
