"""Grounded answers: plan, retrieve, answer under a grammar, verify every statement in code."""

from llmstruct.answer.asker import Asker
from llmstruct.answer.catalog import Catalog, catalog_from_store, load_catalog
from llmstruct.answer.compose import StreamEvent
from llmstruct.answer.passages import retrieve
from llmstruct.answer.planning import Plan, plan, rule_plan
from llmstruct.answer.refusal import REFUSAL

__all__ = ["REFUSAL", "Asker", "Catalog", "Plan", "StreamEvent", "catalog_from_store", "load_catalog", "plan",
           "retrieve", "rule_plan"]
