"""问答 tab: stored conversations beside a streaming chat.

The list on the left is the pipeline's conversation store (newest first), to open, rename or
delete; the browser remembers which one is open, so a reload opens it again. Answers come from
`Pipeline.converse`, so a follow-up's history is the stored one. A status line shows an answer's
steps; 停止 cancels it (nothing is stored) and 重新生成 answers the last question again. A click
on a citation chip shows its passage on the right.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import gradio as gr

from rag.aggregate import PROVIDER as TABLE, PROVIDER_LABEL as TABLE_LABEL
from rag.answering import AnswerStream
from rag.conversations import Conversation, ConversationNotFoundError
from rag.errors import LLMUnavailableError, ModelUnavailableError, QuestionError, RagError
from rag.feedback import FeedbackStore
from rag.pipeline import Pipeline
from rag.providers import PROVIDERS
from rag.report_files import ReportFiles
from rag.schema import SECTION_SEPARATOR, Answer, Citation
from ui.render import esc, notice, render_steps

EXAMPLES = [
    "九龙坡区2025年实施首违不罚、轻微免罚的案件有多少件？",
    "梁平区人民调解的调解成功率是多少？",
    "重庆枢纽港涉外法律服务联盟是哪个区牵头发起设立的？",
    "九龙坡区司法局认为2025年法治政府建设还存在哪些不足？",
]
PASSAGE_HINT = "<div class='fz-passage fz-empty'>点击答案下方的引用〔…〕，在这里查看报告原文。</div>"
PASSAGE_CONTEXT = 400  # characters shown either side of a quote
CONVERSATION_KEY = "fazhi-conversation"  # the browser's localStorage key of the open conversation
CURSOR = "<span class='fz-cursor'></span>"
STOPPED = "<span class='fz-stopped'>（已停止）</span>"
BUSY_NOTICE = "正在回答上一个问题：等它答完再发送，或先点「停止」。你输入的问题还在输入框里。"
NO_MODEL_HINT = "可在右侧「设置」中改用「摘录（不用模型）」，再点「重新生成」。"

# A click on any chip, wherever the chatbot renders it, fires this component's click event.
# The chatbot's sanitizer drops data-* attributes, so a chip carries its citation in its href.
CHIP_JS = r"""
window.__fzTrigger = trigger;
watch('value', () => {
  const box = element.querySelector('.fz-passage-body');
  const mark = box && box.querySelector('mark');
  if (mark) box.scrollTop += mark.getBoundingClientRect().top - box.getBoundingClientRect().top - 60;
});
if (!window.__fzChipListener) {
  window.__fzChipListener = true;
  document.addEventListener('click', (event) => {
    const chip = event.target.closest && event.target.closest('.fz-chip');
    if (!chip) return;
    event.preventDefault();
    event.stopPropagation();
    document.querySelectorAll('.fz-chip.fz-active').forEach((c) => c.classList.remove('fz-active'));
    chip.classList.add('fz-active');
    const cite = (chip.getAttribute('href') || '').match(/#fz-cite=(\d+)-(\d+)-(.+)$/);
    if (!cite) return;
    window.__fzTrigger('click', {file: decodeURIComponent(cite[3]), start: cite[1], end: cite[2],
                                 label: chip.getAttribute('title') || ''});
  }, true);
}
"""


# ---- rendering (pure functions) ---------------------------------------------------------


def chip_label(citation: Citation, width: int = 14) -> str:
    """〔荣昌区 · 2024 · （五）夯实基层体系…〕: the innermost heading, shortened."""
    heading = citation.section.split(SECTION_SEPARATOR)[-1].strip()
    if len(heading) > width:
        heading = heading[:width] + "…"
    return f"〔{' · '.join(str(p) for p in (citation.district, citation.year, heading) if p)}〕"


def answer_text(text: str) -> str:
    """Answer text as HTML, its [n] markers raised."""
    return re.sub(r"\[(\d+)\]", r"<span class='fz-ref'>[\1]</span>", esc(text))


def render_answer(answer: Answer) -> str:
    """An answer as chat HTML: its text with [n] markers, chips for its citations, a quiet meta line."""
    chips = "".join(
        f"<a class='fz-chip' href='#fz-cite={c.start}-{c.end}-{quote(c.file)}' title='{esc(c.label())}'>"
        f"[{c.n}] {esc(chip_label(c))}</a>"
        for c in answer.citations
    )
    t = answer.timings
    source = (f"{TABLE_LABEL}（表中数字）" if answer.provider == TABLE
              else f"{PROVIDERS[answer.provider].label if answer.provider in PROVIDERS else answer.provider} · {answer.model}")
    meta = (
        f"{esc(source)} · "
        f"检索 {t.retrieve_ms:.0f} ms · 首字 {t.first_token_ms:.0f} ms · 总计 {t.total_ms:.0f} ms"
    )
    parts = [answer_text(answer.answer)]
    if chips:
        parts.append(f"<div class='fz-chips'>{chips}</div>")
    parts.append(f"<div class='fz-meta'>{meta}</div>")
    return "\n\n".join(parts)


def render_passage(passage: dict, label: str = "", context: int = 400) -> str:
    """The passage around a citation, the quoted words in <mark>; … where the text goes on."""
    before, after = passage["before"], passage["after"]
    if len(before) >= context:
        before = "…" + before
    if len(after) >= context:
        after += "…"
    body = f"{esc(before)}<mark>{esc(passage['quote'])}</mark>{esc(after)}"
    return (
        "<div class='fz-passage'>"
        f"<div class='fz-passage-head'>{esc(label)}</div>"
        f"<div class='fz-passage-file'>{esc(passage['file'])}</div>"
        f"<div class='fz-passage-body'>{body}</div></div>"
    )


def user_message(question: str) -> dict:
    return {"role": "user", "content": esc(question)}


def bot_message(content: str) -> dict:
    return {"role": "assistant", "content": content}


def conversation_messages(conversation: Conversation) -> tuple[list[dict], dict[int, int]]:
    """The chat of a stored conversation, and which message shows which turn's answer."""
    messages, answered = [], {}
    for n, turn in enumerate(conversation.turns):
        messages += [user_message(turn.question), bot_message(render_answer(turn.answer))]
        answered[len(messages) - 1] = n
    return messages, answered


def conversation_choices(conversations: list[Conversation]) -> list[tuple[str, str]]:
    """(title, id) choices for the list, in the store's order (newest first)."""
    return [(c.title, c.id) for c in conversations]


def route_step(stream: AnswerStream, filters: dict) -> str:
    """「路由到 荣昌区 · 2024年」: where the question was looked up."""
    if stream.not_covered:
        return "不在知识库范围内"
    places = "、".join(stream.ask.districts) or "全部区县"
    years = filters.get("years") or stream.ask.years
    return f"路由到 {places}" + (f" · {'、'.join(f'{y}年' for y in years)}" if years else "")


def finished_steps(route: str, retrieved: str, answer: Answer) -> list[tuple[str, str]]:
    """The status line of a finished answer: each step with what it found or took."""
    t = answer.timings
    if answer.refused:
        checked = "未找到答案"
    elif answer.grounded:
        checked = f"核对数字 · {len(answer.citations)} 处引用"
    else:
        checked = "核对数字 · 未能核对的内容已删去"
    return [("done", route), ("done", retrieved), ("done", f"生成 · 首字 {t.first_token_ms:.0f} ms"),
            ("done", checked), ("done", f"完成 · 总计 {duration(t.total_ms)}")]


def duration(ms: float) -> str:
    """「44 ms」 under a second, 「1.2 秒」 from one on."""
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} 秒"


