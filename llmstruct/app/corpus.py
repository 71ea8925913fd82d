"""The corpus the app and the CLI answer from: the configured store, indexed from ``seeds/`` on
a first start, and the catalog built from it; indexing with progress lines for people."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from llmstruct.answer.catalog import Catalog, catalog_from_store
from llmstruct.app.wiring import store_from_settings
from llmstruct.config import Settings
from llmstruct.indexing import index_paths
from llmstruct.store import Store


def store_counts(store: Store) -> dict[str, int]:
    """The store's counts ({} when it cannot say, e.g. a server that went away)."""
    try:
        return store.counts()
    except Exception:
        return {}


def index_logged(store: Store, paths: Sequence[Path], log: Callable[[str], None] = print,
                 sources_dir: Path | None = None) -> None:
    """Structure files (rules) and index them, saying what happened to each in Chinese."""
    done = {"n": 0}

    def progress(i: int, total: int) -> None:
        if total and (i == total or i - done["n"] >= max(1, total // 5)):
            done["n"] = i
            log(f"向量化 {i}/{total} 段")

    report = index_paths(store, [Path(p) for p in paths], sources_dir=sources_dir, progress=progress)
    for r in report.results:
        log(f"{r.source_file} → {r.doc_id}：{r.action}（{r.items} 条任务，{r.chunks} 段）")
    for e in report.errors:
        log(f"索引失败：{e}")


def source_folders(settings: Settings) -> list[Path]:
    """Where this process finds source files on its own disk (the store holds the rest)."""
    return [settings.seeds_dir, settings.data_dir / "uploads"]


def open_corpus(settings: Settings, log: Callable[[str], None] = print,
                index_if_empty: bool = True) -> tuple[Catalog, Store]:
    """The catalog and the store, with ``seeds/`` indexed into an empty store when
    ``index_if_empty``."""
    seeds_dir = settings.seeds_dir
    store = store_from_settings(settings)
    if not store_counts(store).get("documents") and index_if_empty:
        log(f"首次启动：正在为 {seeds_dir} 建立索引（结构化并向量化，约需数分钟）…")
        index_logged(store, [seeds_dir], log, sources_dir=seeds_dir)
    catalog = catalog_from_store(store, source_folders(settings))
    log(f"文件库：{len(catalog.records)} 份报告")
    return catalog, store
