"""HTML pieces both tabs show, and the app's CSS.

Marks are CSS (a badge with a word in it, a ring, a tick drawn with borders), never emoji:
a server without an emoji font shows them all the same.
"""

from __future__ import annotations

import html

CSS = """
.fz-chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.fz-chip { display: inline-block; padding: 2px 10px; border-radius: 999px; cursor: pointer;
  background: #eef2ff; border: 1px solid #c7d2fe; color: #3730a3 !important; font-size: 0.85em; line-height: 1.6;
  text-decoration: none !important; }
.fz-chip:hover { background: #e0e7ff; }
.fz-chip.fz-active { background: #c7d2fe; border-color: #6366f1; }
.fz-ref { color: #6366f1; font-size: 0.8em; vertical-align: super; }
.fz-meta, .fz-quiet, .fz-quiet p { color: #9ca3af !important; font-size: 0.78em !important; }
.fz-meta { margin-top: 6px; }
.fz-passage { font-size: 0.95em; line-height: 1.8; }
.fz-passage.fz-empty { color: #9ca3af; padding: 12px 0; }
.fz-passage-head { font-weight: 600; margin-bottom: 2px; }
.fz-passage-file { color: #9ca3af; font-size: 0.8em; margin-bottom: 8px; }
.fz-passage-body { white-space: pre-wrap; max-height: 480px; overflow-y: auto; }
.fz-passage mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
.fz-error { color: #b91c1c; }
.fz-badge { display: inline-block; padding: 0 6px; margin-right: 6px; border-radius: 4px; font-size: 0.8em;
  font-weight: 600; line-height: 1.7; border: 1px solid; vertical-align: baseline; }
.fz-badge-ok { color: #166534; background: #dcfce7; border-color: #86efac; }
.fz-badge-bad { color: #991b1b; background: #fee2e2; border-color: #fca5a5; }
.fz-badge-warn { color: #92400e; background: #fef3c7; border-color: #fcd34d; }
.fz-badge-info { color: #3730a3; background: #eef2ff; border-color: #c7d2fe; }
.fz-lines { margin: 0; padding: 0; list-style: none; line-height: 2; }
.fz-status { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 14px; min-height: 1.6em;
  font-size: 0.85em; color: #4b5563; }
.fz-step { display: inline-flex; align-items: center; gap: 6px; }
.fz-step::before { content: ''; box-sizing: border-box; display: inline-block; width: 12px; height: 12px;
  border-radius: 50%; border: 2px solid #d1d5db; }
.fz-step-done::before { width: 6px; height: 11px; border-radius: 0; border: solid #16a34a; border-width: 0 2px 2px 0;
  transform: rotate(45deg); margin: 0 3px 3px 3px; }
.fz-step-active::before { border-color: #6366f1; border-right-color: transparent; animation: fz-spin 0.8s linear infinite; }
.fz-step-error::before { border-color: #dc2626; background: #dc2626; }
.fz-step-error { color: #b91c1c; }
@keyframes fz-spin { to { transform: rotate(360deg); } }
.fz-cursor { display: inline-block; width: 0.5em; height: 1em; margin-left: 2px; vertical-align: text-bottom;
  background: currentColor; opacity: 0.6; animation: fz-blink 1s steps(1) infinite; }
@keyframes fz-blink { 50% { opacity: 0; } }
.fz-stopped { color: #9ca3af; font-size: 0.9em; }
#fz-conversations { max-height: 440px; overflow-y: auto; }
#fz-conversations label { width: 100%; }
.fz-confirm { border: 1px solid #fca5a5; border-radius: 6px; padding: 6px 8px; background: #fef2f2; }
.fz-tree, .fz-tree ul { margin: 0; padding-left: 1.2em; line-height: 1.8; }
.fz-tree-count { color: #9ca3af; font-size: 0.8em; margin-left: 6px; }
.fz-report-head { font-weight: 600; margin-bottom: 4px; }
.fz-chunks { max-height: 420px; overflow-y: auto; }
.fz-chunk { border-top: 1px solid #e5e7eb; padding: 6px 0; }
.fz-chunk-head { color: #6b7280; font-size: 0.8em; }
.fz-chunk-text { white-space: pre-wrap; font-size: 0.9em; line-height: 1.7; }
"""

BADGE_KINDS = ("ok", "bad", "warn", "info")
STEP_STATES = ("done", "active", "error")


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def badge(kind: str, word: str) -> str:
    """A coloured word (「已导入」「错误」) standing where an emoji would; kind is one of BADGE_KINDS."""
    if kind not in BADGE_KINDS:
        raise ValueError(f"badge kind must be one of {', '.join(BADGE_KINDS)}, not {kind!r}")
    return f"<span class='fz-badge fz-badge-{kind}'>{esc(word)}</span>"


def notice(kind: str, word: str, message: str) -> str:
    """A badge and an escaped message: how an error or a result reads inline."""
    style = " class='fz-error'" if kind == "bad" else ""
    return f"{badge(kind, word)}<span{style}>{esc(message)}</span>"


def render_lines(lines: list[str]) -> str:
    """Lines of HTML (one result per uploaded file, …) as a list; "" when there are none."""
    return f"<ul class='fz-lines'>{''.join(f'<li>{line}</li>' for line in lines)}</ul>" if lines else ""


def render_steps(steps: list[tuple[str, str]]) -> str:
    """A status line of (state, text) steps, state one of STEP_STATES: a tick, a spinning ring, a red dot."""
    for state, _ in steps:
        if state not in STEP_STATES:
            raise ValueError(f"step state must be one of {', '.join(STEP_STATES)}, not {state!r}")
    return "<div class='fz-status'>" + "".join(
        f"<span class='fz-step fz-step-{state}'>{esc(text)}</span>" for state, text in steps) + "</div>"
