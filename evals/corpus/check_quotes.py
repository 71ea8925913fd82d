"""Check evals/corpus/gold.yaml against the corpus files as the project reads them.

Run from the repository root:  .venv/bin/python evals/corpus/check_quotes.py [gold.yaml]

- every entry validates against llmstruct.eval.gold.GoldItem (strict: unknown keys fail);
- each file is read with llmstruct.ingest.read_source, the reader `llmstruct structure`
  uses (pipeline.structure_file), so html/pdf/docx would be checked on their extracted text;
- `doc` must equal the id `structure` gives the file (pipeline.doc_id_for of the stem);
- every verbatim field (task_quote, section_path entries, targets/progress/indicator
  quotes, status_cue, deadlines) must be an exact substring of that text;
- leader and unit names must occur once whitespace is removed (as in llmstruct.eval.gold);
- duplicate (doc, seq_no, task_quote) keys are reported.
Exit 0 when all pass, 1 otherwise.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import yaml
from pydantic import ValidationError

from llmstruct.eval.gold import GoldItem, _item_names, _item_quotes, squash
from llmstruct.ingest import read_source
from llmstruct.structure.pipeline import doc_id_for

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    gold_path = Path(argv[0]) if argv else HERE / "gold.yaml"
    raw = yaml.safe_load(gold_path.read_text(encoding="utf-8")) or []
    texts: dict[str, str] = {}
    problems: list[str] = []
    seen: Counter[tuple] = Counter()
    per_doc: Counter[str] = Counter()
    checked = 0
    for n, entry in enumerate(raw):
        try:
            item = GoldItem.model_validate(entry)
        except ValidationError as err:
            problems.append(f"[{n}] schema: {err.errors()[0]['loc']} {err.errors()[0]['msg']}")
            continue
        where = f"[{n}] {item.doc} #{item.seq_no}"
        key = (item.doc, item.seq_no, item.task_quote)
        seen[key] += 1
        if seen[key] == 2:
            problems.append(f"{where}: duplicate item")
        path = HERE / item.file
        if item.file not in texts:
            if not path.is_file():
                problems.append(f"{where}: file not found: {item.file}")
                continue
            texts[item.file] = read_source(path).text
        text = texts[item.file]
        if item.doc != doc_id_for(path.stem):
            problems.append(f"{where}: doc id {item.doc!r} is not the structure id {doc_id_for(path.stem)!r}")
        for label, quote in _item_quotes(item):
            checked += 1
            if quote not in text:
                problems.append(f"{where}: {label} not verbatim: {quote!r}")
        flat = squash(text)
        for label, name in _item_names(item):
            checked += 1
            if squash(name) not in flat:
                problems.append(f"{where}: {label} not in text: {name!r}")
        per_doc[item.doc] += 1
    print(f"gold items: {sum(per_doc.values())} in {len(per_doc)} documents; strings checked: {checked}")
    for doc, k in sorted(per_doc.items()):
        print(f"  {doc}: {k}")
    print(f"problems: {len(problems)}")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
