"""The Gradio app (Chinese UI): chat with verified citations, documents, upload, status.

The app is a thin layer over :mod:`llmstruct.answer` and :mod:`llmstruct.app.uploads`. It starts serving at once and
prepares itself in a background thread (model, store, first indexing of ``seeds/``),
showing each step in the status panel, so a first start on a fresh machine never looks
like a hang. Analytics and version checks are off; it binds to 127.0.0.1 unless told
otherwise; a login is asked for when ``auth`` is configured.
"""

from __future__ import annotations

import os

# Offline: gradio looks up its analytics and version hosts at import/start otherwise.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import html  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, get_args  # noqa: E402

from llmstruct.answer.asker import Asker  # noqa: E402
from llmstruct.answer.catalog import Catalog, catalog_from_store  # noqa: E402
from llmstruct.answer.refusal import REFUSAL  # noqa: E402
from llmstruct.app.corpus import open_corpus, source_folders, store_counts  # noqa: E402
from llmstruct.app.exports import export_folder, write_table  # noqa: E402
from llmstruct.app.progress import DEFAULT_STATUSES, basis_html, export_rows, progress_rows, rows_html  # noqa: E402
from llmstruct.app.uploads import UploadOutcome, add_upload  # noqa: E402
from llmstruct.app.wiring import backend_from_settings  # noqa: E402
from llmstruct.config import Settings, load_settings  # noqa: E402
from llmstruct.errors import ConfigError, IngestError  # noqa: E402
from llmstruct.schema import (  # noqa: E402
    Answer,
    Citation,
    DocType,
    DocumentRecord,
    TaskItem,
    UnitRole,
)
from llmstruct.store.store import Store  # noqa: E402
from llmstruct.vocab import VOCAB  # noqa: E402

_log = logging.getLogger("llmstruct.app")
UPLOAD_TYPES = [".txt", ".md", ".html", ".htm", ".pdf", ".docx"]
STATUS_COLOURS = {"completed": "#1a7f37", "on_track": "#2da44e", "in_progress": "#0969da", "behind": "#cf222e", "not_started": "#9a6700",
                  "suspended": "#8250df", "planned": "#57606a", "unknown": "#57606a"}
STATUS_ZH = {s: (VOCAB.status_label(s), colour) for s, colour in STATUS_COLOURS.items()}
PROGRESS_STATUSES = ("behind", "on_track", "completed", "not_started", "suspended", "in_progress")
DOC_TYPE_ZH = {t: VOCAB.doc_type_label(t) for t in get_args(DocType)}
ROLE_ZH = {r: VOCAB.role(r)["label"] for r in get_args(UnitRole)}
CSS = """
.cite-passage mark {background:#ffe58f; padding:0 2px; border-radius:2px;}
.cite-passage {white-space:pre-wrap; line-height:1.7; max-height:420px; overflow:auto;}
.status-tag {color:#fff; padding:1px 6px; border-radius:4px; font-size:0.85em; white-space:nowrap;}
"""


