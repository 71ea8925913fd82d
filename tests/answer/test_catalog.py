"""The catalog from a real store: sources that changed or went bad are left out, the rest serve."""

from __future__ import annotations

from helpers import MINI, OTHER, write_doc

from llmstruct.answer.catalog import catalog_from_store
from llmstruct.answer.passages import retrieve
from llmstruct.answer.planning import plan
from llmstruct.indexing import index_paths
from llmstruct.store.embedding import CachedEmbedder, E5Embedder
from llmstruct.store.opening import open_store


def test_a_changed_or_broken_source_is_unavailable_and_never_cited(tmp_path):
    src = tmp_path / "sources"
    mini = write_doc(src, "mini_report.txt", MINI)
    other = write_doc(src, "other_report.txt", OTHER)
    store = open_store(tmp_path / "store", embedder=CachedEmbedder(E5Embedder(), tmp_path / "emb"))
    assert not index_paths(store, [mini, other]).errors

    whole = catalog_from_store(store, [src])
    assert set(whole.records) == {"mini_report", "other_report"} and not whole.unavailable

    other.write_text(OTHER.replace("充电桩300个", "充电桩900个"), encoding="utf-8")  # edited after indexing
    cat = catalog_from_store(store, [src])
    assert set(cat.records) == {"mini_report"}
    assert "sha256 differs" in cat.unavailable["other_report"]
    hits = retrieve(plan("郯城县汽车充电桩建设进展如何？", catalog=cat), cat, store)
    assert all(h.doc_id != "other_report" for h in hits)

    mini.write_bytes(b"")  # unreadable now: the start goes on without it
    cat = catalog_from_store(store, [src])
    assert not cat.records and "empty file" in cat.unavailable["mini_report"]

    elsewhere = catalog_from_store(store, [tmp_path / "no-such-folder"])  # indexed from another folder
    assert set(elsewhere.records) == {"mini_report", "other_report"} and not elsewhere.unavailable
