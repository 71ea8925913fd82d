"""Uploads on a real store: they never take over another source's report, are structured in
a bounded child, and a failed one leaves the good source and the index as they were."""

from __future__ import annotations

import pytest
from helpers import MINI, OTHER, write_doc

from llmstruct.app.uploads import add_upload, safe_name
from llmstruct.app.webapp import upload_message
from llmstruct.errors import IngestError
from llmstruct.indexing import index_paths
from llmstruct.store.embedding import CachedEmbedder, E5Embedder
from llmstruct.store.opening import open_store


@pytest.fixture()
def store(tmp_path):
    return open_store(tmp_path / "store", embedder=CachedEmbedder(E5Embedder(), tmp_path / "emb"))


def test_an_upload_named_like_an_indexed_report_gets_a_name_of_its_own(tmp_path, store):
    seed = write_doc(tmp_path / "seeds", "mini_report.txt", MINI)
    assert not index_paths(store, [seed]).errors
    forged = write_doc(tmp_path / "client", "mini_report.md", OTHER)
    out = add_upload(forged, tmp_path / "uploads", store)
    assert out.action == "added" and out.renamed and out.stored_as.startswith("mini_report-")
    assert out.stored_as.endswith(".md") and (tmp_path / "uploads" / out.stored_as).is_file()
    docs = {d.doc_id: d for d in store.documents()}
    assert docs["mini_report"].source_file == "mini_report.txt" and docs["mini_report"].items == 3
    assert docs[out.records[0].doc_id].source_file == out.stored_as
    assert "另存为" in upload_message(out) and "原有报告未受影响" in upload_message(out)

    again = add_upload(forged, tmp_path / "uploads", store)  # the same bytes once more
    assert again.action == "unchanged" and again.stored_as == out.stored_as
    assert "未作改动" in upload_message(again)
    assert len(store.documents()) == 2


def test_a_new_version_of_an_upload_replaces_it_only_when_asked(tmp_path, store):
    uploads = tmp_path / "uploads"
    first = add_upload(write_doc(tmp_path / "v1", "report.txt", MINI), uploads, store)
    assert first.action == "added" and first.stored_as == "report.txt" and not first.renamed

    v2 = write_doc(tmp_path / "v2", "report.txt", MINI.replace("80座", "95座"))
    kept = add_upload(v2, uploads, store)
    assert kept.renamed and kept.stored_as != "report.txt"
    assert (uploads / "report.txt").read_text(encoding="utf-8") == MINI

    v3 = write_doc(tmp_path / "v3", "report.txt", MINI.replace("80座", "99座"))
    swapped = add_upload(v3, uploads, store, replace=True)
    assert swapped.action == "replaced" and swapped.stored_as == "report.txt" and swapped.replaced == ["report"]
    assert "已替换先前上传的 report.txt" in upload_message(swapped)
    assert "99座" in (uploads / "report.txt").read_text(encoding="utf-8")
    texts = [t for _, m, t in store.chunk_rows() if m.get("doc_id") == "report"]
    assert any("99座" in t for t in texts) and not any("80座" in t for t in texts)


def test_a_failed_upload_leaves_the_good_source_and_the_index(tmp_path, store):
    uploads = tmp_path / "uploads"
    add_upload(write_doc(tmp_path / "v1", "report.docx.txt", MINI), uploads, store)
    good = (uploads / "report.docx.txt").read_bytes()
    before = store.counts()
    broken = write_doc(tmp_path / "v2", "report.docx.txt", "")
    with pytest.raises(IngestError) as exc:
        add_upload(broken, uploads, store, replace=True)
    assert "empty file" in exc.value.reason
    assert (uploads / "report.docx.txt").read_bytes() == good
    assert store.counts() == before
    assert sorted(p.name for p in uploads.iterdir()) == ["report.docx.txt"]  # no staging left behind


def test_the_child_is_stopped_at_its_memory_and_time_limits(tmp_path):
    big = write_doc(tmp_path, "big.txt", "\n".join(f"{k}. 完成第{k}项工程建设任务。" for k in range(1, 4000)) * 20)
    with pytest.raises(IngestError) as exc:
        add_upload(big, tmp_path / "uploads", None, memory_mb=120)
    assert "120 MB" in exc.value.reason and "UPLOAD_MEMORY_MB" in exc.value.reason
    with pytest.raises(IngestError) as exc:
        add_upload(write_doc(tmp_path, "mini.txt", MINI), tmp_path / "uploads", None, seconds=0.01)
    assert "0.01 s" in exc.value.reason and "UPLOAD_SECONDS" in exc.value.reason
    assert not list((tmp_path / "uploads").iterdir())
    ok = add_upload(write_doc(tmp_path, "mini.txt", MINI), tmp_path / "uploads", None)
    assert ok.action == "added" and len(ok.records[0].items) == 3


def test_upload_names_are_plain_file_names():
    assert safe_name("../../etc/passwd.txt") == "passwd.txt"
    assert safe_name("..txt") == "upload.txt"
    assert safe_name(".hidden.MD") == "hidden.md"
    assert safe_name("a\x00b.txt") == "a_b.txt"
