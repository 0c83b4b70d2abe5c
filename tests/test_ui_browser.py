"""End to end in headless Chromium, against a real server.

问答: ask and see the streamed answer, its status line and chips; open a passage; like it; an
empty question answered inline; stop an answer mid-stream (nothing stored) while a second
question waits in the box; regenerate; reload and find the conversation again; rename; delete.
A ranking answered from the 指标库 table shows a table (raised [n] markers, chips that open passages).
知识库: upload three files at once (one refused), preview a report's headings and chunks, fix a
year that was not detected, hit-test a query, delete a report after confirming.
Each step leaves a screenshot in test-artifacts/ (ui-NN-*.png)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableGenerator

from rag.pipeline import Pipeline
from rag.settings import PROJECT_ROOT, load_settings
from tests.conftest import SEEDS, UPLOAD_REPORT, make_kb
from tests.test_ui_app import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
QUESTION = "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？"
TITLE = "首违不罚问答"
TABLE_QUESTION = "各区的调解成功率从高到低怎么排？"  # answered from the 指标库 table
NO_YEAR_REPORT = (  # a report that names no year: its year is to be fixed in the UI
    "铜梁区法治政府建设情况报告\n\n"
    "一、主要举措和成效\n（一）深化行政复议改革\n全年办理行政复议案件512件，直接纠错率9.1%。\n\n"
    "重庆市铜梁区人民政府\n"
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
        "apt-get install chromium chromium-driver",
    ),
]


class SlowModel:
    """A chat model ('local') that states the figure at once, then waits until released: an answer
    in the middle of being written, for 停止 to stop."""

    def __init__(self):
        self.release = threading.Event()

    def reply(self, _inputs):
        yield "九龙坡区2025年实施首违不罚、轻微免罚的案件1722件[1]。"
        self.release.wait(60)
        yield "全年共办理行政复议案件。"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn on 127.0.0.1:<free port> serving the app over the seeds: fake embeddings, extractive
    answers by default, SlowModel as the 'local' provider. Yields (url, pipeline, model)."""
    data_dir = tmp_path_factory.mktemp("ui")
    settings = load_settings(overrides={"data_dir": str(data_dir), "llm.provider": "extractive"})
    kb = make_kb(data_dir)
    kb.ingest(sorted(SEEDS.glob("*.txt")))
    model = SlowModel()
    pipeline = Pipeline(settings, kb, {"local": lambda: (RunnableGenerator(model.reply), "slow-fake")})
    with serving(pipeline) as url:
        yield url.rstrip("/"), pipeline, model
        model.release.set()  # a reply still waiting would hold the shutdown


def start_chromium(profile: Path):
    """Headless Chromium with a profile of its own, driven by chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1000", "--lang=zh-CN", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("ui-*.png"):
        old.unlink()
    yield driver
    driver.quit()


# ---- helpers ----------------------------------------------------------------------------------


def wait_for(driver, condition, timeout=30, message=""):
    """condition(driver)'s first true value; an element re-rendered while read is read again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(condition, message)


