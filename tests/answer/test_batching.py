"""Answers under continuous batching are the answers alone (real model, greedy decoding)."""

from __future__ import annotations

import threading

import pytest

QUESTIONS = (
    "郯城县2022年社会消费品零售总额是多少？",
    "峄城区的智能化电动工具项目为什么没有推进？",
    "历城区2021年城镇登记失业率要控制在多少？",
    "沂源县2023年计划新增多少个汽车充电桩？",
    "临沭县2021年的地区生产总值增长目标是多少？",
)


@pytest.mark.slow
@pytest.mark.model
def test_concurrent_answers_equal_answers_alone(asker):
    alone = [asker.ask(q) for q in QUESTIONS]
    steps = asker.backend.scheduler.steps
    together: list = [None] * len(QUESTIONS)

    def ask(i: int) -> None:
        together[i] = asker.ask(QUESTIONS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert [a.model_dump() for a in together] == [a.model_dump() for a in alone]
    assert asker.backend.scheduler.max_rows_seen >= 2, "the answers never shared a step"
    assert asker.backend.scheduler.steps > steps