def error_text(err: Exception) -> str:
    """What went wrong and what to do, for the chat."""
    if not isinstance(err, RagError):
        return f"内部错误（{type(err).__name__}: {err}）：请点「重新生成」再试；仍出错时请查看服务器日志。"
    if isinstance(err, (LLMUnavailableError, ModelUnavailableError)):
        return f"{err} {NO_MODEL_HINT}"
    return str(err)


# ---- the tab ----------------------------------------------------------------------------


@dataclass
class ChatSession:
    """One browser tab's chat. Gradio hands every event of the tab this same object, so an answer
    being written sees at once that 停止 (or opening another conversation) ended it."""

    run: int = 0                  # bumped by each answer and by each stop: an answer of an older run yields no more
    answering: str | None = None  # the question being answered now
    partial: str = ""             # its text so far
    unanswered: str | None = None  # the last question shown without a stored answer: 重新生成 asks it again
    answered: dict[int, int] = field(default_factory=dict)  # chat message index → stored turn, for likes

    def stop(self) -> str | None:
        """End the answer being written (it is not stored); the question it was answering, if any."""
        question, self.answering = self.answering, None
        if question is not None:
            self.run += 1
            self.unanswered = question
        return question

    def opened(self, answered: dict[int, int]) -> None:
        """A conversation was opened: nothing to ask again, these messages hold stored answers."""
        self.stop()
        self.unanswered, self.answered = None, answered


