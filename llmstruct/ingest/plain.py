"""Plain text and byte decoding: BOM, strict UTF-8, a declared charset, GB18030 when it reads as Chinese."""

from __future__ import annotations

import codecs
from collections import Counter

from llmstruct.ingest.common import Rejected

_BOMS = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


# Control characters that real text files do carry: tab, LF, VT, FF, CR, ESC.
_ALLOWED_CONTROLS = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B}

_CONTROL_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in _ALLOWED_CONTROLS)

_CONTROL_RATIO = 0.05

_BINARY_SAMPLE = 64 * 1024

GB_FAMILY = {"gb18030", "gbk", "gb2312", "cp936", "hz"}

_GB2312_SHARE = 0.9


def read_text(raw: bytes) -> tuple[str, str, list[str]]:
    text, encoding = decode(raw)
    if not text.strip():
        raise Rejected("empty file (only whitespace)")
    text, warnings = normalise_newlines(text, note=True)
    return text, encoding, warnings


def normalise_newlines(text: str, note: bool) -> tuple[str, list[str]]:
    """Turn CRLF and lone CR into LF: the only change made to a plain-text file."""
    if "\r" not in text:
        return text, []
    crlf = text.count("\r\n")
    lone_cr = text.count("\r") - crlf
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not note:
        return text, []
    return text, [f"line endings normalised to \\n ({crlf} CRLF, {lone_cr} CR)"]


def decode(raw: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode strictly: BOM, then UTF-8, then a declared charset, then GB18030 if it reads as Chinese."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as exc:
                raise Rejected(f"cannot decode text: invalid {codec} after its byte-order mark ({exc.reason})") from None
            if codec == "utf-8-sig":
                _check_controls(text)
            elif _control_ratio(text) > _CONTROL_RATIO:
                raise Rejected("binary content: too many control characters")
            return text, codec

    if b"\x00" in raw:
        raise Rejected("binary content: contains NUL bytes (or UTF-16 without a byte-order mark)")
    sample = raw[:_BINARY_SAMPLE]
    if len(sample.translate(None, delete=_CONTROL_BYTES)) < len(sample) * (1 - _CONTROL_RATIO):
        raise Rejected("binary content: too many control characters")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    else:
        _check_controls(text)
        return text, "utf-8"

    if declared and declared not in ("utf-8", "gb18030"):
        try:
            text = raw.decode(declared)
        except UnicodeDecodeError:
            pass
        else:
            western = declared in ("latin-1", "iso8859-1", "cp1252", "ascii")
            if not (western and _gb18030_chinese(raw)):
                _check_controls(text)
                return text, declared

    text = _gb18030_chinese(raw)
    if text is not None:
        _check_controls(text)
        return text, "gb18030"
    raise Rejected(_undecodable_reason(raw, utf8_error))


def _gb18030_chinese(raw: bytes) -> str | None:
    """The GB18030 decoding of ``raw`` if it is strict and reads as Chinese, else None.

    Any byte pair with a high lead byte is valid GBK, so Latin-1 or Big5 text often
    decodes "cleanly" into nonsense ideographs. Real GB text keeps almost all its
    characters inside GB2312 (the common repertoire); when it does not (traditional
    characters, rare names) charset-normalizer decides.
    """
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    counts = Counter(ch for ch in text if ord(ch) > 0x7F)
    total = sum(counts.values())
    if total == 0:
        return text
    in_gb2312 = sum(n for ch, n in counts.items() if _in_gb2312(ch))
    if in_gb2312 >= total * _GB2312_SHARE:
        return text
    guess = _guess_encoding(raw)
    return text if guess in GB_FAMILY else None


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _guess_encoding(raw: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    return best.encoding if best is not None else None


def _undecodable_reason(raw: bytes, utf8_error: UnicodeDecodeError) -> str:
    reason = (
        f"cannot decode text: not valid UTF-8 (bad byte at offset {utf8_error.start}) and not Chinese GB18030/GBK text"
    )
    guess = _guess_encoding(raw)
    if guess and guess not in GB_FAMILY and guess not in ("utf_8", "utf-8"):
        reason += f" (charset-normalizer guesses {guess}, which is not supported)"
    return reason


def _control_ratio(text: str) -> float:
    sample = text[:_BINARY_SAMPLE]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if (ord(ch) < 0x20 and ord(ch) not in _ALLOWED_CONTROLS) or 0x7F <= ord(ch) <= 0x9F)
    return bad / len(sample)


def _check_controls(text: str) -> None:
    if "\x00" in text:
        raise Rejected("binary content: contains NUL characters")
    if _control_ratio(text) > _CONTROL_RATIO:
        raise Rejected("binary content: too many control characters")
