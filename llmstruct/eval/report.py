"""Eval reports: markdown, a self-contained HTML page (inline CSS and SVG, no scripts from
anywhere), and the JSON of every number. All three are rendered from the one result dict,
so they cannot disagree.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmstruct.atomic import write_text_atomic

FIELD_ROWS = (
    ("units", "units+role 单位及角色"), ("unit_names", "unit names 单位名称"), ("leaders", "leaders 责任领导"),
    ("deadlines", "deadlines 时限"), ("indicators", "indicators found 指标"), ("indicator_name", "indicator name 名称"),
    ("indicator_value", "indicator value 数值"), ("indicator_unit", "indicator unit 计量单位"),
    ("indicator_qualifier", "qualifier 限定"), ("indicator_kind", "kind 类型"), ("indicator_change", "change 变化量"),
    ("indicators_exact", "indicator all fields 全部字段"),
)
CHECK_ROWS = (
    ("progress_found", "progress block found 进展段"), ("progress_unit", "progress unit 报送单位"),
    ("status", "status 状态"), ("status_no_cue", "status, no verbal cue 无文字依据的状态"),
    ("status_cue", "status cue 状态依据"), ("item_status", "item status 任务状态"),
    ("section_path", "section path 章节"), ("item_kind", "item kind 条目类型"),
)
ANSWER_ROWS = (
    ("key_accuracy", "answer-key accuracy 答案要点"), ("key_recall", "answer-key recall 要点召回"),
    ("refusal_correct", "refusal accuracy 拒答判断"), ("refused_unanswerable", "refused unanswerable 无答案题拒答"),
    ("false_refusal", "false refusals 误拒"), ("citation_precision", "citation precision 引用精确率"),
    ("citation_recall", "citation recall 引用召回率"), ("unsupported_numbers", "unsupported numbers 无据数字"),
    ("citations_verified", "citations verified 引用核验"),
)
SEEDS_HEADING = "Extraction: seeds 种子文档"
CORPUS_HEADING = "Extraction: development corpus 开发语料"
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1")



def fmt(x: Any, pct: bool = True) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and pct and 0 <= x <= 1:
        return f"{x * 100:.1f}%"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def headline(r: dict) -> list[tuple[str, Any, str]]:
    """The row of numbers a reader looks at first for one extraction system."""
    f, c = r["fields"], r["checks"]
    return [
        ("segmentation F1 条目切分", r["segmentation"]["f1"], f"P {fmt(r['segmentation']['precision'])} R {fmt(r['segmentation']['recall'])}"),
        ("units+role F1", f.get("units", {}).get("f1"), ""),
        ("leaders F1", f.get("leaders", {}).get("f1"), ""),
        ("indicators F1", f.get("indicators", {}).get("f1"), ""),
        ("indicator all-fields F1", f.get("indicators_exact", {}).get("f1"), "value, unit, qualifier, kind, change"),
        ("status accuracy 状态", c.get("status", {}).get("rate"), f"{c.get('status', {}).get('hits', 0)}/{c.get('status', {}).get('total', 0)}"),
        ("schema-valid 合法", r["validity"]["rate"], r["validity"]["basis"]),
        ("grounded spans 有据", r["grounding"]["spans"]["rate"], f"values {fmt(r['grounding']['values']['rate'])}"),
        ("truncated 截断", r["truncation"]["rate"], r["truncation"]["basis"]),
        ("seconds/item 秒/条", r["speed"].get("seconds_per_item_median", r["speed"].get("seconds_per_item")), ""),
        ("tokens/s", r["speed"].get("tokens_per_second"), ""),
    ]


# ----------------------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def to_markdown(result: dict, gate: list | None = None) -> str:
    m = result["meta"]
    lines = [f"# llmstruct eval: {m['suite']}", "",
             f"{m['started']} · llmstruct {m['llmstruct_version']} · commit {m.get('git_commit') or '?'} · "
             f"{_gold_counts(m)}, {m['questions']} questions · {m.get('seconds', '?')} s · "
             f"{m['host']['cpus']} CPUs, load {m['host']['load_avg_1m']}", "", "## Sections", ""]
    lines += _md_table(["section", "status"], [[k, v] for k, v in result.get("sections", {}).items()])
    for key, heading, note in extraction_sets(result):
        lines += _md_extraction(result[key], heading, note)
    ret = result.get("retrieval") or {}
    if ret:
        ks = [k for k in next(iter(ret.values()))["overall"] if k.startswith("hit@")]
        lines += ["", "## Retrieval", "", "Relevant = overlaps a gold support quote in the same file.", ""]
        lines += _md_table(["mode", "questions"] + ks + ["MRR", "s/query"], [
            [r["title"], str(r["overall"]["questions"])] + [fmt(r["overall"][k]) for k in ks]
            + [fmt(r["overall"]["mrr"]), fmt(r.get("seconds_per_query_median"), pct=False)] for r in ret.values()])
    ans = result.get("answers") or {}
    for name, a in ans.items():
        lines += ["", f"## Answers: {a['title']}", ""]
        types = list(a["by_type"])
        lines += _md_table(["metric", "all"] + types, [
            [label, fmt(a["overall"].get(k, {}).get("rate"))] + [fmt(a["by_type"][t].get(k, {}).get("rate")) for t in types]
            for k, label in ANSWER_ROWS])
        refusals = a.get("refusals") or {}
        codes = sorted({c for by in refusals.values() for c in by})
        if codes:
            lines += ["", "Refusals by code 拒答原因 (which check refused):", ""]
            lines += _md_table(["code", "answerable (false refusals)", "unanswerable"], [
                [c, str(refusals.get("answerable", {}).get(c, 0)), str(refusals.get("unanswerable", {}).get(c, 0))]
                for c in codes])
        for note in a.get("notes", []):
            lines.append(f"\n- {note}")
        if a["errors"]:
            lines.append(f"\nFailed questions: {', '.join(sorted(a['errors']))}")
    sp = result.get("speed") or {}
    if sp:
        lines += ["", "## Speed", ""]
        lines += _md_table(["system", "seconds per unit", "tokens/s", "n"], [
            [k, fmt(v.get("seconds_per_item", v.get("seconds_per_query", v.get("seconds_per_question"))), pct=False),
             fmt(v.get("tokens_per_second"), pct=False),
             str(v.get("items", v.get("queries", v.get("questions"))))] for k, v in sp.items()])
    if gate is not None:
        lines += ["", "## Gate", ""]
        lines += _md_table(["metric", "rule", "value", "result"], [
            [g.metric, f"{g.op} {g.threshold}", fmt(g.value, pct=False), "pass" if g.ok else f"FAIL {g.note}".strip()]
            for g in gate])
    return "\n".join(lines) + "\n"


def _gold_counts(m: dict) -> str:
    extra = m.get("corpus_gold_items") or 0
    return f"{m['gold_items']} gold items" + (f" + {extra} development-corpus gold items" if extra else "")


def extraction_sets(result: dict) -> list[tuple[str, str, str]]:
    """(result key, heading, note) of each extraction gold set the result holds, seeds first."""
    sets = (result.get("meta") or {}).get("gold_sets") or {}
    out = []
    for key, name, heading in (("extraction", "seeds", SEEDS_HEADING), ("extraction_corpus", "corpus", CORPUS_HEADING)):
        if not result.get(key):
            continue
        gs = sets.get(name) or {}
        where = f"{gs.get('items', '?')} gold items from {gs['gold_file']} over {gs['docs_dir']}" if gs else ""
        note = where + ("; report only: the suite's gate does not read these numbers unless its thresholds "
                        "block names extraction_corpus.* metrics" if name == "corpus" else "")
        out.append((key, heading, note.lstrip("; ")))
    return out


def _md_extraction(ext: dict, heading: str, note: str) -> list[str]:
    names = list(ext)
    lines = ["", f"## {heading}", ""]
    if note:
        lines += [note, ""]
    rows = []
    for i, (label, _, _) in enumerate(headline(ext[names[0]])):
        rows.append([label] + [fmt(headline(ext[n])[i][1], pct=i < 9) for n in names])
    lines += _md_table(["metric"] + [ext[n]["title"] for n in names], rows)
    lines += ["", "Fields (F1; P/R in the JSON):", ""]
    lines += _md_table(["field"] + names, [[label] + [fmt(ext[n]["fields"].get(k, {}).get("f1")) for n in names]
                                           for k, label in FIELD_ROWS])
    lines += ["", "Checks (share of gold entries):", ""]
    lines += _md_table(["check"] + names, [[label] + [fmt(ext[n]["checks"].get(k, {}).get("rate")) for n in names]
                                           for k, label in CHECK_ROWS])
    conf = ext[names[0]].get("status_confusion", [])
    if conf:
        golds = sorted({c["gold"] for c in conf})
        preds = sorted({c["pred"] for c in conf})
        cell = {(c["gold"], c["pred"]): c["n"] for c in conf}
        lines += ["", f"Status confusion ({names[0]}; rows gold, columns predicted):", ""]
        lines += _md_table(["gold \\ pred"] + preds, [[g] + [str(cell.get((g, p), "")) for p in preds] for g in golds])
    cov = ext[names[0]].get("coverage", {})
    if cov:
        lines += ["", f"Figure coverage ({names[0]}; share of each report's figures inside an item):", ""]
        lines += _md_table(["doc", "figures", "in items", "share"],
                           [[d, str(c["figures"]), str(c["in_items"]), fmt(c["rate"])] for d, c in cov.items()])
    lines += ["", "Per document (segmentation recall / indicators F1 / units F1):", ""]
    docs = list(ext[names[0]]["per_doc"])
    lines += _md_table(["doc", "gold"] + names, [
        [d, str(ext[names[0]]["per_doc"][d]["gold_items"])] + [
            " / ".join(fmt(v) for v in _doc_triple(ext[n]["per_doc"].get(d))) for n in names]
        for d in docs])
    for n in names:
        for note in ext[n].get("notes", []):
            lines.append(f"\n- {n}: {note}")
    return lines


def _doc_triple(d: dict | None) -> tuple:
    if not d:
        return (None, None, None)
    return (d["segmentation"]["recall"], d["fields"].get("indicators", {}).get("f1"), d["fields"].get("units", {}).get("f1"))


# ----------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f5f5f5}.meta{color:#555;font-size:13px}
.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}.na{color:#999}.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}svg{display:block;margin:6px 0 18px}
.note{font-size:12px;color:#555}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _cell(x: Any, pct: bool = True) -> str:
    s = fmt(x, pct)
    return f'<td class="na">{s}</td>' if x is None else f"<td>{_esc(s)}</td>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """``rows`` hold ready <td> cells except the first, which is text."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(f"<tr><td>{_esc(r[0])}</td>{''.join(r[1:])}</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def bar_chart(title: str, groups: list[tuple[str, str]], series: list[tuple[str, str]],
              value: Any, scale: float = 1.0, pct: bool = True) -> str:
    """Horizontal grouped bars as inline SVG: one group per row label, one bar per series.

    ``value(group_key, series_key)`` gives the number or None (drawn as "n/a", no bar).
    """
    bar_h, gap_h, label_w, plot_w = 13, 10, 260, 560
    height = 28 + len(groups) * (len(series) * bar_h + gap_h)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 70}" height="{height}" '
             f'role="img" aria-label="{_esc(title)}">',
             f'<text x="0" y="14" font-size="13" font-weight="600">{_esc(title)}</text>']
    for frac in (0.25, 0.5, 0.75, 1.0):
        x = label_w + plot_w * frac
        parts.append(f'<line x1="{x}" y1="20" x2="{x}" y2="{height}" stroke="#eee"/>')
    y = 24
    for gk, glabel in groups:
        parts.append(f'<text x="{label_w - 6}" y="{y + len(series) * bar_h / 2 + 4}" font-size="12" '
                     f'text-anchor="end">{_esc(glabel)}</text>')
        for i, (sk, slabel) in enumerate(series):
            v = value(gk, sk)
            color = PALETTE[i % len(PALETTE)]
            if v is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + bar_h - 3}" font-size="10" fill="#999">'
                             f'{_esc(slabel)}: n/a</text>')
            else:
                w = max(0.0, min(1.0, v / scale)) * plot_w
                parts.append(f'<rect x="{label_w}" y="{y + 1}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                             f'<title>{_esc(slabel)}: {_esc(fmt(v, pct))}</title></rect>')
                parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" font-size="10">{_esc(fmt(v, pct))}</text>')
            y += bar_h
        y += gap_h
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{_esc(label)}</span>'
        for i, (_, label) in enumerate(series)) + "</div>"