@dataclass
class ChatTab:
    """What the rest of the app wires to: the filters the knowledge base fills."""

    district_filter: gr.Dropdown
    year_filter: gr.Dropdown


def chat_tab(demo: gr.Blocks, pipeline: Pipeline, files: ReportFiles, feedback: FeedbackStore) -> ChatTab:
    """Build the 问答 tab's components and events inside the current gr.Tab."""
    store = pipeline.conversations

    def filters_of(districts, years) -> dict:
        return {"districts": list(districts or []) or None, "years": [int(y) for y in years or []] or None}

    def buttons(busy: bool) -> tuple:
        """提问, 停止, 重新生成: while an answer is written only 停止 works."""
        return (gr.update(interactive=not busy, value="回答中…" if busy else "提问"),
                gr.update(interactive=busy), gr.update(interactive=not busy))

    def listing(selected: str | None) -> dict:
        return gr.update(choices=conversation_choices(store.list()), value=selected)

    def find(conversation_id: str | None) -> Conversation | None:
        if not conversation_id:
            return None
        try:
            return store.get(conversation_id)
        except ConversationNotFoundError:
            return None

    def write_answer(session: ChatSession, messages: list, conversation: Conversation, question: str,
                     filters: dict | None, provider: str, regenerate: bool = False):
        """Stream one answer into the last message, yielding (chat, status, list, *buttons); the
        answer is stored when it is written to its end."""
        run = session.run = session.run + 1
        session.answering, session.partial = question, ""
        skip = gr.skip()

        def failed(err: Exception, steps: list) -> tuple:
            """The text so far and what went wrong; 重新生成 will ask the question again."""
            session.answering, session.unanswered = None, question
            messages[-1] = bot_message(answer_text(session.partial) + notice("bad", "出错", error_text(err)))
            return messages, render_steps(steps), skip, *buttons(False)

        yield messages, render_steps([("active", "检索中…")]), listing(conversation.id), *buttons(True)
        started = time.perf_counter()
        try:
            stream = pipeline.converse(conversation.id, question, filters, provider, regenerate=regenerate)
        except Exception as err:  # noqa: BLE001 - the reason goes into the chat; the app goes on
            if session.run == run:
                yield failed(err, [("error", "检索失败")])
            return
        route = route_step(stream, filters or {})
        found = "从指标库查表" if stream.ready is not None else f"检索到 {len(stream.excerpts)} 段"
        retrieved = f"{found} · {(time.perf_counter() - started) * 1000:.0f} ms"
        yield skip, render_steps([("done", route), ("done", retrieved), ("active", "生成中…")]), *(skip,) * 4
        try:
            for delta in stream:
                if session.run != run:  # stopped: leave the stream unfinished, so nothing is stored
                    return
                session.partial += delta
                messages[-1] = bot_message(answer_text(session.partial) + CURSOR)
                yield messages, *(skip,) * 5
            answer = stream.answer
        except Exception as err:  # noqa: BLE001 - the reason goes into the chat; the app goes on
            if session.run == run:
                yield failed(err, [("done", route), ("done", retrieved), ("error", "生成失败")])
            return
        if session.run != run:
            return
        session.answering, session.unanswered = None, None
        messages[-1] = bot_message(render_answer(answer))
        session.answered[len(messages) - 1] = store.get(conversation.id).turn_count - 1
        yield messages, render_steps(finished_steps(route, retrieved, answer)), listing(conversation.id), \
            *buttons(False)

    def ask(question, messages, current, districts, years, provider, session: ChatSession, typed: bool):
        """Take a question (clearing the box it was typed in, once) and answer it in the open
        conversation, or in a new one titled by it. The box is never written to again meanwhile."""
        skip = gr.skip()
        if session.answering is not None:
            yield skip, skip, notice("info", "请稍候", BUSY_NOTICE), *(skip,) * 6
            return
        try:
            question = pipeline.check_question(question)
        except QuestionError as err:  # the box keeps the question, to be shortened or written
            messages = list(messages or []) + [bot_message(notice("warn", "无法提问", str(err)))]
            yield messages, skip, "", *(skip,) * 6
            return
        conversation = find(current) or store.create(question)
        messages = list(messages or []) + [user_message(question), bot_message(CURSOR)]
        answer = write_answer(session, messages, conversation, question, filters_of(districts, years), provider)
        chat, status, listed, *controls = next(answer)
        yield chat, "" if typed else skip, status, conversation.id, listed, conversation.title, *controls
        for chat, status, listed, *controls in answer:
            yield chat, skip, status, skip, listed, skip, *controls

    def ask_typed(question, messages, current, districts, years, provider, session):
        yield from ask(question, messages, current, districts, years, provider, session, typed=True)

    def ask_example(sample, messages, current, districts, years, provider, session):
        question = sample[0] if isinstance(sample, (list, tuple)) else sample
        yield from ask(question, messages, current, districts, years, provider, session, typed=False)

    def regenerate(current, districts, years, provider, session: ChatSession):
        """Answer again: the question last stopped or failed (with the filters set now), else the last
        stored one, in its place and with its own filters."""
        skip = gr.skip()
        if session.answering is not None:
            yield skip, notice("info", "请稍候", BUSY_NOTICE), *(skip,) * 4
            return
        conversation = find(current)
        if conversation is None or not (session.unanswered or conversation.turns):
            yield skip, notice("info", "提示", "还没有可以重新生成的回答：先提一个问题。"), *(skip,) * 4
            return
        messages, session.answered = conversation_messages(conversation)
        if session.unanswered:
            question, filters, again = session.unanswered, filters_of(districts, years), False
            messages += [user_message(question), bot_message(CURSOR)]
        else:
            question, filters, again = conversation.turns[-1].question, None, True
            messages[-1] = bot_message(CURSOR)
        yield from write_answer(session, messages, conversation, question, filters, provider, regenerate=again)

    def stop(messages, session: ChatSession):
        """停止: end the answer being written; the chat keeps its text so far, marked 「（已停止）」."""
        partial = session.partial
        if session.stop() is None:
            return gr.skip(), gr.skip(), *buttons(False)
        messages = list(messages or [])
        if messages and messages[-1]["role"] == "assistant":
            messages[-1] = bot_message(answer_text(partial) + STOPPED)
        status = notice("info", "已停止", "这个回答没有保存；点「重新生成」可再回答一次。")
        return messages, status, *buttons(False)

    def show(conversation: Conversation | None, session: ChatSession, note: str = "") -> tuple:
        """The outputs `shown` for a conversation opened (None: a new one), any delete question closed."""
        messages, answered = conversation_messages(conversation) if conversation else ([], {})
        session.opened(answered)
        selected = conversation.id if conversation else None
        return (messages, "", selected, listing(selected), conversation.title if conversation else "",
                PASSAGE_HINT, note, gr.update(visible=False), *buttons(False))

    def newest() -> Conversation | None:
        listed = store.list()
        return find(listed[0].id) if listed else None

    def restore(current, session: ChatSession):
        """On load: the conversation this browser had open, else the newest, else a new one."""
        return show(find(current) or newest(), session)

    def open_conversation(conversation_id, session: ChatSession):
        return show(find(conversation_id), session)

    def new_conversation(session: ChatSession):
        return show(None, session)

    def rename(current, title):
        if not current:
            return notice("warn", "提示", "先提一个问题或打开一个对话，再重命名。"), gr.skip()
        try:
            conversation = store.rename(current, title or "")
        except RagError as err:
            return notice("bad", "未重命名", str(err)), gr.skip()
        return notice("ok", "已重命名", conversation.title), listing(current)

    def ask_delete(current):
        conversation = find(current)
        if conversation is None:
            return notice("warn", "提示", "没有打开的对话可以删除。"), gr.update(visible=False)
        question = notice("warn", "确认", f"删除对话「{conversation.title}」（{conversation.turn_count} 轮）？删除后无法恢复。")
        return question, gr.update(visible=True)

    def delete(current, session: ChatSession):
        if current:
            try:
                store.delete(current)
            except ConversationNotFoundError:
                pass  # deleted meanwhile: what is wanted
        return show(newest(), session, notice("ok", "已删除", "对话已删除。"))

    def on_like(current, session: ChatSession, data: gr.LikeData):
        """Store a like or dislike of a stored answer with its question, history and filters; say so
        on the status line."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        turn_number = session.answered.get(index)
        conversation = find(current)
        if turn_number is None or conversation is None or turn_number >= len(conversation.turns) \
                or data.liked not in (True, False):
            return gr.skip()
        turn = conversation.turns[turn_number]
        feedback.add("up" if data.liked else "down", turn.question, turn.answer,
                     conversation.history()[:turn_number], turn.filters)
        return notice("ok", "已记录", "谢谢你的反馈。")

    def show_passage(data: gr.EventData):
        """The passage of a clicked chip; the hint when called with no chip (as an API call would)."""
        try:
            file, start, end = data.file, int(data.start), int(data.end)
        except (AttributeError, TypeError, ValueError):
            return PASSAGE_HINT
        try:
            passage = files.passage(file, start, end, context=PASSAGE_CONTEXT)
        except RagError as err:
            return f"<div class='fz-passage'>{notice('bad', '无法显示原文', str(err))}</div>"
        return render_passage(passage, getattr(data, "label", ""), PASSAGE_CONTEXT)

    session = gr.State(ChatSession())  # copied for each browser tab
    current = gr.BrowserState(None, storage_key=CONVERSATION_KEY)
    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            new = gr.Button("新对话", variant="primary", size="sm", elem_id="fz-new")
            conversations = gr.Radio(label="历史对话", choices=[], elem_id="fz-conversations")
            with gr.Accordion("管理对话", open=False, elem_id="fz-manage"):
                title = gr.Textbox(label="标题", max_lines=1, elem_id="fz-title")
                with gr.Row():
                    rename_button = gr.Button("重命名", size="sm", elem_id="fz-rename")
                    delete_button = gr.Button("删除对话", size="sm", variant="stop", elem_id="fz-delete")
                with gr.Column(visible=False, elem_classes="fz-confirm", elem_id="fz-delete-confirm") as confirm:
                    confirm_text = gr.HTML(js_on_load=None)
                    with gr.Row():
                        confirm_delete = gr.Button("确认删除", size="sm", variant="stop", elem_id="fz-delete-yes")
                        cancel_delete = gr.Button("取消", size="sm", elem_id="fz-delete-no")
            conversation_note = gr.HTML(js_on_load=None, elem_id="fz-conversation-note")
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(
                label="对话", elem_id="fz-chat", height=500, buttons=["copy", "copy_all"],
                group_consecutive_messages=False, placeholder="在下方输入问题，或点击一个示例问题。",
            )
            status = gr.HTML(js_on_load=None, elem_id="fz-status")
            with gr.Row():
                question = gr.Textbox(show_label=False, placeholder="输入问题，回车发送", scale=5, max_lines=4,
                                      elem_id="fz-question")
                send = gr.Button("提问", variant="primary", scale=0, min_width=110, elem_id="fz-send")
                stop_button = gr.Button("停止", variant="stop", scale=0, min_width=70, interactive=False,
                                        elem_id="fz-stop")
                regenerate_button = gr.Button("重新生成", scale=0, min_width=110, elem_id="fz-regenerate")
            examples = gr.Dataset(components=[question], samples=[[q] for q in EXAMPLES], label="示例问题",
                                  elem_id="fz-examples")
        with gr.Column(scale=2):
            with gr.Row():
                district_filter = gr.Dropdown(label="区县", multiselect=True, choices=[], allow_custom_value=True,
                                              scale=3, elem_id="fz-district-filter")
                year_filter = gr.Dropdown(label="年份", multiselect=True, choices=[], scale=2,
                                          elem_id="fz-year-filter")
            passage = gr.HTML(PASSAGE_HINT, js_on_load=CHIP_JS, elem_id="fz-passage", container=True, padding=True,
                              label="原文", show_label=True)
            with gr.Accordion("设置", open=False):
                provider = gr.Radio(choices=[(p.label, p.name) for p in PROVIDERS.values()],
                                    value=pipeline.settings.llm.provider, label="回答方式", elem_id="fz-provider")

    answer_buttons = [send, stop_button, regenerate_button]
    ask_inputs = [chatbot, current, district_filter, year_filter, provider, session]
    ask_outputs = [chatbot, question, status, current, conversations, title, *answer_buttons]
    shown = [chatbot, status, current, conversations, title, passage, conversation_note, confirm, *answer_buttons]
    private = {"api_visibility": "private", "show_progress": "hidden"}
    answering = [
        question.submit(ask_typed, [question, *ask_inputs], ask_outputs, trigger_mode="multiple", **private),
        send.click(ask_typed, [question, *ask_inputs], ask_outputs, trigger_mode="multiple", **private),
        examples.click(ask_example, [examples, *ask_inputs], ask_outputs, trigger_mode="multiple", **private),
        regenerate_button.click(regenerate, [current, district_filter, year_filter, provider, session],
                                [chatbot, status, conversations, *answer_buttons], trigger_mode="multiple",
                                **private),
    ]
    stop_button.click(stop, [chatbot, session], [chatbot, status, *answer_buttons], cancels=answering, **private)
    demo.load(restore, [current, session], shown, **private)
    conversations.input(open_conversation, [conversations, session], shown, cancels=answering, **private)
    for start_anew in (new.click, chatbot.clear):  # the chat's bin starts a new one; the old one stays listed
        start_anew(new_conversation, session, shown, cancels=answering, **private)
    rename_button.click(rename, [current, title], [conversation_note, conversations], **private)
    delete_button.click(ask_delete, current, [confirm_text, confirm], **private)
    cancel_delete.click(lambda: gr.update(visible=False), None, confirm, **private)
    confirm_delete.click(delete, [current, session], shown, cancels=answering, **private)
    chatbot.like(on_like, [current, session], status, **private)
    passage.click(show_passage, None, passage, **private)
    return ChatTab(district_filter, year_filter)