@dataclass
class Engine:
    """Process-wide state: the asker (catalog, backend, store) and readiness, prepared in the
    background. Chat handlers read it; only the preparer and uploads write it."""

    settings: Settings
    asker: Asker | None = None
    store: Store | None = None
    steps: list[str] = field(default_factory=list)
    ready: bool = False
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int | None = None  # the store's write count the catalog was read at

    def log(self, message: str) -> None:
        self.steps.append(f"{time.strftime('%H:%M:%S')} {message}")

    # ------------------------------------------------------------------ preparation

    def prepare(self) -> None:
        """Model, store, first indexing; every step is logged for the status panel."""
        try:
            self.log("读取文件库…")
            catalog, store = self._open_corpus()
            self.store = store
            self.log("准备模型（首次启动会组装并转换模型，约需1分钟）…")

            t0 = time.perf_counter()
            backend = backend_from_settings(self.settings)
            self.log(f"模型已加载：{backend.model_id}（{time.perf_counter() - t0:.1f} 秒）")
            self.asker = Asker(catalog, backend, store=store)
            self.log("预热解码语法…")
            backend.warm_up()
            self.ready = True
            self.log("就绪")
        except Exception as exc:  # shown in the status panel instead of a dead app
            self.error = f"{type(exc).__name__}: {exc}"
            self.log(f"准备失败：{self.error}")

    def _open_corpus(self) -> tuple[Catalog, Any]:
        catalog, store = open_corpus(self.settings, self.log)
        self.generation = store.generation()
        return catalog, store

    def refresh(self) -> None:
        """Take up what another app process indexed or removed in a shared store since the
        catalog was read (one cheap call when nothing changed)."""
        if self.store is None or self.asker is None:
            return
        gen = self.store.generation()
        if gen == self.generation:
            return
        with self.lock:
            if gen != self.generation:
                self.asker.catalog = catalog_from_store(self.store, source_folders(self.settings))
                self.generation = gen

    # ------------------------------------------------------------------ uploads

    def add_file(self, path: Path, progress=None, replace: bool = False) -> UploadOutcome:
        """Structure an uploaded report in a bounded child, index it, and make it askable."""
        if progress:
            progress(0.2, desc="正在解析、结构化并建立索引…")
        s = self.settings
        out = add_upload(path, s.data_dir / "uploads", self.store, replace=replace, max_mb=s.max_file_mb,
                         memory_mb=s.upload_memory_mb, seconds=s.upload_seconds)
        if out.source is not None:
            with self.lock:
                assert self.asker is not None
                old = self.asker.catalog
                keep = [r for r in old.records.values() if r.source_file != out.stored_as]
                kept_ids = {r.doc_id for r in keep}
                texts = {d: t for d, t in old.texts.items() if d in kept_ids}
                texts |= {r.doc_id: out.source.text for r in out.records}
                self.asker.catalog = Catalog(keep + out.records, texts, old.unavailable)
        if progress:
            progress(1.0, desc="完成")
        return out

    def status_markdown(self) -> str:
        s = self.settings
        lines = ["### 系统状态", ""]
        state = "就绪" if self.ready else ("准备失败" if self.error else "正在准备…")
        lines.append(f"- 状态：{state}")
        if self.asker is not None and self.asker.backend is not None:
            b = self.asker.backend
            cap = b.capabilities
            lines.append(f"- 模型：{b.model_id}；后端：{b.name}；约束解码：{cap.grammar}；线程：{cap.threads}")
            load = b.load()
            if load:
                lines.append(f"- 正在生成：{load.get('decoding', 0)} 个回答；排队：{load.get('waiting', 0)} 个")
        else:
            lines.append(f"- 模型：{s.model}；后端：{s.backend}")
        if self.store is not None:
            c = store_counts(self.store)
            where = self.store.location
            lines.append(f"- 向量库：Chroma {where}；文档 {c.get('documents', '?')}，条目 {c.get('items', '?')}，"
                         f"片段 {c.get('chunks', '?')}")
        else:
            lines.append("- 向量库：未启用（内存关键词检索）")
        if self.asker is not None:
            cat = self.asker.catalog
            items = sum(len(r.items) for r in cat.records.values())
            lines.append(f"- 报告：{len(cat.records)} 份；任务条目：{items} 条")
            if cat.unavailable:
                lines.append(f"- 暂不可用：{len(cat.unavailable)} 份（原文已变更或无法读取，不作引用）")
                lines += [f"  - {d}：{why}" for d, why in sorted(cat.unavailable.items())[:5]]
        lines.append(f"- 监听地址：{s.host}:{s.port}；登录：{'开启' if s.auth else '关闭'}；上传上限：{s.max_upload_mb:g} MB")
        lines += ["", "#### 准备过程", "", *[f"- {x}" for x in self.steps[-12:]]]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- rendering


def render_answer(answer: Answer, catalog: Catalog | None) -> str:
    """Markdown for the chat: the answer, then the numbered sources with their quotes."""
    if answer.refused:
        return f"**{answer.answer}**"
    lines = [answer.answer.replace("\n", "  \n"), "", "**引用来源**（点击右侧编号查看原文）："]
    for c in answer.citations:
        lines.append(f"- [{c.n}] {_doc_label(catalog, c.doc_id)}：「{_short(c.quote, 60)}」")
    return "\n".join(lines)