def find(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def text(driver, selector: str) -> str:
    return " ".join(e.text for e in find(driver, selector))


def click(driver, selector: str) -> None:
    """Click the element once it is shown and enabled."""
    element = wait_for(driver, lambda d: next((e for e in find(d, selector) if e.is_displayed() and e.is_enabled()),
                                              False), message=f"{selector} was not clickable")
    element.click()


def click_text(driver, selector: str, words: str) -> None:
    """Click the first shown element of `selector` whose text contains `words`."""
    element = wait_for(driver, lambda d: next((e for e in find(d, selector) if words in e.text and e.is_displayed()),
                                              False), message=f"no {selector} saying {words}")
    element.click()


def field(driver, elem_id: str):
    """The text box of a component (NoSuchElementException, which waits retry, while it is not rendered)."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")


def type_into(driver, elem_id: str, value: str) -> None:
    box = field(driver, elem_id)
    box.clear()
    box.send_keys(value)


def ask(driver, question: str) -> None:
    from selenium.webdriver.common.keys import Keys

    type_into(driver, "fz-question", question)
    field(driver, "fz-question").send_keys(Keys.ENTER)


def bot_messages(driver) -> list:
    return find(driver, "#fz-chat [data-testid='bot']")


def user_messages(driver) -> list:
    return find(driver, "#fz-chat [data-testid='user']")


def conversation_titles(driver) -> list[str]:
    return [label.text for label in find(driver, "#fz-conversations label")]


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"ui-{name}.png"))


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//button[@role='tab' and contains(., '{name}')]").click()


def no_error_overlay(driver) -> bool:
    """No Gradio error or warning toast is shown (gr.Error, gr.Warning)."""
    return not [e for e in find(driver, ".toast-body.error, .toast-body.warning") if e.is_displayed()]


# ---- the walks ----------------------------------------------------------------------------------


def test_chat_ask_stop_regenerate_reload_rename_delete(server, browser):
    url, pipeline, model = server
    driver = browser
    store = pipeline.conversations
    driver.get(url + "/")
    wait_for(driver, lambda d: find(d, "#fz-question textarea"), message="page did not load")

    # Ask: the answer streams in with citation chips; the status line walks through the steps.
    ask(driver, QUESTION)
    chips = wait_for(driver, lambda d: find(d, "#fz-chat .fz-chip"), message="no citation chip under the answer")
    assert "1722件" in bot_messages(driver)[-1].text and "总计" in bot_messages(driver)[-1].text
    assert chips[0].text.startswith("[1] 〔九龙坡区 · 2025 · ")
    status = wait_for(driver, lambda d: "完成" in text(d, "#fz-status") and text(d, "#fz-status"))
    assert "路由到 九龙坡区" in status and "检索到" in status and "核对数字" in status
    wait_for(driver, lambda d: conversation_titles(d) == [QUESTION], message="the conversation is not listed")
    shot(driver, "01-answer")

    # A click on the first chip shows its passage, the quoted words in <mark>.
    expected = pipeline.ask(QUESTION).citations[0]
    chips[0].click()
    mark = wait_for(driver, lambda d: find(d, "#fz-passage mark"), message="no highlighted passage")[0]
    assert mark.text.strip() == expected.quote.strip()
    shot(driver, "02-passage")

    # Like: stored with its question and citations.
    likes = [b for b in find(driver, "#fz-chat button") if (b.get_attribute("aria-label") or "").lower() == "like"]
    assert likes, "no like button under the answer"
    likes[0].click()
    feedback_file = pipeline.settings.data_dir / "feedback.jsonl"
    wait_for(driver, lambda d: feedback_file.exists() and feedback_file.read_text(encoding="utf-8").endswith("\n"),
             20, "the like was not stored")
    record = json.loads(feedback_file.read_text(encoding="utf-8").splitlines()[-1])
    assert record["rating"] == "up" and record["question"] == QUESTION and record["citations"]
    wait_for(driver, lambda d: "已记录" in text(d, "#fz-status"), message="the like was not acknowledged")

    # An empty question is answered inline in the chat, not in an overlay.
    type_into(driver, "fz-question", "")
    click(driver, "#fz-send")
    wait_for(driver, lambda d: "问题为空" in bot_messages(d)[-1].text, message="no inline message for an empty question")
    assert no_error_overlay(driver), "an empty question raised an overlay"
    shot(driver, "03-empty-question")

    # Stop: the slow model states the figure, then waits. A second question typed meanwhile stays
    # in the box, and Enter says why it waits; 停止 keeps the text so far, marked, and stores nothing.
    click_text(driver, "button.label-wrap", "设置")
    click_text(driver, "#fz-provider label", "本地模型")
    ask(driver, QUESTION)
    wait_for(driver, lambda d: len(user_messages(d)) == 2 and "1722件" in bot_messages(d)[-1].text
             and find(d, "#fz-stop")[0].is_enabled(), message="the slow answer did not start")
    assert not find(driver, "#fz-send")[0].is_enabled() and "回答中" in find(driver, "#fz-send")[0].text
    assert "生成中" in text(driver, "#fz-status") and "路由到 九龙坡区" in text(driver, "#fz-status")
    shot(driver, "04-streaming")
    ask(driver, "那梁平区呢？")
    wait_for(driver, lambda d: "正在回答上一个问题" in text(d, "#fz-status"), message="a second question was dropped silently")
    assert field(driver, "fz-question").get_attribute("value") == "那梁平区呢？"
    click(driver, "#fz-stop")
    wait_for(driver, lambda d: "（已停止）" in bot_messages(d)[-1].text, message="the stopped answer is not marked")
    assert "1722件" in bot_messages(driver)[-1].text and "已停止" in text(driver, "#fz-status")
    assert field(driver, "fz-question").get_attribute("value") == "那梁平区呢？", "the typed question was erased"
    (conversation,) = store.list()
    assert conversation.turn_count == 1, "a stopped answer was stored"
    shot(driver, "05-stopped")
    model.release.set()

    # Regenerate: the stopped question is answered again, and stored.
    click(driver, "#fz-regenerate")
    wait_for(driver, lambda d: len(find(d, "#fz-chat .fz-chip")) >= 2 and "（已停止）" not in d.find_element(
        "id", "fz-chat").text, message="regenerate gave no answer")
    wait_for(driver, lambda d: store.get(conversation.id).turn_count == 2, 10, "the regenerated answer was not stored")
    assert store.get(conversation.id).turns[1].answer.model == "slow-fake"
    shot(driver, "06-regenerated")

    # Reload: the conversation is open again, with both turns.
    driver.refresh()
    wait_for(driver, lambda d: len(user_messages(d)) == 2 and len(bot_messages(d)) == 2,
             message="the conversation did not come back after a reload")
    assert conversation_titles(driver) == [QUESTION]
    assert find(driver, "#fz-conversations input:checked"), "the open conversation is not selected in the list"
    shot(driver, "07-reloaded")

    # Rename.
    click_text(driver, "button.label-wrap", "管理对话")
    wait_for(driver, lambda d: field(d, "fz-title").get_attribute("value") == QUESTION, message="the title box is empty")
    type_into(driver, "fz-title", TITLE)
    click(driver, "#fz-rename")
    wait_for(driver, lambda d: conversation_titles(d) == [TITLE], message="the list did not show the new title")
    assert store.get(conversation.id).title == TITLE
    shot(driver, "08-renamed")

    # Delete, after confirming.
    click(driver, "#fz-delete")
    wait_for(driver, lambda d: TITLE in text(d, "#fz-delete-confirm"), message="no confirmation before deleting")
    shot(driver, "09-delete-confirm")
    click(driver, "#fz-delete-yes")
    wait_for(driver, lambda d: conversation_titles(d) == [] and not user_messages(d), message="not deleted")
    assert store.list() == []
    shot(driver, "10-deleted")


def test_a_table_answer_renders_as_a_table_with_chips(server, browser):
    """An answer from the 指标库 table: its markdown table is a <table>, one row per district ranked,
    its [n] markers raised; a chip under it opens the quoted sentence of its report."""
    url, pipeline, _ = server
    driver = browser
    expected = pipeline.ask(TABLE_QUESTION)
    assert expected.provider == "indicators" and not expected.refused, expected.answer
    districts = list(dict.fromkeys(c.district for c in expected.citations))
    assert len(districts) >= 2, expected.answer
    driver.get(url + "/")
    wait_for(driver, lambda d: find(d, "#fz-question textarea"), message="page did not load")
    click(driver, "#fz-new")
    wait_for(driver, lambda d: not user_messages(d), message="no new conversation")

    ask(driver, TABLE_QUESTION)
    wait_for(driver, lambda d: "完成" in text(d, "#fz-status"), message="the table answer did not finish")
    message = bot_messages(driver)[-1]
    tables = find(message, "table")
    assert len(tables) == 1, f"the markdown table is not rendered as a table: {message.text!r}"
    assert "| --- |" not in message.text and "| 地区 |" not in message.text, "raw pipes in the answer"
    head = [cell.text.strip() for cell in find(tables[0], "th")]
    assert head == ["地区", "年份", "指标", "数值", "出处"]
    rows = [[cell.text.strip() for cell in find(row, "td")] for row in find(tables[0], "tbody tr")]
    assert [row[0] for row in rows] == districts, "not one row per district, in the answer's order"
    assert [row[-1] for row in rows] == [f"[{c.n}]" for c in expected.citations]
    refs = find(tables[0], "td .fz-ref")
    assert len(refs) == len(rows), "the table's [n] markers are not raised"
    assert all(r.value_of_css_property("vertical-align") == "super" for r in refs)
    assert find(message, "p .fz-ref"), "the leading sentence's [n] markers are not raised"
    assert "未报告该指标" in message.text and "注：" in message.text
    chips = find(message, ".fz-chip")
    assert [c.text.split(" ")[0] for c in chips] == [f"[{c.n}]" for c in expected.citations]
    driver.execute_script("arguments[0].scrollIntoView({block: 'end'}); window.scrollTo(0, 0)", message)
    shot(driver, "17-table-answer")

    # A click on a chip shows its passage, the quoted sentence in <mark>.
    cited = expected.citations[1]
    chips[1].click()
    mark = wait_for(driver, lambda d: find(d, "#fz-passage mark"), message="no highlighted passage")[0]
    assert mark.text.strip() == cited.quote.strip()
    assert cited.district in text(driver, "#fz-passage .fz-passage-head")
    shot(driver, "18-table-passage")


def test_knowledge_base_upload_preview_fix_hit_test_remove(server, browser, tmp_path):
    url, pipeline, _ = server
    driver = browser
    driver.get(url + "/")
    wait_for(driver, lambda d: find(d, "#fz-question textarea"), message="page did not load")
    open_tab(driver, "知识库")
    wait_for(driver, lambda d: "003_190862aaa87d2635.txt" in text(d, "#fz-reports"), message="the seeds are not listed")

    # Three files at once: two reports and a .csv, one result line each.
    uploads = {"璧山区2024年报告.txt": UPLOAD_REPORT, "铜梁区报告.txt": NO_YEAR_REPORT, "notes.csv": "a,b\n1,2\n"}
    for name, content in uploads.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    find(driver, "#fz-upload input[type=file]")[0].send_keys("\n".join(str(tmp_path / name) for name in uploads))
    status = wait_for(driver, lambda d: text(d, "#fz-kb-status").count("导入") >= 3 and text(d, "#fz-kb-status"),
                      message="the three uploads got no result lines")
    assert status.count("已导入") == 2 and status.count("未导入") == 1 and "notes.csv：不支持的文件类型" in status
    assert "璧山区 · 2024" in status and "铜梁区 · 年份未识别" in status
    wait_for(driver, lambda d: "璧山区2024年报告.txt" in text(d, "#fz-reports") and "年份未识别" in text(d, "#fz-reports"))
    shot(driver, "11-uploaded")

    # The last one imported is picked: its preview, and a year field that is empty, never 0.
    wait_for(driver, lambda d: "铜梁区法治政府建设情况报告" in text(d, "#fz-preview"), message="no preview of the upload")
    assert field(driver, "fz-fix-year").get_attribute("value") == ""
    assert field(driver, "fz-fix-district").get_attribute("value") == "铜梁区"
    type_into(driver, "fz-fix-year", "2024")
    click(driver, "#fz-save")
    wait_for(driver, lambda d: "已更新" in text(d, "#fz-kb-status"), message="the year was not saved")
    assert "已导入" not in text(driver, "#fz-kb-status")
    assert {r["file"]: r["year"] for r in pipeline.reports()}["铜梁区报告.txt"] == 2024

    # Preview another report by clicking its row: heading tree and chunks.
    click_text(driver, "#fz-reports [role=gridcell]", "璧山区2024年报告.txt")
    # 865件 is only in 璧山区's report: the heading alone is in 铜梁区's preview, shown until the new one comes
    preview = wait_for(driver, lambda d: "865件" in text(d, "#fz-preview") and text(d, "#fz-preview"),
                       message="clicking a row showed no preview")
    assert "一、主要举措和成效" in preview and "段落" in preview and "865件" in preview
    assert find(driver, "#fz-preview .fz-tree ul li"), "the heading tree is not nested"
    shot(driver, "12-preview")

    # Hit test: ranked chunks with their fused scores and where they are from.
    type_into(driver, "fz-hit-query", "璧山区办理法律援助案件多少件")
    click(driver, "#fz-hit")
    wait_for(driver, lambda d: "路由到 璧山区" in text(d, "#fz-hit-note"), message="the hit test did not run")
    rows = wait_for(driver, lambda d: [r.text for r in find(d, "#fz-hits [role=row]") if r.text[:1].isdigit()])
    assert rows[0].startswith("1") and "璧山区" in rows[0] and "2024" in rows[0]
    assert any("865件" in r for r in rows)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", find(driver, "#fz-hits")[0])
    shot(driver, "13-hit-test")

    # Delete, after confirming: everything shows the knowledge base without it.
    click(driver, "#fz-remove")
    wait_for(driver, lambda d: "璧山区2024年报告.txt" in text(d, "#fz-remove-confirm"), message="no confirmation")
    assert "璧山区2024年报告.txt" in [r["file"] for r in pipeline.reports()]
    shot(driver, "14-remove-confirm")
    click(driver, "#fz-remove-yes")
    wait_for(driver, lambda d: "已删除" in text(d, "#fz-kb-status"), message="not removed")
    wait_for(driver, lambda d: "璧山区2024年报告.txt" not in text(d, "#fz-reports"))
    assert "璧山区2024年报告.txt" not in [r["file"] for r in pipeline.reports()]
    assert "璧山区" not in text(driver, "#fz-preview") and not field(driver, "fz-fix-district").get_attribute("value")
    assert not [e for e in find(driver, "#fz-remove-confirm") if e.is_displayed()]
    assert not [r for r in find(driver, "#fz-hits [role=row]") if r.text[:1].isdigit()], "stale hit-test rows"
    shot(driver, "15-removed")


def test_the_api_docs_render_with_no_network(server, browser):
    """/docs is Swagger UI from local files: every operation shows, and no resource came from elsewhere
    (FastAPI's default page loads its scripts from a CDN, and was blank offline)."""
    url = server[0]
    browser.get(url + "/docs")
    wait_for(browser, lambda d: len(find(d, ".opblock")) >= 10, message="Swagger UI listed no operations")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(url) for name in loaded), loaded
    assert any("/api/conversations" in element.text for element in find(browser, ".opblock-summary-path"))
    shot(browser, "16-docs")
