"""指标库: every quantified statement of a report as a row, extracted at ingest without an LLM.

The figures are parsed by rag.grounding.quantities (one parser for answers and indicators); what a
figure measures is read by rag.grounding.measured_words, as the answer checker reads it, and the
year it is about by claims.Evidence.about_year. A figure is an indicator unless it is a date, an
ordinal (第3批, 十五届), a span of years (近三年), part of a name (「三件要事」「7+1」《…》), a bare
number no 为/达 states (6大行动, 90后) or a count of the items just listed (「事前、事中、事后三个环节」).

Rows of one metric are grouped under one `metric_key` (`MetricKeys`): the alias file
(config/indicator_aliases.yaml) first, else the phrase's normal form (no leading verb, place,
year or 全区/全年/累计), else, given an embedder, the nearest key seen for the same kind of quantity.
How: docs/indicators.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from langchain_core.documents import Document

from rag import schema
from rag.claims import PLAN_HEADING, TARGET_WORDS, Evidence
from rag.districts import district_mentions
from rag.errors import BadFileError
from rag.grounding import Quantity, measured_words, named_in_turn, quantities
from rag.loading import LoadedReport
from rag.metadata import ReportMeta
from rag.text import fold, sentence_spans

KINDS = ("level", "change", "from_to", "target")
SIMILAR = 0.92  # cosine from which an embedder's two phrases of one kind of quantity are one metric

# Headings of the part of a report that plans the next year.
_NAME_QUOTES = {"“": "”", "「": "」", "《": "》", '"': '"', "‘": "’"}
# Words that link a metric to its figure (「…率为」「…指数达」) or qualify it, but name nothing.
_LINK_AFTER = re.compile(
    r"(?:分别|均|都|已|(?<!公)共|共计|合计|总计|累计|(?<![民合签公条契节预])约|近|超过|超|逾|达到|达|(?<![行作成认因])为|是|了|高于|低于|不少于|不低于|"
    r"首期|首批|各类|各级|保持在|保持|再|和|及|与|\s)+$")
_LINKED = re.compile(r"(?:为|是|达|到|至|[:：])\s*$")
_SCOPE_BEFORE = re.compile(
    r"^(?:(?:(?:19|20)\d{2}年度?|截至目前|目前|已|全年|全区|全镇|全县|我区|我镇|本区|本镇|年内|当年|累计|共计|总计|共|其中|此外|同时|"
    r"(?:比|较)(?:上一?年?|去年?)|同期|各级各类|各类|首批|首期|力争|确保|争取|继续保持|保持|即)\s*)+")
_LEADING_VERBS = re.compile(r"^(?:办理|开展|组织|举办|召开|实施|推动|推进|实现)")
_COUNTED_AFTER = ("count", "area")  # 「设立37个联系点」「建成500㎡平台」; a rate or sum is named before it
_QUALIFIER = re.compile(r"(?:以上|以下|以内|左右|/人)*")  # 「95%以上」: no words of what is measured
_AFTER_STOP = re.compile(r"进行|开展|提供|参与|参加|共签|已|全部|作为|的|^(?:并|且|支持|用于)")


@dataclass(frozen=True)
class Indicator:
    """One figure of one report: what is measured, its value and unit, and the sentence that states it."""

    file: str               # report file, as in the manifest
    district: str           # 荣昌区; "" when the report's district is unknown
    district_code: str      # six-digit code, "" when unknown
    city: str
    province: str
    report_year: int        # the year the report covers
    about_year: int         # the year the figure is about (a year the sentence or heading states, else report_year)
    metric: str             # the metric phrase as written: 「区级部门和镇街负责人出庭应诉率」
    metric_key: str         # the grouped metric (alias file, else the phrase's normal form): 「区级部门和镇街负责人出庭应诉率」
    value: float            # normalised: 22.22 for 22.22%, 11600 for 1.16万
    unit: str               # 件, 人, 家, 次, %, 万元, 亿元, ㎡, 天… ("" when none)
    quantity: str           # the grounding kind: count | rate | amount | area | score | duration | number
    kind: str               # level | change | from_to | target
    from_value: float | None  # for from_to: the value it rose or fell from
    section: str            # heading path as written, " > " between levels
    start: int              # offsets of the sentence in the report text
    end: int
    sentence: str           # report_text[start:end]
    page: int = 0           # the page the sentence starts on (a PDF); 0 for formats without pages

    def as_dict(self) -> dict:
        return asdict(self)


def extract_indicators(report: LoadedReport, meta: ReportMeta, keys: MetricKeys | None = None) -> list[Indicator]:
    """Every indicator a report states, in text order, its metric grouped by `keys` (rules alone when None)."""
    keys = keys or MetricKeys()
    report_year = meta.year or 0
    rows: list[tuple[Evidence, Quantity, str, float | None, str]] = []
    for section in report.sections:
        plan = bool(PLAN_HEADING.search(fold(section.path)))
        # Figures of a plan with no year written are about the year after the report's.
        year = report_year + 1 if plan and report_year else report_year
        chunk = Document(page_content="", metadata={schema.FILE: report.file, schema.YEAR: year, schema.SECTION: section.path})
        for start, end in sentence_spans(report.text, section.start, section.end, clauses=False):
            if any(s < end and start < e for s, e in report.instructions):
                continue  # an order to a language model states nothing
            text = report.text[start:end]
            e = Evidence(chunk, start, end, text, -1, quantities(text))
            rows += [(e, *found) for found in _sentence_indicators(e, plan)]
    metric_keys = keys.keys([(metric, q.kind) for _, q, metric, _, _ in rows])
    return [
        Indicator(
            file=report.file, district=meta.district, district_code=meta.district_code, city=meta.city,
            province=meta.province, report_year=report_year, about_year=e.about_year(q), metric=metric,
            metric_key=key, value=_number(q.value), unit=q.unit, quantity=q.kind, kind=kind,
            from_value=from_value, section=e.meta[schema.SECTION], start=e.start, end=e.end, sentence=e.text,
            page=report.page_at(e.start),
        )
        for (e, q, metric, from_value, kind), key in zip(rows, metric_keys)
    ]


def _sentence_indicators(e: Evidence, plan: bool) -> list[tuple[Quantity, str, float | None, str]]:
    """(figure, metric phrase, from value, kind) of each indicator of a sentence."""
    figures = [q for q in e.quantities if _is_indicator(e.text, e.quantities, q)]
    found, metrics = [], []
    for n, q in enumerate(figures):
        nxt = figures[n + 1] if n + 1 < len(figures) else None
        if nxt and _rises_to(e.text, q, nxt):
            continue  # the old value of 「由24%提升到40.2%」: told with the new one
        prev = figures[n - 1] if n and _rises_to(e.text, figures[n - 1], q) else None
        from_value = _number(prev.value) if prev else None
        kind = _kind(e.text, q, plan, from_value is not None or bool(_FROM_WORDS.search(fold(e.text[: q.start]))))
        metric = _metric(e, q) or (metrics[-1] if metrics and kind == "change" else "")
        found.append((q, metric, from_value, kind))
        metrics.append(metric)
    return found


_FROM_WORDS = re.compile(r"(?:由|从)[^，,。；;、]{0,6}?(?:缩短|压缩|减少|降低|下降|提升|提高|增加|增长|上升|扩大)(?:到|至)\s*$")
_REACHED = re.compile(r"(?:至|到|为)\s*$")
# 「减少涉企检查频次28%」: a change whose verb opens the clause.
_CHANGE_LEAD = re.compile(r"(?:^|[，,；;、])(?:减少|压减|降低|下降|提高|提升|增加|增长|缩短|压缩)[^，,。；;、\d]{1,12}$")


def _rises_to(text: str, old: Quantity, new: Quantity) -> bool:
    """True for 「由24%提升到40.2%」: old written after 由/从, new after a change to."""
    between = fold(text[old.end:new.start])
    return (old.unit == new.unit and bool(re.search(r"(?:由|从)\s*$", fold(text[: old.start])))
            and bool(re.fullmatch(r"\s*(?:以上|左右)?\s*(?:提升|提高|上升|增长|增加|下降|降低|减少|缩短|压缩|扩大|升|降|减)?(?:到|至)\s*",
                                  between)))


def _kind(text: str, q: Quantity, plan: bool, from_to: bool) -> str:
    before = fold(text[: q.start])
    clause = re.split(r"[，,；;]", before)[-1]
    if plan or TARGET_WORDS.search(clause):
        return "target"
    if from_to:
        return "from_to"
    if (q.change or _CHANGE_LEAD.search(before)) and not _REACHED.search(before):
        return "change"
    return "level"


def _is_indicator(text: str, found: list[Quantity], q: Quantity) -> bool:
    """False for a date, an ordinal, a span of years, a figure inside a name, a bare number, a list's count."""
    if q.kind == "date" or q.unit in ("年", "届"):
        return False
    before = fold(text[: q.start])
    if before.endswith("第") or _inside_name(before):
        return False
    if not q.unit:  # a bare number is a figure only when stated as one: 「指数为32.03」「败诉率为0」
        return bool(_LINKED.search(before)) and not re.fullmatch(r"(19|20)\d{2}", q.value)
    return not _counts_list(before, q)