def upload_message(out: UploadOutcome) -> str:
    """What staff read after an upload: what was added, under which name, what it replaced."""
    if out.action == "unchanged":
        return f"该文件的内容已在文件库中（{out.stored_as}），未作改动。"
    names = "、".join(f"{r.title.name if r.title else r.doc_id}（{len(r.items)} 条任务）" for r in out.records)
    parts = [f"已结构化并建立索引：{names}。"]
    if out.renamed:
        parts.append(f"文件库中已有同名报告，本文件另存为 {out.stored_as}，原有报告未受影响"
                     "（如需替换先前上传的同名文件，请勾选“替换先前上传的同名报告”后重新上传）。")
    if out.replaced:
        parts.append(f"已替换先前上传的 {out.stored_as}：{'、'.join(out.replaced)}。")
    parts.append("现在可以在“问答”中提问。")
    if not any(r.items for r in out.records):
        parts.append("注意：未识别出任务条目，该文件暂时无法检索。")
    return "".join(parts)


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"


def _doc_label(catalog: Catalog | None, doc_id: str) -> str:
    if catalog and doc_id in catalog.docs:
        return catalog.docs[doc_id].label
    return doc_id


def citation_choices(answer: Answer | None, catalog: Catalog | None) -> list[tuple[str, int]]:
    if answer is None or answer.refused:
        return []
    return [(f"[{c.n}] {_short(_doc_label(catalog, c.doc_id), 24)}：{_short(c.quote, 20)}", k)
            for k, c in enumerate(answer.citations)]


def passage_html(citation: Citation, catalog: Catalog, context: int = 220) -> str:
    """The source around a citation with the cited span highlighted."""
    text = catalog.texts.get(citation.doc_id)
    if text is None:
        return f"<div class='cite-passage'>（原文不可用）<mark>{html.escape(citation.quote)}</mark></div>"
    a, b = citation.start, citation.end
    lo, hi = max(0, a - context), min(len(text), b + context)
    body = (html.escape(text[lo:a]) + f"<mark id='cited-span'>{html.escape(text[a:b])}</mark>" + html.escape(text[b:hi]))
    head = (f"<div><b>[{citation.n}] {html.escape(_doc_label(catalog, citation.doc_id))}</b><br>"
            f"<small>文件 {html.escape(citation.source_file)}，字符 {a}–{b}</small></div>")
    return f"{head}<div class='cite-passage'>{'…' if lo else ''}{body}{'…' if hi < len(text) else ''}</div>"


def item_at(catalog: Catalog, doc_id: str, pos: int) -> TaskItem | None:
    """The item whose passage holds original offset ``pos``."""
    rec = catalog.records.get(doc_id)
    if rec is None:
        return None
    for it in rec.items:
        spans = list(it.task.spans) + [s for p in it.progress for s in p.text.spans]
        spans += [ld.span for ld in it.leaders] + [s for u in it.units for s in u.spans]
        if spans and min(s.start for s in spans) <= pos < max(s.end for s in spans):
            return it
    return None


def item_summary(it: TaskItem | None) -> dict:
    if it is None:
        return {}
    return {
        "item_id": it.item_id,
        "序号": it.seq_no,
        "类别": it.kind,
        "所属章节": it.section_path,
        "任务": it.task.text[:300],
        "责任领导": [x.name for x in it.leaders],
        "单位": [f"{u.name}（{ROLE_ZH[u.role]}）" for u in it.units],
        "状态": STATUS_ZH.get(it.status or "", ("", ""))[0] or None,
        "时限": [d.text for d in it.deadlines],
        "进展": [((p.reporting_unit.name + "：") if p.reporting_unit else "") + p.text.text[:200] for p in it.progress],
        "进度判断": [p.assessment.explanation for p in it.progress if p.assessment is not None],
    }


