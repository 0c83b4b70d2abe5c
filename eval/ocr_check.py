"""How well and how fast the report formats are read: OCR character accuracy of the scanned
variants against their source text, OCR pages per second, and load time per format.

    .venv/bin/python -m eval.ocr_check [--json]

Character accuracy is 1 - CER: one minus the edit distance (insertions, deletions, substitutions)
between what was read and the source, over the source's length, both without white space and
with full-width letters and digits folded (rag.text.fold), so a layout's line breaks and a 「２」
for 「2」 count as nothing. The numbers are in docs/formats.md.
"""

from __future__ import annotations

import argparse
import json
import time

from rag.loading import load_report
from rag.settings import PROJECT_ROOT
from rag.text import fold

FORMATS = PROJECT_ROOT / "tests" / "data" / "formats"
REGIONS = PROJECT_ROOT / "tests" / "data" / "regions"
SCANS = {name: REGIONS / name.replace("_scan.pdf", ".txt")
         for name in ("zhengzhou_jinshui_2024_scan.pdf", "ningbo_jiangbei_2024_scan.pdf")}
TIMED = ("cuiping_2024.docx", "hangzhou_xihu_2023.pdf", "lusong_2025_table.pdf", "dali_2024.png",
         "zhengzhou_jinshui_2024_scan.pdf")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row at a time."""
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other)))
        previous = current
    return previous[-1]


def character_accuracy(read: str, source: str) -> float:
    """1 - CER of read against source, white space left out and widths folded."""
    read, source = ("".join(fold(text).split()) for text in (read, source))
    return 1 - edit_distance(read, source) / len(source)


def measure() -> dict:
    load_report(FORMATS / "dali_2024.png", max_bytes=10**7)  # builds the OCR engine once, as ingest does
    scans = {}
    for name, source in SCANS.items():
        began = time.perf_counter()
        report = load_report(FORMATS / name, max_bytes=10**7)
        seconds = time.perf_counter() - began
        scans[name] = {"accuracy": round(character_accuracy(report.text, source.read_text(encoding="utf-8")), 4),
                       "pages": len(report.pages), "pages_per_second": round(len(report.pages) / seconds, 3)}
    load_ms = {}
    for name in TIMED:
        began = time.perf_counter()
        report = load_report(FORMATS / name, max_bytes=10**7)
        load_ms[name] = {"ms": round((time.perf_counter() - began) * 1000), "pages": len(report.pages) or 1}
    return {"scans": scans, "load": load_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    result = measure()
    if parser.parse_args().json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for name, row in result["scans"].items():
        print(f"{name:34} accuracy {row['accuracy']:.4f}  {row['pages_per_second']:.3f} pages/s")
    for name, row in result["load"].items():
        print(f"{name:34} {row['ms']:6d} ms  ({row['ms'] / row['pages']:.0f} ms a page)")


if __name__ == "__main__":
    main()
