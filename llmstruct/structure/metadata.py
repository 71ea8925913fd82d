"""Document-level facts written in fixed forms: title, 文号, issuer, dates, meeting, speaker."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmstruct.schema import DateField, Named, Region
from llmstruct.structure.layout import CN_DIGITS, Line, cn_number, lines
from llmstruct.structure.regions import resolve_region
from llmstruct.text.normalize import NormText, clean_text

_DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{2,10}[〔\[［【]\d{4}[〕\]］】]\d{1,4}号")
_ISO_DATE = r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
_CN_DATE = r"([〇○零一二三四五六七八九]{4})年([一二三四五六七八九十]{1,3})月([一二三四五六七八九十]{1,3})日"
_MEETING = re.compile(
    rf"(?P<date>{_ISO_DATE}|{_CN_DATE})\s*在\s*(?P<meeting>[^。]{{2,40}}?人民代表大会[^\n。]{{0,20}}?会议)上"
)
# A name may be printed with a space inside (上海市市长 龚 正), so it keeps its span but not the space.
_SPEAKER = re.compile(
    r"^(?P<title>[^\n各]{0,20}?(?:代理?)?(?:省长|市长|县长|区长|州长|盟长|旗长|镇长|乡长|主席|主任))?[\s；;：:]*"
    r"(?P<name>[\u4e00-\u9fff](?:[ \u3000]?[\u4e00-\u9fff]){1,3})$"
)
_ORG_END = ("人民政府办公室", "人民政府", "办公室", "委员会", "管委会", "局")


@dataclass
class Metadata:
    title: Named | None = None
    issuing_body: Named | None = None
    doc_number: Named | None = None
    dates: list[DateField] = field(default_factory=list)
    meeting: Named | None = None
    speaker: Named | None = None
    speaker_title: str = ""
    region: Region = field(default_factory=Region)
    period: str | None = None


def _named(nt: NormText, a: int, b: int) -> Named:
    return Named(name=clean_text(nt.text[a:b]), span=nt.span(a, b))


def _iso(y: str, m: str, d: str) -> str:
    return f"{int(y):04d}-{int(m):02d}-{int(d):02d}"


def _cn_iso(y: str, m: str, d: str) -> str | None:
    year = "".join(str(CN_DIGITS[c]) for c in y)
    month, day = cn_number(m), cn_number(d)
    if month is None or day is None:
        return None
    return _iso(year, str(month), str(day))


def extract_metadata(nt: NormText, start: int, end: int, title_line: Line | None) -> Metadata:
    """Fill what the header and signature state; leave the rest empty."""
    meta = Metadata()
    text = nt.text[start:end]
    head_lines = lines(nt, start, end)[:40]
    meta.title = _title(nt, head_lines, title_line)

    m = _DOC_NUMBER.search(text[:3000])
    if m:
        meta.doc_number = _named(nt, start + m.start(), start + m.end())

    meta.issuing_body = _issuer(nt, start, text, meta.title)

    for key, kind in (("发文日期", "issued"), ("发布日期", "published")):
        dm = re.search(rf"{key}\s*[：:]\s*{_ISO_DATE}", text[:3000])
        if dm:
            a, b = start + dm.start(1), start + dm.end()
            meta.dates.append(DateField(kind=kind, value=_iso(*dm.group(1, 2, 3)), span=nt.span(a, b)))
    all_lines = lines(nt, start, end)
    for prev, ln in zip(all_lines, all_lines[1:]):
        dm = re.fullmatch(_ISO_DATE, ln.text)
        if dm and prev.text.endswith(_ORG_END) and len(prev.text) <= 30:
            meta.dates.append(DateField(kind="signed", value=_iso(*dm.group(1, 2, 3)), span=nt.span(ln.start, ln.end)))
            if meta.issuing_body is None:
                meta.issuing_body = _named(nt, prev.start, prev.end)
            break
    dm = re.fullmatch(_ISO_DATE, all_lines[-1].text) if title_line is not None and all_lines else None
    if dm:
        meta.dates.append(DateField(kind="published", value=_iso(*dm.group(1, 2, 3)),
                                    span=nt.span(all_lines[-1].start, all_lines[-1].end)))

    mm = _MEETING.search(text[:3000])
    if mm:
        value = _iso(*mm.group(2, 3, 4)) if mm.group(2) else _cn_iso(*mm.group(5, 6, 7))
        if value:
            span = nt.span(start + mm.start("date"), start + mm.end("date"))
            meta.dates.append(DateField(kind="meeting", value=value, span=span))
        meta.meeting = _named(nt, start + mm.start("meeting"), start + mm.end("meeting"))
        _speaker(nt, meta, start + mm.end(), end)

    header = " ".join(x.name for x in (meta.title, meta.issuing_body, meta.meeting) if x)
    if title_line is not None:
        header = title_line.text + " " + header
    meta.region = resolve_region(header, text)
    year = re.search(r"(20\d{2})\s*年", meta.title.name) if meta.title else None
    if year:
        meta.period = year.group(1)
    else:
        for kind in ("meeting", "issued", "signed"):
            found = [d for d in meta.dates if d.kind == kind]
            if found:
                meta.period = found[0].value[:4]
                break
    return meta


def _title(nt: NormText, head: list[Line], title_line: Line | None) -> Named | None:
    if title_line is not None:
        m = re.match(r"^(?:[•·●▪■◆\-*]\s*)?(?:【[^】]*】)?", title_line.text)
        a = title_line.start + (m.end() if m else 0)
        return _named(nt, a, title_line.end)
    for ln in head:
        m = re.match(r"^标题\s*[：:]\s*", ln.text)
        if m:
            return _named(nt, ln.start + m.end(), ln.end)
    for ln in head:
        if len(ln.text) <= 100 and re.search(r"关于.{2,80}的(?:通报|通知|报告|意见|决定|方案)$", ln.text):
            return _named(nt, ln.start, ln.end)
    for ln in head:
        if len(ln.text) <= 80 and ("政府工作报告" in ln.text or re.search(r"(情况表|任务清单|进展情况)$", ln.text)):
            end = ln.end
            tail = re.search(r"[—\-]+全文$", ln.text)
            if tail:
                end = ln.start + tail.start()
            return _named(nt, ln.start, end)
    return None


def _issuer(nt: NormText, start: int, text: str, title: Named | None) -> Named | None:
    m = re.search(r"发布机构\s*[：:]\s*(\S+)", text[:3000])
    if m:
        return _named(nt, start + m.start(1), start + m.end(1))
    if title:
        t_start = _clean_offset(nt, title)
        if t_start is not None:
            body = nt.text[t_start:t_start + len(title.span.text) + 10]
            org = re.match(r"([\u4e00-\u9fff]{2,30}?(?:" + "|".join(_ORG_END) + r"))\s*关于", body)
            if org:
                return _named(nt, t_start, t_start + len(org.group(1)))
    return None


def _clean_offset(nt: NormText, named: Named) -> int | None:
    """Clean-text position of a Named's original start (first character mapped there)."""
    try:
        return nt.index.index(named.span.start)
    except ValueError:
        return None


def _speaker(nt: NormText, meta: Metadata, a: int, end: int) -> None:
    """The speaker after the meeting line: a titled line (省长 王予波) among the next few
    lines, which on web pages carry 来源/时间 clutter, or a bare name right before 各位代表."""
    stop = nt.text.find("各位代表", a, min(end, a + 300))
    if stop < 0:
        return
    lines = [(m.start() + a, m.end() + a) for m in re.finditer(r"[^\n]+", nt.text[a:stop])]
    for k, (la, lb) in enumerate(lines):
        while la < lb and nt.text[la].isspace():
            la += 1
        while lb > la and nt.text[lb - 1].isspace():
            lb -= 1
        m = _SPEAKER.match(nt.text[la:lb])
        if not m or not (m.group("title") or k == len(lines) - 1):
            continue
        meta.speaker = Named(name=re.sub(r"[ \u3000]", "", clean_text(m.group("name"))),
                             span=nt.span(la + m.start("name"), la + m.end("name")))
        if m.group("title"):
            meta.speaker_title = clean_text(m.group("title"))
        return
