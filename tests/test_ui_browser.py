"""End to end in headless Chromium: ask, see the streamed answer and its chips, open a passage,
upload a report in the 知识库 tab and ask about it. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from eval.processes import free_port
from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, load_settings
from tests.conftest import SEEDS, UPLOAD_REPORT, make_kb

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
QUESTION = "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？"
UPLOAD_QUESTION = "璧山区2024年办理法律援助案件多少件？"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
        "apt-get install chromium chromium-driver",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn on 127.0.0.1:<free port> serving the app over the seeds, fake embeddings, extractive answers."""
    import uvicorn

    from rag.api import create_app

    data_dir = tmp_path_factory.mktemp("ui")
    settings = load_settings(overrides={"data_dir": str(data_dir), "llm.provider": "extractive"})
    kb = make_kb(data_dir)
    kb.ingest(sorted(SEEDS.glob("*.txt")))
    pipeline = Pipeline(settings, kb)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(pipeline), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uv.started, "uvicorn did not start within 60 s"
    yield f"http://127.0.0.1:{port}", pipeline
    uv.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1000", "--lang=zh-CN",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout=60, message=""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message)


def ask(driver, question: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, "#fz-question textarea")
    box.clear()
    box.send_keys(question)
    box.send_keys(Keys.ENTER)


def bot_messages(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#fz-chat [data-testid='bot']")


def test_ask_open_a_citation_upload_and_ask_again(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, pipeline = server
    driver = browser
    driver.get(url + "/")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#fz-question textarea"), message="page did not load")

    # The filters are filled from the knowledge base.
    wait_for(driver, lambda d: "fz-chat" in d.page_source)

    # Ask: the answer streams in, with citation chips under it.
    ask(driver, QUESTION)
    chips = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#fz-chat .fz-chip"),
                     message="no citation chip appeared under the answer")
    answer_text = bot_messages(driver)[-1].text
    assert "1722件" in answer_text
    assert chips[0].text.startswith("[1] 〔九龙坡区 · 2025 · ")
    assert "总计" in answer_text  # the quiet timing line
    driver.save_screenshot(str(ARTIFACTS / "ui-1-answer.png"))

    # A click on the first chip shows its passage, the quoted words in <mark>.
    expected = pipeline.ask(QUESTION).citations[0]
    chips[0].click()
    mark = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#fz-passage mark"),
                    message="clicking the chip showed no highlighted passage")[0]
    assert mark.text.strip() == expected.quote.strip()
    head = driver.find_element(By.CSS_SELECTOR, "#fz-passage .fz-passage-head").text
    assert expected.section.split(" > ")[-1] in head
    driver.save_screenshot(str(ARTIFACTS / "ui-2-passage.png"))

    # 👍 on the answer is stored with its question and citations.
    likes = [b for b in driver.find_elements(By.CSS_SELECTOR, "#fz-chat button")
             if (b.get_attribute("aria-label") or "").lower() in ("like", "赞", "点赞")]
    assert likes, "no like button under the answer"
    likes[0].click()
    feedback_file = pipeline.settings.data_dir / "feedback.jsonl"
    wait_for(driver, lambda d: feedback_file.exists() and feedback_file.read_text(encoding="utf-8").endswith("\n"),
             20, "👍 was not stored")
    record = json.loads(feedback_file.read_text(encoding="utf-8").splitlines()[-1])
    assert record["rating"] == "up" and record["question"] == QUESTION and record["citations"]

    # 知识库: upload a report and watch it ingest.
    driver.find_element(By.XPATH, "//button[@role='tab' and contains(., '知识库')]").click()
    wait_for(driver, lambda d: "003_190862aaa87d2635.txt" in d.find_element(By.ID, "fz-reports").text,
             message="the reports table did not list the seeds")
    report = tmp_path / "璧山区2024年报告.txt"
    report.write_text(UPLOAD_REPORT, encoding="utf-8")
    driver.find_element(By.CSS_SELECTOR, "#fz-upload input[type=file]").send_keys(str(report))
    status = wait_for(driver, lambda d: "已导入" in d.find_element(By.ID, "fz-upload-status").text
                      and d.find_element(By.ID, "fz-upload-status").text, message="the upload was not ingested")
    assert "璧山区" in status and "2024" in status
    wait_for(driver, lambda d: "璧山区2024年报告.txt" in d.find_element(By.ID, "fz-reports").text)
    driver.save_screenshot(str(ARTIFACTS / "ui-3-upload.png"))

    # A rejected upload says why.
    bad = tmp_path / "notes.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    driver.find_element(By.CSS_SELECTOR, "#fz-upload input[type=file]").send_keys(str(bad))
    wait_for(driver, lambda d: "不支持的文件类型" in d.find_element(By.ID, "fz-upload-status").text,
             message="a .csv upload was not rejected with a reason")

    # Back to the chat: ask about the uploaded report.
    driver.find_element(By.XPATH, "//button[@role='tab' and contains(., '问答')]").click()
    ask(driver, UPLOAD_QUESTION)
    chip = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#fz-chat .fz-chip[title*='璧山区 · 2024']"),
                    message="no chip citing the uploaded report")[0]
    assert "865件" in bot_messages(driver)[-1].text
    chip.click()
    wait_for(driver, lambda d: "865件" in "".join(m.text for m in d.find_elements(By.CSS_SELECTOR, "#fz-passage mark")),
             message="the uploaded report's passage was not shown")
    driver.save_screenshot(str(ARTIFACTS / "ui-4-upload-answer.png"))

    # 知识库 again: correct the detected district, then remove the report.
    driver.find_element(By.XPATH, "//button[@role='tab' and contains(., '知识库')]").click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#fz-pick input").get_attribute("value")
             == "璧山区2024年报告.txt", message="the upload did not select itself in the report picker")
    district = driver.find_element(By.CSS_SELECTOR, "#fz-fix-district textarea, #fz-fix-district input")
    wait_for(driver, lambda d: district.get_attribute("value") == "璧山区", message="the picker did not fill the district")
    district.clear()
    district.send_keys("铜梁区")
    driver.find_element(By.ID, "fz-save").click()
    wait_for(driver, lambda d: "已更新" in d.find_element(By.ID, "fz-kb-status").text, message="the fix was not saved")
    assert (pipeline.settings.data_dir / "reports" / "璧山区2024年报告.txt.meta.yaml").exists()
    wait_for(driver, lambda d: "铜梁区" in d.find_element(By.ID, "fz-reports").text)
    driver.save_screenshot(str(ARTIFACTS / "ui-5-fix.png"))
    driver.find_element(By.ID, "fz-remove").click()
    wait_for(driver, lambda d: "已从知识库删除" in d.find_element(By.ID, "fz-kb-status").text, message="not removed")
    wait_for(driver, lambda d: "璧山区2024年报告.txt" not in d.find_element(By.ID, "fz-reports").text)
    assert "璧山区2024年报告.txt" not in [r["file"] for r in pipeline.reports()]