def to_html(result: dict, gate: list | None = None) -> str:
    m = result["meta"]
    out = [f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>llmstruct eval {_esc(m['suite'])}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>llmstruct eval 评测报告: {_esc(m['suite'])}</h1>",
           f"<p class=\"meta\">{_esc(m['started'])} · llmstruct {_esc(m['llmstruct_version'])} · commit "
           f"{_esc(m.get('git_commit') or '?')} · {_esc(_gold_counts(m))} 条目, {m['questions']} questions 问题 · "
           f"{_esc(m.get('seconds', '?'))} s · {m['host']['cpus']} CPUs, load {m['host']['load_avg_1m']}</p>",
           "<h2>Sections 评测部分</h2>",
           _table(["section", "status"], [[k, f'<td class="{"ok" if v.startswith("ran") else "bad"}" style="text-align:left">'
                                           f"{_esc(v)}</td>"] for k, v in result.get("sections", {}).items()])]
    if gate is not None:
        fails = [g for g in gate if not g.ok]
        out.append(f"<h2>Gate 回归门槛: {'PASS 通过' if not fails else f'FAIL 未通过 ({len(fails)})'}</h2>")
        out.append(_table(["metric", "rule", "value", "result"], [
            [g.metric, f"<td>{_esc(g.op)} {g.threshold}</td>", _cell(g.value, pct=False),
             f'<td class="{"ok" if g.ok else "bad"}">{"pass" if g.ok else _esc(("FAIL " + g.note).strip())}</td>']
            for g in gate]))
    for key, heading, note in extraction_sets(result):
        out += _html_extraction(result[key], heading, note)
    out += _html_retrieval(result.get("retrieval") or {})
    out += _html_answers(result.get("answers") or {})
    sp = result.get("speed") or {}
    if sp:
        out.append("<h2>Speed 速度</h2><p class=\"note\">Medians on a shared 2-core machine; compare systems within one run.</p>")
        out.append(_table(["system", "seconds per unit 秒", "tokens/s", "n"], [
            [k, _cell(v.get("seconds_per_item", v.get("seconds_per_query", v.get("seconds_per_question"))), pct=False),
             _cell(v.get("tokens_per_second"), pct=False),
             _cell(v.get("items", v.get("queries", v.get("questions"))), pct=False)] for k, v in sp.items()]))
    shots = [Path(p) for p in result.get("screenshots", []) if Path(p).is_file()]
    if shots:
        out.append("<h2>Screenshots 截图</h2><p class=\"note\">From the browser tests (Chromium) of this checkout.</p>")
        for shot in shots:
            data = base64.b64encode(shot.read_bytes()).decode()
            out.append(f"<figure><img alt=\"{_esc(shot.name)}\" style=\"max-width:100%\" src=\"data:image/png;base64,"
                       f"{data}\"><figcaption>{_esc(shot.name)}</figcaption></figure>")
    out.append("<p class=\"note\">Every number on this page is in the JSON next to it.</p></body></html>")
    return "\n".join(out)


