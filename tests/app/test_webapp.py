"""End-to-end tests of the web app's API through gradio_client, against the real app
(subprocess on a free loopback port, temporary data dir, real model), plus fast tests of
the rendering helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ROOT

from llmstruct.answer.refusal import REFUSAL
from llmstruct.ingest.source import read_source
from llmstruct.schema import Answer, Citation

SEEDS = ROOT / "seeds"


def test_passage_view_marks_the_cited_span():
    from llmstruct.answer.catalog import load_catalog
    from llmstruct.app.webapp import item_at, item_summary, passage_html

    cat = load_catalog([SEEDS / "000_5c1aadecc78db95a.txt"])
    text = cat.texts["000_5c1aadecc78db95a"]
    a = text.index("实现一般公共预算收入 10.1 亿元")
    c = Citation(n=1, doc_id="000_5c1aadecc78db95a", source_file="000_5c1aadecc78db95a.txt", start=a, end=a + 18,
                 quote=text[a:a + 18])
    html = passage_html(c, cat)
    assert "<mark id='cited-span'>实现一般公共预算收入 10.1 亿元</mark>" in html
    summary = item_summary(item_at(cat, c.doc_id, c.start))
    assert summary["序号"] == 2 and summary["责任领导"] == ["朱凤华"]


def test_exports_json_csv_excel(tmp_path):
    from openpyxl import load_workbook

    from llmstruct.answer.catalog import load_catalog
    from llmstruct.app.webapp import export_files, items_html

    cat = load_catalog([SEEDS / "001_0bd5adcbd4f51cd8.txt"])
    rec = next(iter(cat.records.values()))
    paths = [Path(p) for p in export_files(rec, tmp_path)]
    assert [p.suffix for p in paths] == [".json", ".csv", ".xlsx"]
    assert json.loads(paths[0].read_text(encoding="utf-8"))["doc_id"] == rec.doc_id
    assert paths[1].read_text(encoding="utf-8-sig").count("\n") == len(rec.items) + 1
    assert load_workbook(paths[2]).active.max_row == len(rec.items) + 1
    assert items_html(rec).count("<tr>") == len(rec.items) + 1


def test_exported_text_never_becomes_a_formula(tmp_path):
    """A task text starting with = (or +, -, @) is kept as text in CSV and Excel."""
    import csv

    from openpyxl import load_workbook

    from llmstruct.answer.catalog import load_catalog
    from llmstruct.app.webapp import export_files

    rec = next(iter(load_catalog([SEEDS / "001_0bd5adcbd4f51cd8.txt"]).records.values()))
    first = rec.items[0]
    payload = '=HYPERLINK("http://example.invalid","点此")'
    forged = first.model_copy(update={"task": first.task.model_copy(update={"text": payload})})
    paths = export_files(rec.model_copy(update={"items": [forged, *rec.items[1:]]}), tmp_path)
    rows = list(csv.reader(Path(paths[1]).read_text(encoding="utf-8-sig").splitlines()))
    assert rows[1][4] == "'" + payload
    cell = load_workbook(paths[2]).active.cell(row=2, column=5)
    assert cell.value == payload and cell.data_type == "s"


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _valid(answer: Answer) -> None:
    for c in answer.citations:
        assert read_source(SEEDS / c.source_file).text[c.start:c.end] == c.quote


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_chat_streams_and_cites(client):
    job = client.submit("郯城县2022年社会消费品零售总额是多少？", [], None, None, None, None, None, api_name="/chat")
    outputs = list(job)
    assert len(outputs) >= 2  # streamed: a status/draft before the final answer
    chat, _, data, _, _ = job.outputs()[-1]
    answer = Answer.model_validate(data)
    assert not answer.refused and "142.5" in answer.answer and answer.citations
    _valid(answer)
    from llmstruct.eval.bench.load import _last_assistant

    shown = _last_assistant(chat)
    assert "[1]" in shown and "引用来源" in shown and answer.citations[0].n == 1
    html, record = client.predict(0, data, api_name="/citation")
    assert "<mark id='cited-span'>" in html and record.get("item_id", "").startswith("002_")


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_ask_api_json_refusal_follow_up_and_filters(client):
    a = Answer.model_validate(client.predict("临沭县通报中刘洪明作为责任领导的任务有几项？", "[]", "{}", api_name="/ask"))
    assert "共8项" in a.answer and len(a.citations) == 8
    _valid(a)
    r = Answer.model_validate(client.predict("郯城县2023年计划新建多少个5G基站？", "[]", "{}", api_name="/ask"))
    assert r.refused and r.answer == REFUSAL and r.citations == []
    prev = "临沭县2021年的地区生产总值增长目标是多少？"
    f = Answer.model_validate(client.predict("那峄城区呢？", json.dumps([prev]), "{}", api_name="/ask"))
    assert all(c.doc_id == "003_2daf1169395244c2" for c in f.citations)
    _valid(f)
    g = Answer.model_validate(client.predict("一般公共预算收入增长目标是多少？", "[]",
                                             json.dumps({"doc_id": "002_64fd41ca82a7d87d"}), api_name="/ask"))
    assert all(c.doc_id == "002_64fd41ca82a7d87d" for c in g.citations)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_upload_structures_indexes_and_answers(client, tmp_path):
    """An uploaded report (here the opening of a seed bulletin, under a new name) is
    structured, indexed and answerable, with citations into the uploaded file."""
    from gradio_client import handle_file

    text = read_source(SEEDS / "000_5c1aadecc78db95a.txt").text
    cut = text.index("4. 编制产业链图谱")
    doc = tmp_path / "uploaded_bulletin.txt"
    doc.write_text(text[:cut], encoding="utf-8")
    msg, _ = client.predict(handle_file(str(doc)), False, api_name="/upload")
    assert "已结构化并建立索引" in msg
    # a forged report named like the seed cannot take the seed's place through the public API
    forged = tmp_path / "000_5c1aadecc78db95a.md"
    forged.write_text("1. 伪造的任务。（责任单位：某局）\n", encoding="utf-8")
    msg, _ = client.predict(handle_file(str(forged)), True, api_name="/upload")
    assert "另存为 000_5c1aadecc78db95a-" in msg and "原有报告未受影响" in msg
    a = Answer.model_validate(client.predict("上半年一般公共预算收入是多少？", "[]",
                                             json.dumps({"doc_id": "uploaded_bulletin"}), api_name="/ask"))
    assert not a.refused and "10.1" in a.answer and a.citations
    uploaded = read_source(doc).text
    for c in a.citations:
        assert c.source_file == doc.name and uploaded[c.start:c.end] == c.quote


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_load_20_concurrent_chat_sessions(app_url):
    """20 concurrent gradio_client sessions on loopback: zero errors; p50/p95 printed."""
    from llmstruct.eval.bench.load import run

    summary = run(app_url, sessions=20, timeout=1800)
    brief = {k: v for k, v in summary.items() if k != "results"}
    print("load test:", json.dumps(brief, ensure_ascii=False))
    assert summary["errors"] == 0, [r["error"] for r in summary["results"] if not r["ok"]]
    assert summary["latency_p50"] is not None and summary["latency_p95"] >= summary["latency_p50"]


def test_export_folders_are_pruned(tmp_path):
    """Each document view writes its exports to a new folder; old ones do not pile up."""
    import os
    import time

    from llmstruct.app.exports import EXPORT_KEEP_SECONDS, export_folder

    first = export_folder()
    (first / "x.json").write_text("{}", encoding="utf-8")
    old = time.time() - EXPORT_KEEP_SECONDS - 5
    os.utime(first, (old, old))
    second = export_folder()
    assert second.parent == first.parent and second.is_dir()
    assert not first.exists()


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.model
def test_a_cancelled_question_leaves_the_model(app_url):
    """停止生成 (here the API's cancel) ends the question's generation: the model's batch
    is empty again soon after, not when the answer would have ended."""
    import time

    from gradio_client import Client

    asking = Client(app_url, verbose=False)
    job = asking.submit("峄城区的智能化电动工具项目为什么没有推进？", [], None, None, None, None, None, api_name="/chat")
    watcher = Client(app_url, verbose=False)
    seen_busy = False
    deadline = time.time() + 120
    while time.time() < deadline and not job.done():
        load = watcher.predict(api_name="/status").get("load", {})
        if load.get("decoding") or load.get("waiting"):
            seen_busy = True
            break
        time.sleep(0.2)
    if not seen_busy:
        pytest.skip("the answer finished before it could be cancelled")
    before = load.get("cancelled", 0)
    job.cancel()
    deadline = time.time() + 30
    while time.time() < deadline:
        load = watcher.predict(api_name="/status").get("load", {})
        if load.get("cancelled", 0) > before:
            assert not load.get("decoding")
            return
        time.sleep(0.5)
    raise AssertionError(f"the cancelled question was not dropped: {load}")
