"""Load check: N concurrent POST /api/ask requests against a running server; every one must be answered.

    python -m ui.load_check --url http://127.0.0.1:7860 -n 50

Prints how many were answered, the status codes of the others, throughput and p50/p95 latency,
and exits 1 when any request was lost. Send it only to a server of your own on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

import httpx

QUESTIONS = [
    "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？",
    "重庆枢纽港涉外法律服务联盟是哪个区牵头发起设立的？",
    "九龙坡区司法局认为2025年法治政府建设还存在哪些不足？",
    "荣昌区行政复议直接纠错率是多少？",
    "梁平区人民调解的调解成功率是多少？",
]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def _one(client: httpx.AsyncClient, url: str, payload: dict) -> tuple[int | str, float, dict | None]:
    started = time.perf_counter()
    try:
        response = await client.post(url, json=payload)
    except httpx.HTTPError as err:
        return type(err).__name__, time.perf_counter() - started, None
    elapsed = time.perf_counter() - started
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
    return response.status_code, elapsed, body


async def run(url: str, n: int, provider: str, api_key: str | None, timeout: float) -> dict:
    """Fire n requests at once; return the counts and latency figures."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
        payloads = [{"question": QUESTIONS[i % len(QUESTIONS)], "provider": provider} for i in range(n)]
        started = time.perf_counter()
        results = await asyncio.gather(*(_one(client, url.rstrip("/") + "/api/ask", p) for p in payloads))
        wall = time.perf_counter() - started
    answered = [r for r in results if r[0] == 200 and r[2] and r[2].get("answer")]
    latencies = [r[1] * 1000 for r in results if r[0] == 200]
    failures: dict[str, int] = {}
    for status, _, body in results:
        if status != 200 or not (body and body.get("answer")):
            failures[str(status)] = failures.get(str(status), 0) + 1
    return {
        "requests": n,
        "answered": len(answered),
        "with_citations": sum(1 for r in answered if r[2]["citations"]),
        "failures": failures,
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(answered) / wall, 2) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1) if latencies else 0.0,
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the server (loopback only)")
    parser.add_argument("-n", type=int, default=50, help="concurrent requests (default 50)")
    parser.add_argument("--provider", default="extractive", choices=["extractive", "local", "openai"])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    host = httpx.URL(args.url).host
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        parser.error(f"--url must point at this machine (127.0.0.1 or localhost), not {host}")
    figures = asyncio.run(run(args.url, args.n, args.provider, os.environ.get("FAZHI_API_KEY"), args.timeout))
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        print(
            f"{figures['answered']}/{figures['requests']} answered ({figures['with_citations']} with citations), "
            f"lost: {figures['failures'] or 'none'}\n"
            f"wall {figures['wall_s']} s · throughput {figures['throughput_rps']} req/s · "
            f"p50 {figures['p50_ms']} ms · p95 {figures['p95_ms']} ms · max {figures['max_ms']} ms"
        )
    return 0 if figures["answered"] == figures["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
