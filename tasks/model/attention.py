"""The attention kernel a run uses, and `sdpa_packed`: causal sdpa per packed example, so examples
laid end to end in a row never see each other."""

from __future__ import annotations

import importlib.util

PACKED_SDPA = "sdpa_packed"


def attention_implementation(requested: str, device: str, packing: bool = False) -> str:
    """The attention kernel for 'auto': examples packed into a row must not see each other.

    flash_attention_2 on CUDA when installed (varlen: isolated, each example at its own cost);
    else for packed rows 'sdpa_packed' (below: isolated, one causal sdpa call per example);
    else sdpa. Explicit 'sdpa'/'eager' isolate packed examples with a block-diagonal mask.
    """
    if requested != "auto":
        return requested
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    if packing:
        register_packed_sdpa()
        return PACKED_SDPA
    return "sdpa"


def packed_segments(position_ids) -> list[list[tuple[int, int]]]:
    """(start, end) of each example in each row: a new example starts where its position id is 0."""
    width = position_ids.shape[-1]
    rows = []
    for row in position_ids.tolist():
        starts = [i for i, p in enumerate(row) if p == 0] or [0]
        rows.append(list(zip(starts, starts[1:] + [width])))
    return rows


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Causal sdpa run separately on each packed example: isolation at each example's own cost.

    Registered without a mask function, so transformers builds no mask: rows are either packed
    (position ids restart per example) or right-padded (causal attention never reaches the padding).
    """
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    position_ids = kwargs.pop("position_ids", None)
    if position_ids is None or attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    segments = packed_segments(position_ids.expand(query.shape[0], -1))
    rows = []
    for r, row in enumerate(segments):
        parts = [torch.nn.functional.scaled_dot_product_attention(
            query[r:r + 1, :, s:e], key[r:r + 1, :, s:e], value[r:r + 1, :, s:e], is_causal=e - s > 1,
            dropout_p=dropout if module.training else 0.0, scale=scaling) for s, e in row]
        rows.append(torch.cat(parts, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def register_packed_sdpa() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
