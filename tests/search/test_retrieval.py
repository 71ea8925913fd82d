"""Hybrid retrieval: jieba BM25, Traditional/Simplified, filters, RRF, and the seed corpus.

The fast tests use a small report and a tmp embedding cache. The slow ones index the five
seeds once per session into a tmp store, with embeddings from the default on-disk cache
(the first run on a machine embeds ≈ 1,000 passages; later runs only read the cache).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import MINI, OTHER, ROOT, write_doc

from llmstruct.indexing import index_paths
from llmstruct.ingest.paths import expand_paths
from llmstruct.ingest.source import read_source
from llmstruct.search.filters import parse_filters
from llmstruct.search.hybrid import rrf, search
from llmstruct.search import lexical
from llmstruct.search.lexical import LexicalIndex, lexical_index
from llmstruct.search.records import query_items
from llmstruct.store.embedding import CachedEmbedder, E5Embedder
from llmstruct.store.opening import open_store
from llmstruct.text.tokens import analyze, tokenize

SEEDS = ROOT / "seeds"


# --------------------------------------------------------------------------- text and BM25 parts


def test_tokenize_keeps_two_character_words_and_maps_traditional():
    assert "滞后" in tokenize("哪些任务进展滞后")
    assert {"统计", "统计局"} <= set(tokenize("县统计局配合了哪些任务"))
    assert "哪些" not in tokenize("哪些任务进展滞后")
    trad = tokenize("生產總值增長6%以上")
    assert {"生产", "总值", "增长"} <= set(trad)
    assert analyze("生產(chǎn)總值") == "生产总值"


def test_rrf_rewards_agreement():
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]])
    assert [k for k, _ in fused][:2] == ["a", "c"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert {k for k, _ in fused} == {"a", "b", "c", "d"}


def _rows():
    texts = {
        "c1": "污水处理厂提标改造工程进展滞后",
        "c2": "新建5G基站80座，数字乡村建设进展顺利",
        "c3": "汽车充电桩建设正在推进",
        "c4": "污水管网建设已完成",
    }
    meta = {
        "c1": {"units": ["县发展和改革局"], "statuses": ["behind"], "year": "2022", "region": ["山东省", "临沭县"]},
        "c2": {"units": ["县工业和信息化局", "县统计局"], "statuses": ["in_progress"], "year": "2022",
               "region": ["山东省", "临沭县"]},
        "c3": {"units": ["县交通运输局"], "year": "2023", "region": ["山东省", "郯城县"]},
        "c4": {"units": ["县住房和城乡建设局"], "statuses": ["completed"], "year": "2023",
               "region": ["山东省", "郯城县"]},
    }
    for cid, text in texts.items():
        yield cid, dict(meta[cid], doc_id="d", tokens=" ".join(tokenize(text))), text


def test_lexical_index_ranks_filters_and_round_trips(tmp_path, monkeypatch):
    index = LexicalIndex.build("tag-1", _rows())
    top = [index.ids[i] for i, _ in index.top(tokenize("污水处理滞后"), 3)]
    assert top[0] == "c1" and "c4" in top and "c3" not in top
    mask = index.mask(parse_filters({"year": "2023"}))
    assert [index.ids[i] for i, _ in index.top(tokenize("污水"), 3, mask)] == ["c4"]
    units = parse_filters({"unit": "发改局"}, index.known("units"))
    assert index.mask(units).tolist() == [True, False, False, False]
    assert index.mask(parse_filters({"unit": "县统计局", "region": "臨沭縣"})).tolist() == [False, True, False, False]
    assert index.mask(parse_filters({"status": "滞后"})).tolist() == [True, False, False, False]
    whole = index.scores(tokenize("污水处理建设进展"))
    monkeypatch.setattr(lexical, "SPLIT_POSTINGS", 0)  # two halves on two threads, even for a tiny index
    assert np.allclose(index.scores(tokenize("污水处理建设进展"), split=True), whole, rtol=1e-6)
    assert index.top(tokenize("污水处理滞后"), 3, split=True) == index.top(tokenize("污水处理滞后"), 3)
    path = tmp_path / "bm25.npz"
    index.save(path)
    assert LexicalIndex.load(path, "tag-2") is None  # another generation: stale
    back = LexicalIndex.load(path, "tag-1")
    assert back is not None and back.ids == index.ids
    for row in range(len(index)):  # metadata and text come back from the columns as they went in
        assert back.meta(row) == {k: v for k, v in index.meta(row).items()} and back.text(row) == index.text(row)
    assert back.meta(2) == {"units": ["县交通运输局"], "year": "2023", "region": ["山东省", "郯城县"], "doc_id": "d"}
    assert back.text(1) == "新建5G基站80座，数字乡村建设进展顺利"
    assert np.array_equal(back.scores(tokenize("污水")), index.scores(tokenize("污水")))
    path.write_bytes(b"garbage")
    assert LexicalIndex.load(path, "tag-1") is None


def _same_index(a: LexicalIndex, b: LexicalIndex, queries: list[str]) -> None:
    """Same chunks with the same metadata, text and BM25 scores, whatever the row order."""
    assert sorted(a.ids) == sorted(b.ids)
    for cid in a.ids:
        ra, rb = a.pos[cid], b.pos[cid]
        assert a.meta(ra) == b.meta(rb) and a.text(ra) == b.text(rb), cid
    for q in queries:
        sa, sb = a.scores(tokenize(q)), b.scores(tokenize(q))
        assert np.allclose([sa[a.pos[c]] for c in a.ids], [sb[b.pos[c]] for c in a.ids], rtol=1e-5, atol=1e-7), q


def test_index_brought_up_to_date_equals_a_rebuild(tmp_path):
    """Rows written over, dropped by id or by document, and appended: the updated index
    scores, filters and shows every chunk as an index built from the final rows."""
    rows = list(_rows())
    extra = [("e1", {"doc_id": "e", "units": ["县统计局"], "year": "2024", "start": 3,
                     "tokens": " ".join(tokenize("统计局污水监测站建设滞后"))}, "统计局污水监测站建设滞后"),
             ("e2", {"doc_id": "e", "year": 2024, "tokens": " ".join(tokenize("充电桩建成"))}, "充电桩建成")]
    c2 = ("c2", {"doc_id": "d", "year": "2025", "statuses": ["completed"],
                 "tokens": " ".join(tokenize("数字乡村建设已完成"))}, "数字乡村建设已完成")
    other = [("o1", {"doc_id": "o", "tokens": " ".join(tokenize("污水"))}, "污水")]
    base = LexicalIndex.build("t1", rows + other)
    events = [("rows", extra), ("rows", [c2]), ("drop_ids", ["c3"]), ("drop_doc", "o"),
              ("rows", [("e3", {"doc_id": "e", "tokens": "全新 词语"}, "全新词语")]), ("drop_ids", ["e2"])]
    updated = base.updated("t2", events)
    final = [r for r in rows if r[0] not in ("c2", "c3")] + [extra[0], c2, ("e3", {"doc_id": "e", "tokens": "全新 词语"},
                                                                              "全新词语")]
    rebuilt = LexicalIndex.build("t2", final)
    assert updated.tag == "t2" and len(updated) == 5
    _same_index(updated, rebuilt, ["污水处理滞后", "建设进展", "全新", "统计局", "充电桩"])
    for f in ({"year": "2025"}, {"unit": "县统计局"}, {"status": "completed"}):
        assert ({updated.ids[i] for i in np.flatnonzero(updated.mask(parse_filters(f)))}
                == {rebuilt.ids[i] for i in np.flatnonzero(rebuilt.mask(parse_filters(f)))}), f
    assert updated.meta(updated.pos["e1"])["start"] == 3
    updated.save(tmp_path / "bm25.npz")
    _same_index(LexicalIndex.load(tmp_path / "bm25.npz", "t2"), rebuilt, ["污水", "数字乡村"])
    assert base.updated("t3", []).ids == base.ids


def test_filters_parse_to_clauses():
    assert parse_filters({"unit": "县发改局"})[0].pairs == (("units", "县发展和改革局"),)
    doc, year = parse_filters({"document": "000_x", "year": "2021"})
    assert doc.pairs == (("doc_id", "000_x"), ("source_stem", "000_x"), ("source_file", "000_x"))
    assert year.pairs == (("year", "2021"),)
    assert parse_filters({"doc_id": "a"})[0].key == "document"
    with pytest.raises(ValueError, match="unknown filter"):
        parse_filters({"colour": "red"})
    with pytest.raises(ValueError, match="unknown status"):
        parse_filters({"status": "great"})


# --------------------------------------------------------------------------- search on a small store


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    embedder = CachedEmbedder(E5Embedder(), root / "cache")
    store = open_store(root / "store", embedder=embedder)
    report = index_paths(store, [write_doc(root / "in", "mini_report.txt", MINI),
                                write_doc(root / "in", "other_report.txt", OTHER)])
    assert not report.errors
    return store, {"mini_report.txt": read_source(root / "in" / "mini_report.txt").text,
                   "other_report.txt": read_source(root / "in" / "other_report.txt").text}


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_every_hit_is_a_slice_of_its_source(small_store, mode):
    store, texts = small_store
    hits = search(store, "污水处理厂改造进展", k=5, mode=mode)
    assert hits
    for h in hits:
        assert texts[h.source_file][h.start : h.end] == h.text
        assert h.doc_id and h.item_id.startswith(h.doc_id + "#") and h.kind in ("task", "progress")
    assert hits[0].item_id == "mini_report#2"


def test_two_character_query_and_traditional_query_match(small_store):
    store, _ = small_store
    assert search(store, "滞后", k=3, mode="bm25")[0].item_id == "mini_report#2"
    assert search(store, "污水處理廠", k=3, mode="bm25")[0].item_id == "mini_report#2"
    assert search(store, "充電樁", k=3)[0].item_id == "other_report#1"


def test_search_filters(small_store):
    store, _ = small_store
    hits = search(store, "建设", k=10, filters={"region": "郯城县"})
    assert hits and {h.doc_id for h in hits} == {"other_report"}
    for mode in ("hybrid", "vector", "bm25"):
        got = search(store, "建设", k=10, mode=mode, filters={"unit": "县统计局"})
        assert got and {h.item_id for h in got} == {"mini_report#1"}, mode
    assert search(store, "建设", filters={"year": "2019"}) == []
    assert {h.kind for h in search(store, "建设", k=10, filters={"kind": "progress"})} == {"progress"}
    assert {h.doc_id for h in search(store, "建设", k=10, filters={"document": "mini_report"})} == {"mini_report"}
    assert search(store, "   ") == []
    with pytest.raises(ValueError):
        search(store, "建设", mode="fuzzy")


def test_filtered_vector_hits_match_exact_search(small_store):
    """Filtered vector hits (oversampled, or restricted to the kept ids) equal an exact
    search over the stored vectors of the chunks the filter keeps."""
    from llmstruct.search.hybrid import _vector_hits

    store, _ = small_store
    lex = lexical_index(store)
    qvec = store.embedder.embed_queries([analyze("建设进展")])[0]
    for f in ({"unit": "县统计局"}, {"region": "郯城县"}, {"kind": "progress", "year": "2022"}):
        clauses = parse_filters(f, lex.known("units"))
        mask = lex.mask(clauses)
        fast = _vector_hits(store, lex, qvec, 5, mask)
        kept = {lex.ids[i] for i in np.flatnonzero(mask)}
        rows = [(c, float(v @ qvec)) for c, _, _, v in store.chunk_rows_with_vectors() if c in kept]
        exact = sorted(rows, key=lambda r: -r[1])[:5]
        assert fast and [c for c, _ in fast] == [c for c, _ in exact], f
        restricted = store.vector_query(qvec, 5, ids=sorted(kept))
        assert [c for c, _ in restricted] == [c for c, _ in exact], f


def test_hybrid_carries_both_ranks(small_store):
    store, _ = small_store
    hits = search(store, "新建5G基站", k=3)
    top = hits[0]
    assert top.item_id == "mini_report#1"
    assert top.metadata["vector_rank"] >= 1 and top.metadata["bm25_rank"] >= 1
    assert top.metadata["leaders"] == "朱凤华" and "县统计局" in top.metadata["units"]


def test_bm25_side_index_is_saved_and_reused(small_store):
    store, _ = small_store
    index = lexical_index(store)
    assert (store.local_dir / "bm25.npz").is_file()
    store.derived.clear()
    again = lexical_index(store)
    assert again is not index and again.tag == index.tag and again.ids == index.ids


def test_writer_updates_the_bm25_index_from_its_journal(tmp_path, monkeypatch):
    """After a replace and a removal, the writer brings the side index up to date from what
    it wrote (no read of every chunk) and gets what a rebuild from the store gets."""
    embedder = CachedEmbedder(E5Embedder(), tmp_path / "cache")
    store = open_store(tmp_path / "store", embedder=embedder)
    docs = tmp_path / "in"
    index_paths(store, [write_doc(docs, "mini_report.txt", MINI), write_doc(docs, "other_report.txt", OTHER)])
    before = lexical_index(store)
    reads = []
    monkeypatch.setattr(store, "chunk_rows", lambda *a, **k: reads.append(1) or iter(()))
    changed = MINI.replace("新建5G基站80座", "新建5G基站95座，光纤入户")
    report = index_paths(store, [write_doc(docs, "mini_report.txt", changed)])
    assert [r.action for r in report.results] == ["replaced"]
    assert store.remove("other_report")
    after = lexical_index(store)
    assert not reads and after is not before and after.tag == store.chunks_version()
    monkeypatch.undo()
    rebuilt = LexicalIndex.build("rebuilt", store.chunk_rows())
    _same_index(after, rebuilt, ["新建5G基站", "光纤入户", "充电桩", "污水处理厂改造"])
    assert not search(store, "充电桩", k=3, mode="bm25") or all(h.doc_id != "other_report"
                                                               for h in search(store, "充电桩", k=3, mode="bm25"))
    other = open_store(tmp_path / "store", embedder=embedder)  # another process only loads what the writer saved
    monkeypatch.setattr(other, "chunk_rows", lambda *a, **k: reads.append(1) or iter(()))
    assert lexical_index(other).ids == after.ids and not reads


# --------------------------------------------------------------------------- the seed corpus (slow)


@pytest.fixture(scope="session")
def seed_store(tmp_path_factory):
    """All five seeds, rules-structured, in a tmp store; vectors from the default cache."""
    store = open_store(tmp_path_factory.mktemp("seeds") / "store")
    report = index_paths(store, [SEEDS])
    assert not report.errors, report.errors
    return store


@pytest.mark.slow
def test_seed_store_counts_and_idempotence(seed_store):
    counts = seed_store.counts()
    assert counts["documents"] == 14 and counts["items"] >= 460 and counts["chunks"] > counts["items"]
    gen = seed_store.generation()
    again = index_paths(seed_store, [SEEDS])
    assert {r.action for r in again.results} == {"unchanged"} and again.passages_embedded == 0
    assert seed_store.generation() == gen
    titles = {d.doc_id: d.title for d in seed_store.documents()}
    assert titles["004_9441ed748846e1ff-06"] == "2020年姜屯镇政府工作报告"


@pytest.mark.slow
def test_structured_questions_are_answered_from_records(seed_store):
    linshu = "000_5c1aadecc78db95a"
    coop = query_items(seed_store, unit="县统计局", role="cooperating", doc_id=linshu)
    assert [r.seq_no for r in coop] == [1, 2, 3, 5]  # gold q: 县统计局配合了哪些任务
    zhu = query_items(seed_store, leader="朱凤华", doc_id=linshu)
    assert len(zhu) == 22  # the 23rd is printed 朱风华 in the source
    water = query_items(seed_store, unit="县水利局", role="lead,responsible", doc_id="001_0bd5adcbd4f51cd8")
    assert [r.seq_no for r in water] == [31, 32, 33, 37, 38, 39]
    assert [r.item_id for r in query_items(seed_store, unit="县发改局")] == \
        [r.item_id for r in query_items(seed_store, unit="县发展和改革局")]
    behind = query_items(seed_store, status="behind")
    assert behind and all("behind" in [r.status] + [p.status for p in r.item.progress] for r in behind)
    texts = {f.name: read_source(f).text for f in expand_paths([SEEDS])}
    for r in coop + zhu + behind:
        for span in r.spans:
            assert texts[r.source_file][span.start : span.end] == span.text


@pytest.mark.slow
def test_seed_search_finds_gold_support_and_filters_by_place(seed_store):
    texts = {f.name: read_source(f).text for f in expand_paths([SEEDS])}
    hits = search(seed_store, "临沭县2021年上半年一般公共预算收入是多少？", k=5)
    assert any("10.1 亿元" in h.text for h in hits)
    hits = search(seed_store, "郯城县2022年社会消费品零售总额是多少", k=5)  # Traditional source
    assert any("142.5億元" in h.text for h in hits)
    hits = search(seed_store, "招商引资", k=8, filters={"region": "姜屯镇"})
    assert hits and {h.doc_id for h in hits} == {"004_9441ed748846e1ff-06"}
    for h in search(seed_store, "技改投资", k=8, filters={"year": "2021", "unit": "区工信局"}):
        assert texts[h.source_file][h.start : h.end] == h.text
        assert h.metadata["year"] == "2021" and "区工业和信息化局" in h.metadata["units"]


@pytest.mark.slow
def test_hybrid_is_not_worse_than_vector_on_gold_questions(seed_store):
    from llmstruct.eval.bench.retrieval import quality

    q = quality(seed_store, ROOT / "evals" / "gold" / "questions.yaml", seeds_dir=SEEDS)
    hybrid, vector = q["hybrid"]["overall"], q["vector"]["overall"]
    assert not q["hybrid"]["errors"]
    assert hybrid["hit@5"] >= vector["hit@5"] - 0.02
    assert hybrid["hit@5"] >= 0.5 and hybrid["mrr"] >= 0.35


@pytest.mark.slow
def test_retrieval_bench_runs_at_small_scale(tmp_path, seed_store):
    """The benchmark end to end at 3,000 chunks (the real run uses 100,000)."""
    from llmstruct.eval.bench.retrieval import retrieval_benchmark

    report = retrieval_benchmark(target_chunks=3000, work_dir=tmp_path, seeds_dir=SEEDS,
                                 questions=ROOT / "evals" / "gold" / "questions.yaml", latency_questions=6,
                                 log=lambda m: None)
    assert report["synthetic_store"]["chunks"] >= 3000
    assert report["latency_synthetic"]["hybrid"]["n"] == 6
    from llmstruct.eval.gold import load_questions
    QUESTIONS = ROOT / "evals" / "gold" / "questions.yaml"

    answerable = sum(q.answerable for q in load_questions(QUESTIONS))
    assert report["quality"]["hybrid"]["overall"]["questions"] == answerable == 65
    assert report["synthetic_store"]["index_rate_chunks_per_s"] > 0
    small = report["synthetic_store"]["small_write"]
    assert small["chunks"] > 0 and small["bm25_update_after_add_seconds"] >= 0
