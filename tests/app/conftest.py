"""One real app (app.py on a free loopback port, temporary data dir, real model) for the
whole test run: the API tests and the browser test share it instead of loading the model
twice."""

from __future__ import annotations

import subprocess

import pytest

from llmstruct.eval.bench.load import start_app, wait_ready


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    log = work / "app.log"
    proc, url = start_app(work / "data", log_path=log)
    try:
        status = wait_ready(url)
        if status.get("error"):
            raise RuntimeError(f"app failed to prepare: {status} (log: {log})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
