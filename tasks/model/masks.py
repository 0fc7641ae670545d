"""Which tokens of a conversation are trained: the chat template renders it prefix by prefix.

For each assistant turn k the template renders the history before it with the assistant's turn opened
(`before`) and the history including it (`after`); the turn's tokens are what `after` adds to `before`, up to
its end-of-turn token (trailing whitespace after it opens the next turn and is context). Every `after` must be
the start of the whole conversation's rendering, and every `before` the start of its `after`: then the pieces
concatenate to the full rendering and no `{% generation %}` marker is needed. A template for which that fails
(e.g. one that rewrites earlier turns once a later one exists) is refused with one error naming it and the turn.

Labels cover the tokens of assistant turns whose weight is not 0 (content, tool calls, end-of-turn token);
system, user and tool tokens, the opening of each assistant turn and weight-0 turns are context.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapterops.errors import AdapterOpsError
from tasks.model.prompts import conversation_text, prompt_token_ids, template_digest
from tasks.records.conversation import Conversation

IGNORE = -100


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool
    turn: int | None = None    # the assistant message's index, for trained and weight-0 assistant pieces


def template_name(tokenizer) -> str:
    """How an error names a template: the tokenizer's model and the template's digest."""
    name = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    return f"{name} (chat template {template_digest(tokenizer.chat_template)[:19]})"


def _refuse(tokenizer, conversation: Conversation, turn: int, what: str, record_id: str | None) -> AdapterOpsError:
    role = conversation.messages[turn].role
    where = f" of record {record_id}" if record_id is not None else ""
    return AdapterOpsError(
        f"The chat template of {template_name(tokenizer)} does not render conversations prefix by prefix: at message "
        f"{turn} ({role}){where}, {what}. Its assistant tokens cannot be told apart reliably, so training is refused. "
        "Use a template whose earlier turns render the same whatever follows them (train.chat_template).")


def conversation_segments(tokenizer, conversation: Conversation, record_id: str | None = None) -> list[Segment]:
    """The rendering up to the last trained assistant turn, cut into context and assistant pieces; [] when no
    turn is trained. Raises AdapterOpsError when the template does not render prefix by prefix."""
    trained = set(conversation.trained_turns())
    if not trained:
        return []
    messages, tools = conversation.openai(), list(conversation.tools) or None
    full = conversation_text(tokenizer, messages, tools, add_generation_prompt=False)
    segments, done = [], ""
    for k in range(max(trained) + 1):
        if messages[k]["role"] != "assistant":
            continue
        before = conversation_text(tokenizer, messages[:k], tools, add_generation_prompt=True) if k else ""
        after = conversation_text(tokenizer, messages[:k + 1], tools, add_generation_prompt=False)
        if not before.startswith(done):
            raise _refuse(tokenizer, conversation, k, "the history rendered with the assistant's turn opened does not "
                          "start with the rendering up to the previous assistant turn", record_id)
        if not after.startswith(before):
            raise _refuse(tokenizer, conversation, k, "the rendering with this turn does not start with the rendering "
                          "of the history before it (with the assistant's turn opened)", record_id)
        if not full.startswith(after):
            raise _refuse(tokenizer, conversation, k, "the rendering up to this turn is not the start of the whole "
                          "conversation's rendering", record_id)
        piece = after[len(before):]
        body = piece.rstrip()
        segments += [Segment(before[len(done):], False), Segment(body, k in trained, k)]
        if len(body) < len(piece):
            segments.append(Segment(piece[len(body):], False))
        done = after
    segments = [s for s in segments if s.text]
    while segments and not segments[-1].trained:   # what follows the last trained turn teaches nothing
        segments.pop()
    return segments


def segment_ids(tokenizer, segments: list[Segment]) -> tuple[list[int], list[int]]:
    """(input ids, labels): BOS unless the template renders it, each piece tokenized on its own, labels on the
    trained pieces only. Tokenizing by piece keeps an assistant turn's first token what generation starts from."""
    bos = tokenizer.bos_token_id
    ids, labels = ([bos], [IGNORE]) if bos is not None else ([], [])
    for segment in segments:
        piece = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and piece and piece[0] == bos:   # the template renders BOS itself (Llama-3)
            piece = piece[1:]
        ids += piece
        labels += piece if segment.trained else [IGNORE] * len(piece)
    return ids, labels


def conversation_ids(tokenizer, conversation: Conversation, prompt_template: str,
                     record_id: str | None = None) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one conversation with the loss on its trained assistant turns.

    Without a chat template only the one-turn case renders (by prompt_template, as training always did)."""
    if getattr(tokenizer, "chat_template", None):
        return segment_ids(tokenizer, conversation_segments(tokenizer, conversation, record_id))
    if not conversation.is_one_turn():
        raise AdapterOpsError(
            f"The base model {getattr(tokenizer, 'name_or_path', '')} has no chat template, so record "
            f"{record_id} (a conversation with a system prompt, several turns or tools) cannot be rendered; "
            "choose a base model with a chat template or set train.chat_template.")
    user, assistant = conversation.messages
    prompt_ids = prompt_token_ids(tokenizer, user.content, prompt_template)
    completion_ids = tokenizer(assistant.content, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids


def trained_pieces(tokenizer, ids: list[int], labels: list[int]) -> list[tuple[str, bool]]:
    """The example's text in runs of (text, trained): what `adapterops inspect` shows a person."""
    pieces, run, trained = [], [], None
    for token, label in zip(ids, labels):
        now = label != IGNORE
        if run and now != trained:
            pieces.append((tokenizer.decode(run), trained))
            run = []
        run.append(token)
        trained = now
    if run:
        pieces.append((tokenizer.decode(run), trained))
    return pieces