def items_html(rec: DocumentRecord | None) -> str:
    """A report's task items as a table, statuses in colour."""
    if rec is None:
        return "<p>请选择一份报告。</p>"
    rows = []
    for it in rec.items:
        label, colour = STATUS_ZH.get(it.status or "", ("—", "#8c959f"))
        basis = "；".join(p.assessment.explanation for p in it.progress if p.assessment is not None)
        tag = (f"<span class='status-tag' style='background:{colour}' title='{html.escape(basis, quote=True)}'>{label}</span>"
               if it.status else "—")
        units = "、".join(f"{u.name}（{ROLE_ZH[u.role]}）" for u in it.units)
        rows.append(
            f"<tr><td>{it.seq_no if it.seq_no is not None else ''}</td><td>{html.escape(_short(it.heading or it.task.text, 80))}</td>"
            f"<td>{html.escape('、'.join(x.name for x in it.leaders))}</td><td>{html.escape(units)}</td><td>{tag}</td></tr>"
        )
    return ("<table><thead><tr><th>序号</th><th>任务</th><th>责任领导</th><th>单位</th><th>状态</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def export_files(rec: DocumentRecord, out_dir: Path) -> list[str]:
    """JSON (the full record), CSV and Excel (one row per item) of one report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / rec.doc_id
    json_path = base.with_suffix(".json")
    json_path.write_text(rec.model_dump_json(indent=2), encoding="utf-8")
    header = ["item_id", "序号", "类别", "章节", "任务", "责任领导", "单位", "状态", "进度判断", "时限"]
    rows = [[it.item_id, it.seq_no, it.kind, " / ".join(it.section_path), it.task.text,
             "、".join(x.name for x in it.leaders), "、".join(f"{u.name}({ROLE_ZH[u.role]})" for u in it.units),
             STATUS_ZH.get(it.status or "", ("", ""))[0],
             "；".join(p.assessment.explanation for p in it.progress if p.assessment is not None),
             "、".join(d.text for d in it.deadlines)] for it in rec.items]
    return [str(json_path), *write_table(base, "任务", header, rows)]


# ----------------------------------------------------------------------------- app


def build_app(engine: Engine | None = None, start: bool = True, settings: Settings | None = None):
    """The Blocks app; ``start`` prepares the engine in a background thread."""
    import gradio as gr

    engine = engine or Engine(settings or load_settings())
    s = engine.settings
    if start:
        threading.Thread(target=engine.prepare, daemon=True, name="llmstruct-prepare").start()

    def catalog() -> Catalog | None:
        engine.refresh()
        return engine.asker.catalog if engine.asker else None

    def filter_choices():
        cat = catalog()
        if cat is None:
            return [], [], [], [], []
        regions = sorted({d.place for d in cat.docs.values() if d.place})
        years = sorted({d.period for d in cat.docs.values() if d.period})
        docs = [(d.label[:40], d.doc_id) for d in cat.docs.values()]
        units = sorted(set(cat.units.values()))
        statuses = [(v[0], k) for k, v in STATUS_ZH.items()]
        return regions, years, docs, units, statuses

    def ask_stream(question: str, history: list, region, year, doc, unit, status):
        """Generator: the chat, then the verified answer with its citations."""
        history = list(history or [])
        question = (question or "").strip()
        if not question:
            yield history, gr.update(), None, "", {}
            return
        history.append({"role": "user", "content": question})
        if not engine.ready:
            note = "系统正在准备：" + (engine.steps[-1] if engine.steps else "启动中") + "。请稍后再问。"
            if engine.error:
                note = f"系统准备失败：{engine.error}"
            history.append({"role": "assistant", "content": note})
            yield history, gr.update(choices=[], value=None), None, "", {}
            return
        engine.refresh()
        prior = [m["content"] for m in history[:-1] if m.get("role") == "user"]
        filters = {k: v for k, v in (("region", region), ("year", year), ("doc_id", doc), ("unit", unit), ("status", status)) if v}
        history.append({"role": "assistant", "content": "正在检索…"})
        yield history, gr.update(choices=[], value=None), None, "", {}
        answer = None
        asker = engine.asker
        assert asker is not None
        for ev in asker.stream(question, prior, filters or None):
            if ev.kind == "status":
                history[-1] = {"role": "assistant", "content": ev.text}
            elif ev.kind == "draft":
                history[-1] = {"role": "assistant", "content": "正在从原文摘录依据（核验后显示回答）：\n\n" + ev.text}
            else:
                answer = ev.answer
                shown = render_answer(answer, asker.catalog)
                if answer.refused and ev.reason:
                    shown += f"\n\n（{ev.reason}）"
                history[-1] = {"role": "assistant", "content": shown}
            if ev.kind != "final":
                yield history, gr.update(), None, "", {}
        data = answer.model_dump() if answer else None
        choices = citation_choices(answer, asker.catalog)
        yield history, gr.update(choices=choices, value=None), data, "", {}

    def show_citation(k, data):
        if k is None or not data or engine.asker is None:
            return "", {}
        answer = Answer.model_validate(data)
        if not (0 <= int(k) < len(answer.citations)):
            return "", {}
        c = answer.citations[int(k)]
        cat = engine.asker.catalog
        return passage_html(c, cat), item_summary(item_at(cat, c.doc_id, c.start))

    def ask_json(question: str, history_json: str = "[]", filters_json: str = "{}") -> dict:
        """API: one question (prior questions as a JSON list) -> the Answer as a dict."""
        if not engine.ready or engine.asker is None:
            raise gr.Error("系统正在准备，请稍后再试。")
        engine.refresh()
        history = json.loads(history_json or "[]")
        filters = json.loads(filters_json or "{}") or None
        return engine.asker.ask(question, history, filters).model_dump()

    def docs_table():
        cat = catalog()
        if cat is None:
            return [], gr.update(choices=[])
        rows = [[d.doc_id, d.title, d.place, d.period or "", DOC_TYPE_ZH.get(d.doc_type, d.doc_type),
                 len(cat.records[d.doc_id].items)]
                for d in cat.docs.values()]
        return rows, gr.update(choices=[(d.label[:40], d.doc_id) for d in cat.docs.values()])

    def show_doc(doc_id):
        cat = catalog()
        if cat is None or not doc_id:
            return items_html(None), None
        rec = cat.records.get(doc_id)
        files = export_files(rec, export_folder()) if rec else None
        return items_html(rec), files

    def upload(file, replace=False, progress=gr.Progress()):
        if file is None:
            return "请选择文件。", gr.update()
        if not engine.ready:
            return "系统正在准备，请稍后再上传。", gr.update()
        path = Path(file if isinstance(file, str) else file.name)
        if path.suffix.lower() not in UPLOAD_TYPES:
            return f"不支持的文件类型：{path.suffix}（支持 {'、'.join(UPLOAD_TYPES)}）", gr.update()
        if path.stat().st_size > s.max_upload_mb * 1024 * 1024:
            return f"文件超过 {s.max_upload_mb:g} MB 上限。", gr.update()
        try:
            out = engine.add_file(path, progress, replace=bool(replace))
        except IngestError as exc:  # the reason only: the path is the server's temp copy
            return f"处理失败：{exc.reason}", gr.update()
        except Exception:
            _log.exception("upload of %s failed", path.name)
            return "处理失败：服务器内部错误（详情见服务器日志）。", gr.update()
        return upload_message(out), gr.update(choices=filter_choices()[2])

    def progress_view(doc, unit, leader, region, statuses):
        cat = catalog()
        if cat is None:
            return "<p>系统正在准备…</p>", gr.update(choices=[], value=None), None, []
        rows = progress_rows(cat, doc or None, unit or None, leader or None, region or None, statuses or ())
        files = export_rows(rows, export_folder(), STATUS_ZH) if rows else None
        picks = [(r.label, k) for k, r in enumerate(rows)]
        return rows_html(rows, STATUS_ZH), gr.update(choices=picks, value=None), files, rows

    def progress_basis(k, rows):
        cat = catalog()
        if cat is None or k is None or not rows or not 0 <= int(k) < len(rows):
            return ""
        return basis_html(rows[int(k)], cat)

    def progress_filters():
        cat = catalog()
        if cat is None:
            return (gr.update(choices=[]),) * 4
        regions, _, docs, units, _ = filter_choices()
        return (gr.update(choices=docs), gr.update(choices=units), gr.update(choices=sorted(cat.leaders)),
                gr.update(choices=regions))

    def refresh_filters():
        regions, years, docs, units, statuses = filter_choices()
        return (gr.update(choices=regions), gr.update(choices=years), gr.update(choices=docs),
                gr.update(choices=units), gr.update(choices=statuses))

    with gr.Blocks(title="政府文件问答") as demo:
        gr.Markdown("## 政府文件问答 · 每句回答都标注可核验的原文出处")
        with gr.Tab("问答"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="对话", height=460, elem_id="chat")
                    with gr.Row():
                        box = gr.Textbox(placeholder="输入问题，例如：临沭县上半年一般公共预算收入是多少？", show_label=False,
                                         scale=5, elem_id="question")
                        send = gr.Button("发送", variant="primary", scale=1, elem_id="send")
                    with gr.Row():
                        stop = gr.Button("停止生成", size="sm", elem_id="stop")
                        clear = gr.Button("清空对话", size="sm")
                    with gr.Accordion("筛选条件", open=False):
                        with gr.Row():
                            f_region = gr.Dropdown(label="地区", choices=[], value=None, allow_custom_value=True)
                            f_year = gr.Dropdown(label="年份", choices=[], value=None, allow_custom_value=True)
                            f_doc = gr.Dropdown(label="文件", choices=[], value=None)
                        with gr.Row():
                            f_unit = gr.Dropdown(label="单位", choices=[], value=None, allow_custom_value=True)
                            f_status = gr.Dropdown(label="状态", choices=[], value=None)
                            refresh = gr.Button("刷新选项", size="sm")
                with gr.Column(scale=2):
                    cites = gr.Radio(label="引用（点击查看原文）", choices=[], elem_id="citations")
                    passage = gr.HTML(label="原文", elem_id="passage")
                    record = gr.JSON(label="该条目的结构化记录")
            answer_state = gr.JSON(visible=False, elem_id="answer-json")
        with gr.Tab("文件"):
            docs = gr.Dataframe(headers=["doc_id", "标题", "地区", "年份", "类型", "条目数"], interactive=False,
                                label="报告列表")
            with gr.Row():
                pick = gr.Dropdown(label="选择报告", choices=[])
                load = gr.Button("刷新列表", size="sm")
            items = gr.HTML()
            downloads = gr.File(label="下载（JSON / CSV / Excel）", file_count="multiple", interactive=False)
            gr.Markdown("#### 上传报告")
            up_replace = gr.Checkbox(label="替换先前上传的同名报告（不会替换其他来源的报告）", value=False)
            up = gr.File(label=f"上传（{'、'.join(UPLOAD_TYPES)}）", file_types=UPLOAD_TYPES)
            up_msg = gr.Markdown()
        with gr.Tab("进度"):
            gr.Markdown("由代码对照目标和序时进度判断：每条结论附依据（实际数、目标数、时间段），点选可查看原文标注。")
            with gr.Row():
                p_doc = gr.Dropdown(label="文件", choices=[], value=None)
                p_unit = gr.Dropdown(label="单位", choices=[], value=None)
                p_leader = gr.Dropdown(label="责任领导", choices=[], value=None)
                p_region = gr.Dropdown(label="地区", choices=[], value=None)
            p_status = gr.CheckboxGroup(label="状态", value=list(DEFAULT_STATUSES), elem_id="progress-status",
                                        choices=[(STATUS_ZH[k][0], k) for k in PROGRESS_STATUSES])
            p_show = gr.Button("查看进度", variant="primary", elem_id="progress-show")
            p_table = gr.HTML(elem_id="progress-table")
            p_pick = gr.Dropdown(label="查看依据（原文标注）", choices=[], elem_id="progress-pick")
            p_basis = gr.HTML(elem_id="progress-basis")
            p_files = gr.File(label="导出（CSV / Excel）", file_count="multiple", interactive=False)
            p_rows = gr.State([])
        with gr.Tab("状态"):
            status_md = gr.Markdown(engine.status_markdown())
            timer = gr.Timer(2.0)

        outs = [chatbot, cites, answer_state, passage, record]
        ins = [box, chatbot, f_region, f_year, f_doc, f_unit, f_status]
        # Chat questions run side by side (the model batches their answers); uploads and the
        # other events keep the default of one at a time.
        chat = dict(concurrency_limit=engine.settings.chat_sessions, concurrency_id="chat")
        asked = send.click(ask_stream, ins, outs, api_name="chat", **chat)
        asked.then(lambda: "", None, box, api_name=False)
        submitted = box.submit(ask_stream, ins, outs, api_name=False, **chat)
        submitted.then(lambda: "", None, box, api_name=False)
        stop.click(None, None, None, cancels=[asked, submitted], api_name=False)
        clear.click(lambda: ([], gr.update(choices=[], value=None), None, "", {}), None, outs, api_name=False)
        cites.change(show_citation, [cites, answer_state], [passage, record], api_name="citation")
        refresh.click(refresh_filters, None, [f_region, f_year, f_doc, f_unit, f_status], api_name=False)
        load.click(docs_table, None, [docs, pick], api_name=False)
        pick.change(show_doc, pick, [items, downloads], api_name=False)
        up.upload(upload, [up, up_replace], [up_msg, pick], api_name="upload")
        p_show.click(progress_view, [p_doc, p_unit, p_leader, p_region, p_status], [p_table, p_pick, p_files, p_rows],
                     api_name="progress")
        p_pick.change(progress_basis, [p_pick, p_rows], p_basis, api_name=False)
        p_doc.focus(progress_filters, None, [p_doc, p_unit, p_leader, p_region], api_name=False)
        timer.tick(engine.status_markdown, None, status_md, api_name=False)
        demo.load(docs_table, None, [docs, pick], api_name=False)
        demo.load(refresh_filters, None, [f_region, f_year, f_doc, f_unit, f_status], api_name=False)
        demo.load(progress_filters, None, [p_doc, p_unit, p_leader, p_region], api_name=False)
        api_q = gr.Textbox(visible=False)
        api_h = gr.Textbox(visible=False)
        api_f = gr.Textbox(visible=False)
        api_out = gr.JSON(visible=False)
        api_btn = gr.Button(visible=False)
        api_btn.click(ask_json, [api_q, api_h, api_f], api_out, api_name="ask", **chat)
        status_btn = gr.Button(visible=False)
        status_btn.click(lambda: {"ready": engine.ready, "error": engine.error, "steps": engine.steps[-5:],
                                  "load": engine.asker.backend.load() if engine.asker and engine.asker.backend else {}},
                         None, gr.JSON(visible=False), api_name="status")
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.engine = engine  # type: ignore[attr-defined]
    return demo


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; a name or 0.0.0.0 may be reachable by others."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def launch(settings: Settings | None = None, host: str | None = None, port: int | None = None) -> None:
    """Build and serve: loopback by default, optional login, upload limit, no share link."""
    s = settings or load_settings()
    bind = host or s.host
    if not s.auth and not s.open_bind and not is_loopback(bind):
        raise ConfigError(f"refusing to serve on {bind} without a login: set LLMSTRUCT_AUTH=user:password "
                          "(or LLMSTRUCT_OPEN_BIND=1 to let anyone who can reach it in)")
    demo = build_app(settings=s)
    auth = None
    if s.auth:
        user, _, password = s.auth.partition(":")
        auth = (user, password)
    demo.launch(
        server_name=bind, server_port=port or s.port, share=False, auth=auth,
        max_file_size=f"{s.max_upload_mb:g}mb", show_error=False, ssr_mode=False, css=CSS,
        theme=None, footer_links=[],
    )


__all__ = ["CSS", "Engine", "build_app", "citation_choices", "export_files", "item_at", "items_html", "launch",
           "passage_html", "render_answer", "REFUSAL"]
