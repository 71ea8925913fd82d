"""Which place a report is about, from the names it states and a small gazetteer."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from importlib import resources

from llmstruct.schema import Region

PROVINCE = "山东省"


@lru_cache(maxsize=1)
def _gazetteer() -> tuple[dict[str, str], dict[str, list[str]]]:
    """(city short name -> city, county -> [cities]); a county name may exist in two cities."""
    cities: dict[str, str] = {}
    counties: dict[str, list[str]] = {}
    text = (resources.files("llmstruct") / "data" / "shandong.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        city, *members = line.split()
        cities[city.removesuffix("市")] = city
        for county in members:
            counties.setdefault(county, []).append(city)
    return cities, counties


_TOWN = re.compile(r"(?:\d{4}年|[区县市】])([\u4e00-\u9fff]{2,3}?(?:镇|街道|乡))(?:人民政府|政府工作报告|第[一二三四五六七八九十\d]+届)")


def resolve_region(header: str, body: str = "") -> Region:
    """Region from the header (title, issuer, first lines); the body only breaks ties.

    A county found in the header wins; otherwise a county named at least three times in the
    body and clearly more than any other. The city is the county's city (or a city named in
    the header); the province is Shandong when any of them is known.
    """
    cities, counties = _gazetteer()
    county = city = town = None
    hits = [(header.find(name), name) for name in counties if name in header]
    hits = [h for h in hits if h[0] >= 0 and not _inside_longer(header, h[1], counties)]
    if hits:
        county = min(hits)[1]
    elif body:
        counts = Counter({name: body.count(name) for name in counties if name in body})
        for name in list(counts):
            if _inside_longer(body, name, counties):
                counts[name] = body.count(name) - sum(body.count(o) for o in counties if o != name and name in o)
        ranked = counts.most_common(2)
        if ranked and ranked[0][1] >= 3 and (len(ranked) == 1 or ranked[0][1] >= 2 * ranked[1][1]):
            county = ranked[0][0]
    header_cities = [(header.find(short), full) for short, full in cities.items() if short in header]
    if county:
        options = counties[county]
        named = [c for _, c in sorted(header_cities) if c in options]
        city = named[0] if named else (options[0] if len(options) == 1 else None)
    elif header_cities:
        city = min(header_cities)[1]
    m = _TOWN.search(header)
    if m:
        town = m.group(1)
    if county == city:
        county = None
    province = PROVINCE if (city or county) else None
    return Region(province=province, city=city, county=county, town=town)


def _inside_longer(text: str, name: str, counties: dict[str, list[str]]) -> bool:
    """True when every occurrence of ``name`` is part of a longer county name (县 in 冠县 ...)."""
    longer = [o for o in counties if o != name and name in o and o in text]
    return bool(longer) and text.count(name) == sum(text.count(o) for o in longer)
