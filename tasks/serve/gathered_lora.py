"""Mixed-adapter batches in one pass per layer (the idea of Punica's SGMV, in plain torch): each row's LoRA
A and B matrices are gathered from the adapters' stacked weights and applied with two batched matmuls,
instead of peft's loop over the adapters of the batch (which costs one pass per distinct adapter per layer).

Installed on a PeftModel's LoRA linear layers by `install`; a layer whose adapters differ in rank, use
DoRA or another variant keeps peft's own mixed-batch forward.
"""

from __future__ import annotations

import types

BASE = "__base__"


def _stacked(layer):
    """(names, A stacked (U, in, r), B stacked (U, r, out), scalings (U,)) over every adapter of the layer,
    cached until its adapters change; None when their ranks differ or one is a variant (DoRA, ...)."""
    import torch

    names = tuple(layer.lora_A.keys())
    key = (names, tuple(id(layer.lora_A[n].weight) for n in names), tuple(id(layer.lora_B[n].weight) for n in names))
    cached = layer.__dict__.get("_gathered_cache")
    if cached is not None and cached[0] == key:
        return cached[1]
    variants = getattr(layer, "lora_variant", {})
    if len({layer.r[n] for n in names}) != 1 or any(n in variants or layer.use_dora.get(n) for n in names):
        stacked = None
    else:
        a = torch.stack([layer.lora_A[n].weight.t() for n in names])
        b = torch.stack([layer.lora_B[n].weight.t() for n in names])
        scale = torch.tensor([float(layer.scaling[n]) for n in names], dtype=a.dtype, device=a.device)
        stacked = ({n: i for i, n in enumerate(names)}, a, b, scale)
    layer.__dict__["_gathered_cache"] = (key, stacked)
    return stacked


def _gathered_forward(self, x, *args, adapter_names, **kwargs):
    import torch

    stacked = _stacked(self)
    if stacked is None:
        return self._peft_mixed_batch_forward(x, *args, adapter_names=adapter_names, **kwargs)
    from peft.tuners.lora.layer import VARIANT_KWARG_KEYS

    for key in VARIANT_KWARG_KEYS:     # not the base layer's
        kwargs.pop(key, None)
    result = self.base_layer(x, *args, **kwargs)
    position, a, b, scale = stacked
    if not any(n in position for n in adapter_names):
        return result
    index = torch.tensor([position.get(n, 0) for n in adapter_names], device=x.device)
    active = torch.tensor([n in position for n in adapter_names], dtype=a.dtype, device=x.device)
    rows = x.to(a.dtype)
    squeeze = rows.dim() == 2
    if squeeze:
        rows = rows[:, None, :]
    delta = torch.bmm(torch.bmm(rows, a[index]), b[index]) * (scale[index] * active)[:, None, None]
    if squeeze:
        delta = delta[:, 0, :]
    return result + delta.to(result.dtype)


def install(model) -> int:
    """Use the gathered forward on every LoRA linear layer of a PeftModel; how many layers it covers."""
    from peft.tuners.lora import Linear

    count = 0
    for module in model.modules():
        if isinstance(module, Linear) and not hasattr(module, "_peft_mixed_batch_forward"):
            module._peft_mixed_batch_forward = module._mixed_batch_forward
            module._mixed_batch_forward = types.MethodType(_gathered_forward, module)
            count += 1
    return count
