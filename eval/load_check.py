"""Load check: concurrent clients asking POST /api/ask on a running server, optionally while a report is ingested.

    python -m eval.load_check --url http://127.0.0.1:7860 --clients 50            # one question each
    python -m eval.load_check --clients 50 --duration 60 --ingest-during FILE --out load.json

Each client asks about one district only and checks every answer: it must cite that district
alone and contain the figure the report gives. Prints requests, throughput, p50/p95 latency and
the counts of 5xx, lost (no answer: a transport error, another status, or a refusal) and
mixed-up answers (another district cited, or the figure missing); exits 1 when any of them is
not zero or the ingest failed. The server's per-client rate limit
(server.requests_per_minute) must be raised for a long run, or most requests come back 429.
Send it only to a server of your own on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from eval.metrics import percentile
from rag.providers import PROVIDER_NAMES

# (district, question, figure): read off the seed reports in seeds/, one pair per district.
CASES = [
    ("九龙坡区", "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？", "1722件"),     # 000_…: 首违不罚、轻微免罚1722件
    ("九龙坡区", "九龙坡区律师行业党的组织覆盖率达到了多少？", "82.4%"),             # 000_…: 党的组织覆盖率82.4%
    ("梁平区", "梁平区人民调解成功率达到了多少？", "99.97%"),                       # 001_…: 調解成功率99.97%
    ("梁平区", "梁平区行政复议直接纠错率是多少？", "12.24%"),                       # 001_…: 直接糾錯率12.24%
    ("沙坪坝区", "沙坪坝区2023年全年受理法律援助案件多少件？", "660件"),             # 002_…: 受理法律援助案件660件
    ("沙坪坝区", "沙坪坝区法律援助为当事人挽回经济损失多少？", "558.82万元"),         # 002_…: 挽回经济损失558.82万元
    ("荣昌区", "荣昌区2024年行政复议直接纠错率是多少？", "22.22%"),                 # 003_…: 直接纠错率22.22%
    ("荣昌区", "荣昌区“民呼我为”平台全年受理问题线索多少件？", "9436件"),           # 003_…: 受理问题线索9436件
    ("开州区大进镇", "大进镇2025年查处交通执法违法多少件？", "433件"),               # 004_…: 查处交通执法违法共433件
    ("开州区大进镇", "大进镇划分了多少个网格？", "28个"),                           # 004_…: 划分网格28个
]
DISTRICTS = sorted({district for district, _, _ in CASES})


@dataclass
class Result:
    district: str
    question: str
    outcome: str            # "ok", "5xx", "lost" or "mixed"
    detail: str             # the status, or what was wrong with the answer
    started: float          # seconds since the run began
    ms: float


def judge(district: str, figure: str, status: int, body) -> tuple[str, str]:
    """(outcome, detail) of one response to a question about `district` whose answer holds `figure`."""
    if status >= 500:
        return "5xx", str(status)
    if status != 200 or not isinstance(body, dict) or not body.get("answer"):
        return "lost", str(status)
    cited = sorted({c["district"] for c in body.get("citations", [])})
    if body.get("refused") or not cited:  # the report holds the answer: a refusal loses it
        return "lost", "200 refused" if body.get("refused") else "200 without citations"
    if cited != [district]:
        return "mixed", "cited " + "、".join(cited)
    if figure not in body["answer"]:
        return "mixed", f"no {figure}"
    return "ok", "200"


async def _ask(client: httpx.AsyncClient, url: str, case: tuple[str, str, str], provider: str, t0: float) -> Result:
    district, question, figure = case
    started = time.perf_counter()
    try:
        response = await client.post(url, json={"question": question, "provider": provider})
        status = response.status_code
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        outcome, detail = judge(district, figure, status, body)
    except (httpx.HTTPError, ValueError) as err:
        outcome, detail = "lost", type(err).__name__
    return Result(district, question, outcome, detail, round(started - t0, 3), (time.perf_counter() - started) * 1000)


async def _client(n: int, client: httpx.AsyncClient, url: str, provider: str, t0: float, until: float) -> list[Result]:
    """Client n asks only about one district, in turn, until the deadline (or once when until is 0)."""
    cases = [c for c in CASES if c[0] == DISTRICTS[n % len(DISTRICTS)]]
    offset = n // len(DISTRICTS)
    results: list[Result] = []
    while not results or time.perf_counter() < until:
        results.append(await _ask(client, url, cases[(offset + len(results)) % len(cases)], provider, t0))
    return results


async def _ingest(client: httpx.AsyncClient, base: str, path: Path, delay: float, t0: float) -> dict:
    """Upload (add or replace) a report through POST /api/reports after `delay` seconds."""
    await asyncio.sleep(delay)
    started = time.perf_counter()
    try:
        response = await client.post(
            base + "/api/reports", files={"file": (path.name, path.read_bytes(), "text/plain")}, timeout=None
        )
        status, body = response.status_code, response.json()
    except (httpx.HTTPError, ValueError) as err:
        status, body = type(err).__name__, {}
    summary = body.get("summary", {}) if isinstance(body, dict) else {}
    return {
        "file": path.name, "status": status, "ok": status == 201,
        "started_s": round(started - t0, 1), "seconds": round(time.perf_counter() - started, 1),
        "replaced": summary.get("replaced", []), "new": summary.get("new", []),
        "chunks_embedded": summary.get("chunks_embedded", 0),
        **({} if status == 201 else {"detail": str(body)[:300]}),
    }


async def run(url: str, clients: int, duration: float, provider: str, api_key: str | None, timeout: float,
              ingest_file: Path | None = None, ingest_delay: float = 5.0) -> dict:
    """Run the clients (and the ingest); return the counts and latency figures."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    base = url.rstrip("/")
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
        t0 = time.perf_counter()
        until = t0 + duration if duration else 0.0
        ingest = asyncio.create_task(_ingest(client, base, ingest_file, ingest_delay, t0)) if ingest_file else None
        batches = await asyncio.gather(*(_client(n, client, base + "/api/ask", provider, t0, until) for n in range(clients)))
        wall = time.perf_counter() - t0
        ingested = await ingest if ingest else None
    return figures([r for batch in batches for r in batch], wall, clients, duration, ingested)