def _html_extraction(ext: dict, heading: str = SEEDS_HEADING, note: str = "") -> list[str]:
    if not ext:
        return []
    names = list(ext)
    series = [(n, ext[n]["title"]) for n in names]
    out = [f"<h2>{_esc(heading)}</h2>"] + ([f'<p class="note">{_esc(note)}</p>'] if note else []) + [_legend(series)]
    rows = []
    for i, (label, _, _) in enumerate(headline(ext[names[0]])):
        rows.append([label] + [_cell(headline(ext[n])[i][1], pct=i < 9) for n in names])
    out.append(_table(["metric"] + [ext[n]["title"] for n in names], rows))
    out.append(bar_chart("Field F1 per field 各字段 F1", list(FIELD_ROWS), series,
                         lambda f, s: ext[s]["fields"].get(f, {}).get("f1")))
    out.append(bar_chart("Checks 检查 (share of gold entries)", list(CHECK_ROWS), series,
                         lambda f, s: ext[s]["checks"].get(f, {}).get("rate")))
    conf = ext[names[0]].get("status_confusion", [])
    if conf:
        golds, preds = sorted({c["gold"] for c in conf}), sorted({c["pred"] for c in conf})
        cell = {(c["gold"], c["pred"]): c["n"] for c in conf}
        out.append(f"<h3>Status confusion 状态混淆 ({_esc(names[0])}; rows gold 标注, columns predicted 预测)</h3>")
        out.append(_table(["gold \\ pred"] + preds,
                          [[g] + [f"<td>{cell.get((g, p), '')}</td>" for p in preds] for g in golds]))
    cov = ext[names[0]].get("coverage", {})
    if cov:
        out.append(f"<h3>Figure coverage 数字覆盖 ({_esc(names[0])}; share of each report's figures inside an item)</h3>")
        out.append(_table(["doc", "figures", "in items", "share"],
                          [[d, _cell(c["figures"], pct=False), _cell(c["in_items"], pct=False), _cell(c["rate"])]
                           for d, c in cov.items()]))
    docs = list(ext[names[0]]["per_doc"])
    glabels = [(d, f"{d} ({ext[names[0]]['per_doc'][d]['gold_items']})") for d in docs]
    out.append(bar_chart("Segmentation recall per document 各文档条目召回", glabels, series,
                         lambda d, s: (ext[s]["per_doc"].get(d) or {}).get("segmentation", {}).get("recall")))
    out.append(bar_chart("Indicators F1 per document 各文档指标 F1", glabels, series,
                         lambda d, s: (ext[s]["per_doc"].get(d) or {}).get("fields", {}).get("indicators", {}).get("f1")))
    for n in names:
        for note in ext[n].get("notes", []):
            out.append(f'<p class="note">{_esc(n)}: {_esc(note)}</p>')
        for p in ext[n].get("problems", []):
            out.append(f'<p class="note bad">{_esc(n)}: {_esc(p)}</p>')
    return out


