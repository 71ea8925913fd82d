"""Canonical names for government units, so that 县发改局 and 县发展和改革局 are one unit."""

from __future__ import annotations

import re

from llmstruct.vocab import VOCAB

# Short or variant forms -> the full official form. Applied to the part after the level
# prefix (县/区/市/镇 ...), so one entry serves every county.
_ALIASES: dict[str, str] = {
    "发改局": "发展和改革局",
    "发展改革局": "发展和改革局",
    "发改委": "发展和改革委员会",
    "发展改革委": "发展和改革委员会",
    "工信局": "工业和信息化局",
    "科技局": "科学技术局",
    "人社局": "人力资源和社会保障局",
    "人力资源社会保障局": "人力资源和社会保障局",
    "住建局": "住房和城乡建设局",
    "住房城乡建设局": "住房和城乡建设局",
    "市场监管局": "市场监督管理局",
    "交通局": "交通运输局",
    "商务和投资促进局": "商务和投资促进局",
    "商促局": "商务和投资促进局",
    "文旅局": "文化和旅游局",
    "应急局": "应急管理局",
    "教体局": "教育和体育局",
    "卫健局": "卫生健康局",
    "退役军人局": "退役军人事务局",
    "综合执法局": "综合行政执法局",
    "行政审批局": "行政审批服务局",
    "自然资源规划局": "自然资源和规划局",
    "统计局": "统计局",
}

_LEVEL = re.compile("^(" + "|".join(VOCAB.words("unit_level_prefixes")) + ")")


def canonical_unit(name: str) -> str:
    """Full official form of a unit name (unknown names come back as written, trimmed)."""
    name = re.sub(r"\s+", "", name).strip("，、；。")
    m = _LEVEL.match(name)
    prefix, rest = (m.group(1), name[m.end() :]) if m else ("", name)
    return prefix + _ALIASES.get(rest, rest)


_ORG_SUFFIX = (
    "局", "委", "办", "中心", "集团", "公司", "镇", "街道", "街", "（街）", "部", "会", "院", "所",
    "站", "队", "银行", "社", "室", "处", "科", "联", "团", "园", "区", "馆", "台", "组", "厅",
    "专班", "分局", "政府", "办事处", "管委会", "县委", "大队", "支队", "分中心",
)


def looks_like_unit(name: str) -> bool:
    """A plausible organisation name: no sentence punctuation and an organisational ending."""
    name = name.strip()
    if not 2 <= len(name) <= 40 or re.search(r"[，。；：、“”！？,;:]", name):
        return False
    return name.endswith(_ORG_SUFFIX)