def figures(results: list[Result], wall: float, clients: int, duration: float, ingested: dict | None) -> dict:
    """The summary of a run: counts by outcome, throughput and latency of answered requests."""
    outcomes = Counter(r.outcome for r in results)
    latencies = [r.ms for r in results if r.outcome in ("ok", "mixed")]
    problems = Counter(f"{r.outcome}: {r.detail}" for r in results if r.outcome != "ok")
    return {
        "clients": clients,
        "duration_s": duration,
        "requests": len(results),
        "ok": outcomes["ok"],
        "5xx": outcomes["5xx"],
        "lost": outcomes["lost"],
        "mixed_up": outcomes["mixed"],
        "problems": dict(problems),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50) or 0.0, 1),
        "p95_ms": round(percentile(latencies, 95) or 0.0, 1),
        "max_ms": round(max(latencies), 1) if latencies else 0.0,
        "by_district": {d: sum(1 for r in results if r.district == d) for d in DISTRICTS},
        "ingest": ingested,
        "first_problems": [r.__dict__ for r in results if r.outcome != "ok"][:10],
    }


def passed(f: dict) -> bool:
    return f["requests"] == f["ok"] and (f["ingest"] is None or f["ingest"]["ok"])


def summary_text(f: dict) -> str:
    lines = [
        f"{f['requests']} requests from {f['clients']} clients in {f['wall_s']} s: {f['ok']} ok · "
        f"5xx {f['5xx']} · lost {f['lost']} · mixed-up {f['mixed_up']}",
        f"throughput {f['throughput_rps']} req/s · p50 {f['p50_ms']} ms · p95 {f['p95_ms']} ms · max {f['max_ms']} ms",
    ]
    if f["problems"]:
        lines.append("problems: " + ", ".join(f"{k} ×{v}" for k, v in f["problems"].items()))
    if f["ingest"]:
        i = f["ingest"]
        lines.append(
            f"ingest of {i['file']}: status {i['status']} after {i['started_s']} s, took {i['seconds']} s "
            f"(replaced {i['replaced']}, new {i['new']}, {i['chunks_embedded']} chunks embedded)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the server (loopback only)")
    parser.add_argument("--clients", "-n", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="seconds each client keeps asking (default 0: one question per client)")
    parser.add_argument("--ingest-during", type=Path, metavar="FILE",
                        help="upload this report through POST /api/reports while the load runs")
    parser.add_argument("--ingest-delay", type=float, default=5.0, help="seconds into the run to start the ingest")
    parser.add_argument("--provider", default="extractive", choices=PROVIDER_NAMES)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    host = httpx.URL(args.url).host
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        parser.error(f"--url must point at this machine (127.0.0.1 or localhost), not {host}")
    if args.ingest_during and not args.ingest_during.is_file():
        parser.error(f"--ingest-during: no such file {args.ingest_during}")
    result = asyncio.run(run(args.url, args.clients, args.duration, args.provider, os.environ.get("FAZHI_API_KEY"),
                             args.timeout, args.ingest_during, args.ingest_delay))
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False) if args.json else summary_text(result))
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
