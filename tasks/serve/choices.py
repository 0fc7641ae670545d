"""A choice's text as it is generated: decoded token by token, cut at the first stop sequence, with the part
that may still become a stop sequence or a tool call held back, so a stream shows exactly what the finished
answer says (the streamed text equals the non-streamed text by construction)."""

from __future__ import annotations

TOOL_CALL_MARKERS = {"hermes": "<tool_call>", "none": None}


def _held_suffix(text: str, needles: list[str]) -> int:
    """How many trailing characters of text could be the start of one of the needles."""
    longest = 0
    for needle in needles:
        for size in range(min(len(needle) - 1, len(text)), longest, -1):
            if needle.startswith(text[-size:]):
                longest = size
                break
    return longest


class ChoiceText:
    """One choice's text so far: `add(token_id)` returns the new text that is safe to show."""

    def __init__(self, tokenizer, stop: list[str] | None, tool_marker: str | None = None):
        self.tokenizer, self.stop = tokenizer, [s for s in (stop or []) if s]
        self.marker = tool_marker
        self.ids: list[int] = []
        self.text = ""
        self.shown = 0
        self.stopped = False       # a stop sequence was found: generation should end
        self.stop_tokens = 0       # tokens generated when the stop sequence was found

    def add(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):      # half a UTF-8 character: wait for the rest
            return ""
        self.text = text
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            self.text = text = text[:min(cuts)]
            self.stopped, self.stop_tokens = True, len(self.ids)
            visible = len(text)
        else:
            visible = len(text) - _held_suffix(text, self.stop + ([self.marker] if self.marker else []))
        if self.marker and self.marker in text:
            visible = min(visible, text.find(self.marker))
        delta = text[self.shown:visible] if visible > self.shown else ""
        self.shown = max(self.shown, visible)
        return delta

    @property
    def tokens(self) -> int:
        """Completion tokens to report: those generated until the stop sequence, else all of them."""
        return self.stop_tokens if self.stopped else len(self.ids)

    def rest(self, final_text: str) -> str:
        """What a stream still has to send once generation ended, given the choice's final content."""
        shown = self.text[:self.shown]
        return final_text[len(shown):] if final_text.startswith(shown) else ""