def _html_retrieval(ret: dict) -> list[str]:
    if not ret:
        return []
    names = list(ret)
    series = [(n, ret[n]["title"]) for n in names]
    ks = [k for k in ret[names[0]]["overall"] if k.startswith("hit@")]
    out = ["<h2>Retrieval 检索</h2><p class=\"note\">A passage is relevant when it overlaps a gold support quote "
           "in the same file. Answerable questions only.</p>", _legend(series),
           _table(["mode", "questions"] + ks + ["MRR", "s/query"], [
               [ret[n]["title"], _cell(ret[n]["overall"]["questions"], pct=False)]
               + [_cell(ret[n]["overall"][k]) for k in ks] + [_cell(ret[n]["overall"]["mrr"]),
                                                              _cell(ret[n].get("seconds_per_query_median"), pct=False)]
               for n in names]),
           bar_chart("hit@k and MRR", [(k, k) for k in ks] + [("mrr", "MRR")], series,
                     lambda k, s: ret[s]["overall"].get(k))]
    types = list(ret[names[0]]["by_type"])
    out.append(bar_chart("MRR per question type 各题型 MRR", [(t, t) for t in types], series,
                         lambda t, s: ret[s]["by_type"].get(t, {}).get("mrr")))
    return out


def _html_answers(ans: dict) -> list[str]:
    out = []
    for name, a in ans.items():
        types = list(a["by_type"])
        out += [f"<h2>Answers 问答: {_esc(a['title'])}</h2>",
                _table(["metric", "all 全部"] + types, [
                    [label, _cell(a["overall"].get(k, {}).get("rate"))]
                    + [_cell(a["by_type"][t].get(k, {}).get("rate")) for t in types] for k, label in ANSWER_ROWS])]
        series = [(k, label) for k, label in ANSWER_ROWS if k in ("key_accuracy", "refusal_correct", "citation_precision",
                                                                   "citation_recall")]
        out.append(_legend(series))
        out.append(bar_chart("Per question type 各题型", [(t, t) for t in types], series,
                             lambda t, s: a["by_type"][t].get(s, {}).get("rate")))
        for note in a.get("notes", []):
            out.append(f'<p class="note">{_esc(note)}</p>')
        if a["errors"]:
            out.append(f'<p class="note bad">Failed questions: {_esc(", ".join(sorted(a["errors"])))}</p>')
        rows = [[qid, f'<td style="text-align:left">{_esc(pq["type"])}</td>', _cell(pq.get("key_accuracy")),
                 _cell(pq.get("refusal_correct")), _cell(pq.get("citation_precision")),
                 f'<td style="text-align:left">{_esc(pq.get("answer") or pq.get("error") or "")}</td>']
                for qid, pq in a["per_question"].items()]
        out.append("<details><summary>Every question 逐题</summary>"
                   + _table(["id", "type", "keys", "refusal ok", "cite P", "answer 回答"], rows) + "</details>")
    return out


def write_reports(result: dict, html_path: Path, gate: list | None = None) -> list[Path]:
    """``X.html``, ``X.md`` and ``X.json`` side by side; returns the paths written."""
    html_path = Path(html_path)
    stem = html_path.name.removesuffix(".html")  # "extraction-1.5b.html" keeps its ".5b"
    md_path, json_path = html_path.with_name(stem + ".md"), html_path.with_name(stem + ".json")
    payload = dict(result)
    if gate is not None:
        payload["gate"] = [asdict(g) for g in gate]
    write_text_atomic(json_path, json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    write_text_atomic(md_path, to_markdown(result, gate))
    write_text_atomic(html_path, to_html(result, gate))
    return [html_path, md_path, json_path]


__all__ = ["bar_chart", "extraction_sets", "to_html", "to_markdown", "write_reports"]
