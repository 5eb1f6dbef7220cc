"""A lexical index: a tokeniser for code-flavoured English and BM25 Okapi ranking (no model weights needed).

Examples:
    >>> tokenize("DrQ-v2 on walker_walk")
    ['drqv2', 'drq', 'v2', 'dr', 'q', 'walkerwalk', 'walker', 'walk']
    >>> index = BM25Index([["ppo", "cartpole"], ["sac", "pendulum"], ["ppo", "atari"]])
    >>> [round(s, 3) for s in index.scores(["pendulum"])]
    [0.0, 0.981, 0.0]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

#: words that carry no retrieval signal in a question about this package
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in into is it its me my of on or so that the this to "
    "what when where which who why will with you your".split()
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+[A-Za-z0-9]*")


def stem(token: str) -> str:
    """A light suffix stripper, the same on questions and documents: plurals, ``-ing``, ``-ed``, a final ``-e``.

    Examples:
        >>> [stem(w) for w in ("pixels", "policies", "prioritized", "prioritize", "embedding", "class", "seed")]
        ['pixel', 'policy', 'prioritiz', 'prioritiz', 'embed', 'class', 'seed']
    """
    if not token.isalpha() or len(token) <= 3:
        return token
    if token.endswith("ies") and len(token) > 4:
        token = token[:-3] + "y"
    elif token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    for suffix in ("ing", "ed"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 4:
            token = token[: -len(suffix)]
            if len(token) > 2 and token[-1] == token[-2] and token[-1] not in "lsz":
                token = token[:-1]  # embedd(ing) -> embed
            break
    if token.endswith("e") and len(token) > 4:
        token = token[:-1]
    return token


def word_forms(word: str) -> list[str]:
    """The index terms of one word: the whole word joined (``drqv2``), its ``-``/``_``/``.`` parts, then their
    CamelCase parts, lowercased, stemmed, each once (a question's ``DrQ-v2`` meets the name ``drqv2`` and the
    name ``drq``)."""
    parts = re.split(r"[-_.]", word)
    forms = ["".join(parts)] + (parts if len(parts) > 1 else [])
    for part in parts:
        pieces = _CAMEL.findall(part) if part != part.lower() and part != part.upper() else []
        if len(pieces) > 1:
            forms += pieces
    out: list[str] = []
    for form in forms:
        term = stem(form.lower())
        if term and term not in out and term not in STOP_WORDS:
            out.append(term)
    return out


def words(text: str) -> list[str]:
    """The words of ``text`` as :func:`tokenize` sees them (identifiers kept whole)."""
    return _WORD.findall(text)


def tokenize(text: str) -> list[str]:
    """Index terms of ``text``: every word's :func:`word_forms`, in order (repeats across words count)."""
    return [term for word in words(text) for term in word_forms(word)]


class BM25Index:
    """BM25 Okapi over tokenised documents.

    ``score(D, Q) = sum over q in Q of idf(q) * f(q, D) * (k1 + 1) / (f(q, D) + k1 * (1 - b + b * |D| / avgdl))``
    with ``idf(q) = ln((N - n(q) + 0.5) / (n(q) + 0.5) + 1)`` (never negative, so a term in most documents still
    counts a little), ``N`` documents, ``n(q)`` of them holding ``q``, ``avgdl`` the mean document length.
    """

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.frequencies = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.average_length = sum(self.lengths) / len(documents) if documents else 0.0
        counts: Counter[str] = Counter()
        for freq in self.frequencies:
            counts.update(freq.keys())
        n = len(documents)
        self.idf = {term: math.log((n - df + 0.5) / (df + 0.5) + 1.0) for term, df in counts.items()}

    def scores(self, query: Sequence[str]) -> list[float]:
        """The score of every document for ``query`` (a list of terms), in document order."""
        out = []
        for freq, length in zip(self.frequencies, self.lengths, strict=True):
            norm = self.k1 * (1.0 - self.b + self.b * length / self.average_length) if self.average_length else 0.0
            total = 0.0
            for term in query:
                f = freq.get(term, 0)
                if f:
                    total += self.idf[term] * f * (self.k1 + 1.0) / (f + norm)
            out.append(total)
        return out