def _inside_name(before: str) -> bool:
    """True when the text before a figure leaves a quote or a book title open."""
    depth = {}
    for char in before:
        for opening, closing in _NAME_QUOTES.items():
            if opening == closing and char == opening:
                depth[opening] = not depth.get(opening, False)
            elif char == opening:
                depth[opening] = depth.get(opening, 0) + 1
            elif char == closing:
                depth[opening] = max(depth.get(opening, 0) - 1, 0)
    return any(depth.values())


def _counts_list(before: str, q: Quantity) -> bool:
    """True for 「事前、事中、事后三个环节」: the figure counts the items listed right before it."""
    clause = re.split(r"[，,。；;：:]", before)[-1]
    items = clause.rstrip("”」").split("、")
    return len(items) >= 3 and str(len(items)) == q.value and "等" not in items[-1]


def _metric(e: Evidence, q: Quantity) -> str:
    """The metric phrase of a figure as written: for a count or an area the words after it up to
    the clause boundary when there are any (「建成500㎡实体平台」 → 实体平台, 「设立37个联系点」:
    a count that does not end its clause counts the noun after it), else, and for a rate or a sum,
    the words before it back to the boundary (「区级部门和镇街负责人出庭应诉率99.3%」); the names of
    「A、B分别为x、y」 in turn."""
    listed = _listed_name(e, q)
    if listed:
        return listed
    before, after = measured_words(e.text, e.quantities, q)
    words = _tidy(before.split()[-1] if before.split() else "")
    following = after.split()[0] if after.split() else ""
    following = following[_QUALIFIER.match(fold(following)).end():]
    cut = _AFTER_STOP.search(fold(following))
    following = _tidy(following[: cut.start()] if cut else following)
    return (following or words) if q.kind in _COUNTED_AFTER else (words or following)


