"""The store through a real Chroma server (`chroma run` on a free loopback port)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers import MINI, OTHER, chroma_server_running, write_doc

from llmstruct.indexing import index_paths
from llmstruct.search.hybrid import search
from llmstruct.search.records import query_items
from llmstruct.store.embedding import CachedEmbedder, E5Embedder
from llmstruct.store.opening import open_store
from llmstruct.store.store import StoreError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_error_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError) as info:
        open_store(url=url, local_dir=tmp_path)
    assert url in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(StoreError, match="not a Chroma server URL"):
        open_store(url="ftp://example")


def test_cli_unreachable_server_exits_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from llmstruct.app.cli import app

    url = f"http://127.0.0.1:{free_port()}"
    res = CliRunner().invoke(app, ["search", "滞后", "--chroma-url", url])
    assert res.exit_code == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and url in lines[0]
    both = CliRunner().invoke(app, ["search", "x", "--chroma-url", url, "--store", str(tmp_path)])
    assert both.exit_code == 64


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    with chroma_server_running(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.mark.slow
@pytest.mark.server
def test_index_and_query_through_a_chroma_server(tmp_path, chroma_server):
    cache = tmp_path / "cache"
    embedder = CachedEmbedder(E5Embedder(), cache)
    docs = tmp_path / "in"
    mini = write_doc(docs, "mini_report.txt", MINI)
    write_doc(docs, "other_report.txt", OTHER)
    store = open_store(url=chroma_server, embedder=embedder, local_dir=tmp_path / "local-a")
    report = index_paths(store, [docs])
    assert not report.errors and sorted(r.action for r in report.results) == ["added", "added"]
    assert store.counts() == {"documents": 2, "items": 6, "chunks": store.counts()["chunks"]}
    original = mini.read_text(encoding="utf-8")
    for mode in ("hybrid", "vector", "bm25"):
        hits = search(store, "污水处理厂提标改造进展滞后", k=3, mode=mode)
        assert hits[0].item_id == "mini_report#2", mode
        assert original[hits[0].start : hits[0].end] == hits[0].text
    assert [r.item_id for r in query_items(store, unit="县统计局", role="cooperating")] == ["mini_report#1"]
    assert {h.doc_id for h in search(store, "建设", k=8, filters={"region": "郯城县"})} == {"other_report"}

    # a second user (another client, its own local side index) sees the same store
    other = open_store(url=chroma_server, local_dir=tmp_path / "local-b")
    assert other.embedder.name == embedder.name
    assert [d.doc_id for d in other.documents()] == ["mini_report", "other_report"]
    assert search(other, "充电桩", k=1)[0].item_id == "other_report#1"
    again = index_paths(other, [docs])
    assert {r.action for r in again.results} == {"unchanged"}

    # and so does the CLI in another process
    env = dict(os.environ, LLMSTRUCT_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-m", "llmstruct.app.cli", "search", "基站", "--chroma-url", chroma_server,
                           "--json", "-k", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["item_id"] == "mini_report#1"

    # an update by one client is seen by the other's BM25 side index
    mini.write_text(MINI.replace("新建5G基站80座", "新建5G基站95座，建成千兆光网"), encoding="utf-8")
    assert [r.action for r in index_paths(store, [mini]).results] == ["replaced"]
    hits = search(other, "千兆光网", k=2, mode="bm25")
    assert hits and hits[0].item_id == "mini_report#1" and "千兆光网" in hits[0].text
