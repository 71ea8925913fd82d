"""Prompt templates live in the package (``llmstruct/prompts/``) as versioned text files,
loaded with importlib.resources so an installed wheel finds them; this module renders them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Template:
    version: str
    system: str
    user: str

    def render(self, **fields: object) -> tuple[str, str]:
        """(system, user) with ``{name}`` fields filled; unknown fields are an error."""
        return self.system.format(**fields), self.user.format(**fields)


@lru_cache(maxsize=16)
def load_template(name: str) -> Template:
    """Load ``prompts/<name>.txt``: a ``# version:`` line, then ``[system]`` and ``[user]`` parts."""
    path = resources.files("llmstruct") / "prompts" / f"{name}.txt"
    text = path.read_text(encoding="utf-8")
    m = re.search(r"^# version:\s*(\S+)", text, re.M)
    if not m:
        raise ValueError(f"{path}: missing '# version:' line")
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    parts = re.split(r"^\[(system|user)\]\s*$", body, flags=re.M)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise ValueError(f"{path}: needs exactly one [system] and one [user] part")
    return Template(version=m.group(1), system=sections["system"], user=sections["user"])