def _tidy(words: str) -> str:
    """The words without the scope before them (全年, 2024年…), the links after them (为, 达到…)
    or a leading verb that names nothing (开展, 办理…), as written."""
    folded = fold(words)
    scope = _SCOPE_BEFORE.match(folded)
    start = scope.end() if scope else 0
    link = _LINK_AFTER.search(folded, start)
    end = link.start() if link else len(words)
    verb = _LEADING_VERBS.match(folded, start, end)
    if verb and end - verb.end() >= 2:
        start = verb.end()
    return _unquote(words[start:end].strip())


def _unquote(words: str) -> str:
    """words without a quote mark at either end that has lost its other half."""
    for opening, closing in _NAME_QUOTES.items():
        if words.startswith(opening) and closing not in words[1:]:
            words = words[1:]
        if words.endswith(closing) and opening not in words[:-1]:
            words = words[:-1]
    return words


def _listed_name(e: Evidence, q: Quantity) -> str:
    """For a figure of 「A、B分别降至x、y」 the name it stands for; for 「A、B均达x」 both names; else ""."""
    in_turn = named_in_turn(e.text, e.quantities, q)
    if in_turn:
        return _tidy(e.text[in_turn[0]:in_turn[1]])
    before = e.text[: q.start]
    clause_start = max((m.end() for m in re.finditer(r"[，,。；;：:]", before)), default=0)
    clause = before[clause_start:]
    match = re.search(r"[均都](?=[为达是到在]{0,2}\s*$)", fold(clause))
    if not match:
        return ""
    return "、".join(n for n in (_tidy(n) for n in clause[: match.start()].split("、")) if n)


def _number(value: str) -> float:
    return float(value.rstrip("%"))


