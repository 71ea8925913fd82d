"""The one tokenizer: clean Simplified text and jieba words, shared by indexing and queries."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from llmstruct.text.normalize import clean_text, normalize, to_simplified
from llmstruct.vocab import VOCAB

# Function words and question words: they carry no topic and only add noise to BM25.
_STOPWORDS = frozenset(VOCAB.words("bm25_stopwords"))

_TOKEN_OK = re.compile(r"[\w\u3400-\u9fff%]")


def analyze(text: str) -> str:
    """Clean, Simplified text: normalisation as for structuring, lines joined, t2s."""
    nt, _ = normalize(text)
    return to_simplified(clean_text(nt.text))


@lru_cache(maxsize=1)
def jieba_tokenizer() -> Any:
    """jieba's default dictionary, loaded once; never given extra words, so the tokens an
    index was built with and the tokens of a query are always cut alike."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


def tokenizer_with(words: Iterable[str]) -> Any:
    """A tokenizer of its own that also knows ``words`` (a catalog's place, leader and unit
    names), built from the shared dictionary without loading it again or changing it."""
    import jieba

    base = jieba_tokenizer()
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized = dict(base.FREQ), base.total, True
    for word in words:
        tok.add_word(word)
    return tok


def tokenize(text: str) -> list[str]:
    """BM25 tokens: jieba search-mode words of the analysed text, stopwords dropped.

    Search mode also emits the short words inside long ones (统计局 -> 统计, 统计局), so a
    query term matches whichever granularity the document was cut at.
    """
    out = []
    for tok in jieba_tokenizer().cut_for_search(analyze(text)):
        tok = tok.strip().lower()
        if tok and tok not in _STOPWORDS and _TOKEN_OK.search(tok) and not tok.isspace():
            out.append(tok)
    return out
