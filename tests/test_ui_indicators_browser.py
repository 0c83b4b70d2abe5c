"""The 指标 tab end to end in headless Chromium, against a real server with a filled indicator table:
pick a metric and see its bar chart and cited rows (every file from this server: it works offline),
click a row to open its sentence in the passage, and download the CSV. Each step leaves a
screenshot in test-artifacts/ (indicators-NN-*.png)."""

from __future__ import annotations

import csv
import io
import time

import pytest

from rag.indicator_table import SqliteIndicators
from rag.pipeline import Pipeline
from rag.settings import load_settings
from tests.conftest import SEEDS, make_kb
from tests.test_indicator_table import RONGCHANG, seed_rows
from tests.test_ui_app import serving
from tests import test_ui_browser
from tests.test_ui_browser import ARTIFACTS, click, click_text, find, open_tab, start_chromium, text, wait_for

pytestmark = test_ui_browser.pytestmark  # integration, and skipped without Chromium, as the other walks
METRIC = "出庭应诉率"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app over the seeds (fake embeddings) with the seed rows in its indicator table; (url, pipeline)."""
    data_dir = tmp_path_factory.mktemp("indicators-ui")
    settings = load_settings(overrides={"data_dir": str(data_dir), "llm.provider": "extractive"})
    kb = make_kb(data_dir)
    kb.ingest(sorted(SEEDS.glob("*.txt")))
    table = SqliteIndicators.in_data_dir(data_dir)
    table.rebuild(seed_rows().items(), kb.manifest()["version"])
    with serving(Pipeline(settings, kb, indicators=table)) as url:
        yield url.rstrip("/"), table
    table.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium that saves downloads into a folder of the test's own: (driver, folder)."""
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    downloads = tmp_path_factory.mktemp("downloads")
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("indicators-*.png"):
        old.unlink()
    yield driver, downloads
    driver.quit()


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"indicators-{name}.png"))


def table_rows(driver) -> list[list[str]]:
    """The cells of each row of the table, its header left out."""
    rows = [r.text.split("\n") for r in find(driver, "#fz-ind-rows [role=row]")]
    return [cells for cells in rows if cells[0] != "区县"]


def test_pick_a_metric_see_its_chart_open_a_row_and_export_csv(server, browser):
    url, table = server
    driver, downloads = browser
    driver.get(url + "/")
    wait_for(driver, lambda d: find(d, "#fz-question textarea"), message="page did not load")
    open_tab(driver, "指标")

    # The picker lists the metrics with their counts; pick one: a bar per district and year, and its rows.
    click(driver, "#fz-metric input")
    click_text(driver, "#fz-metric [role=option]", f"{METRIC}（%） · 3 条 · 3 个区县")
    rows = wait_for(driver, lambda d: len(table_rows(d)) == 3 and table_rows(d), message="the metric's rows not shown")
    assert [cells[:5] for cells in rows] == [["九龙坡区", "2025", "100", "%", "现值"], ["沙坪坝区", "2023", "100", "%", "现值"],
                                           ["荣昌区", "2024", "100", "%", "现值"]]
    assert "出庭应诉率达100%" in rows[2][5] and rows[2][7] == RONGCHANG
    bars = wait_for(driver, lambda d: find(d, "#fz-ind-chart .mark-rect path"), message="no bar chart drawn")
    assert len(bars) == 3
    wait_for(driver, lambda d: all(bar.size["height"] > 100 for bar in bars), 10,
             "the bars are not drawn up from zero")  # a y axis fitted to the values draws 100% as nothing
    assert "共 3 条。图中为现值（%）" in text(driver, "#fz-ind-note")
    time.sleep(1)  # the chart animates its bars in
    shot(driver, "01-chart")

    # A click on a row opens the passage, the sentence that states the figure highlighted.
    (expected,) = table.rows(metric_key=METRIC, district="荣昌区")
    click_text(driver, "#fz-ind-rows [role=gridcell]", "荣昌区")
    mark = wait_for(driver, lambda d: find(d, "#fz-ind-passage mark"), message="no highlighted passage")[0]
    assert mark.text.strip() == expected.sentence.strip()
    assert "〔荣昌区 · 2024 · 一、主要成效〕" in text(driver, "#fz-ind-passage .fz-passage-head")
    shot(driver, "02-passage")

    # 导出 CSV downloads the rows: every field and the citation label, readable by Excel (a BOM).
    click(driver, "#fz-ind-csv")
    saved = wait_for(driver, lambda d: [p for p in downloads.glob("*.csv")], message="no CSV downloaded")[0]
    content = saved.read_bytes()
    assert content.startswith("\ufeff".encode())
    exported = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert [(r["district"], r["value"], r["label"]) for r in exported] == [
        ("九龙坡区", "100.0", "〔九龙坡区 · 2025 · 一、主要成效〕"), ("沙坪坝区", "100.0", "〔沙坪坝区 · 2023 · 一、主要成效〕"),
        ("荣昌区", "100.0", "〔荣昌区 · 2024 · 一、主要成效〕")]
    shot(driver, "03-exported")

    # Nothing came from another host: the chart's scripts are Gradio's own, served here.
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(url) for name in loaded), [n for n in loaded if not n.startswith(url)]