class MetricKeys:
    """Groups the wording variants of one metric under one key.

    The alias file decides first (key: [variants…], compared in normal form); else a phrase's
    key is its normal form (fold, no leading verb 办理/受理/开展/完成/化解, place, year or
    全区/全年/累计); else, given an embedder, the nearest key already given to a phrase of the
    same kind of quantity (a % never joins a 件, nor 审结率 a 纠错率) at cosine `similar` or more.
    One instance keys a whole ingest, so a phrase seen in one report keys the next report's;
    `known` are the (key, kind of quantity) pairs of reports keyed before.
    """

    def __init__(self, aliases: dict[str, list[str]] | None = None, embedder=None, similar: float = SIMILAR,
                 known: Iterable[tuple[str, str]] = ()):
        self._aliases = {normal_metric(v): key for key, variants in (aliases or {}).items()
                         for v in [key, *variants]}
        self._embedder = embedder
        self._similar = similar
        self._given: dict[tuple[str, str], str] = {(key, quantity): key for key, quantity in known}
        self._vectors: dict[str, list[float]] = {}

    @classmethod
    def from_file(cls, path: Path, embedder=None, **kwargs) -> MetricKeys:
        """Keys with the aliases of a YAML file (metric_key: [variants…]); none when the file is absent."""
        return cls(load_aliases(path), embedder, **kwargs)

    def keys(self, phrases: list[tuple[str, str]]) -> list[str]:
        """The key of each (metric phrase, kind of quantity), in order."""
        normal = [(normal_metric(p), quantity) for p, quantity in phrases]
        if self._embedder is not None:
            wanted = sorted({n for n, _ in normal} | {key for key in self._given.values()} - set(self._vectors))
            if wanted:
                self._vectors.update(zip(wanted, self._embedder.embed_documents(wanted)))
        return [self._key(n, quantity) for n, quantity in normal]

    def _key(self, normal: str, quantity: str) -> str:
        if normal in self._aliases:
            return self._aliases[normal]
        if (normal, quantity) not in self._given:
            self._given[(normal, quantity)] = self._nearest(normal, quantity) or normal
        return self._given[(normal, quantity)]

    def _nearest(self, normal: str, quantity: str) -> str:
        """The key given to the phrase most like this one, of the same quantity and rate; "" when none is alike."""
        if self._embedder is None:
            return ""
        keys = {key for (_, q), key in self._given.items() if q == quantity and _head(key) == _head(normal)}
        scored = [(_cosine(self._vectors[normal], self._vectors[key]), key) for key in keys]
        best, key = max(scored, default=(0.0, ""))
        return key if best >= self._similar else ""


def _head(phrase: str) -> str:
    """The rate a phrase names (审结率, 纠错率), or "" for anything else."""
    return phrase[-2:] if phrase.endswith("率") else ""


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / norm if norm else 0.0


_KEY_LEAD = re.compile(r"^(?:(?:19|20)\d{2}年度?|全区|全年|全镇|全县|累计|我区|我镇|本区|本镇|区(?!政府|人民政府|级|委|属|直|领导)"
                       r"|办理|受理|开展|完成|化解)+")


def normal_metric(phrase: str) -> str:
    """The normal form of a metric phrase: folded, without quotes, places, years, 全区/全年/累计 or a
    leading 办理/受理/开展/完成/化解, and without a trailing 数/数量/总数 on a count."""
    text = fold(phrase)
    for mention in reversed(district_mentions(text)):
        text = text[: mention.start] + text[mention.end - 1] + text[mention.end:]  # 荣昌区政府 → 区政府
    text = re.sub(r"[\s“”「」\"'‘’《》()（）]", "", text)
    text = _KEY_LEAD.sub("", text)
    text = re.sub(r"(?:总数|数量|数)$", "", text)
    return text or fold(phrase)


def load_aliases(path: Path) -> dict[str, list[str]]:
    """The alias file: metric_key → the phrases it groups. {} when there is no file."""
    path = Path(path)
    if not path.exists():
        return {}
    fix = f"Fix {path}: it must map each metric key to a list of phrases, e.g. 行政复议直接纠错率: [直接纠错率, 复议纠错率]."
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BadFileError(f"{path} cannot be read ({err}). {fix}") from err
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v) for k, v in raw.items()
    ):
        raise BadFileError(f"{path} is not a mapping of keys to lists of phrases. {fix}")
    return raw
