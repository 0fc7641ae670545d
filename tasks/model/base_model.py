"""Loading the base model and its tokenizer: the same from_pretrained path for a hub id or a local
folder, on the process's device, with 4-bit quantization for QLoRA."""

from __future__ import annotations

import importlib.util
import os

from adapterops.config import LoraConfig
from adapterops.errors import AdapterOpsError
from adapterops.refs import BaseModelRef
from tasks.model.attention import attention_implementation


def detect_device() -> str:
    """'cuda:N' for this process's GPU (LOCAL_RANK under accelerate launch / torchrun), else 'cpu'."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def quantization_config(lora: LoraConfig, device: str):
    """A 4-bit NF4 config for QLoRA, or None; refuses QLoRA where it cannot run."""
    if not lora.qlora:
        return None
    if not device.startswith("cuda"):
        raise AdapterOpsError("lora.qlora needs a CUDA GPU; turn it off to train on CPU.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise AdapterOpsError("lora.qlora needs bitsandbytes: `pip install bitsandbytes` on the GPU worker, or turn it off.")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_base_model(ref: BaseModelRef, trust_remote_code: bool = False, device: str = "cpu",
                    attention: str = "auto", quantization=None, packing: bool = False):
    """Model and tokenizer through the same from_pretrained path for a hub id or a local folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    revision = None if ref.revision.startswith("sha256:") else ref.revision
    extra = {"quantization_config": quantization, "device_map": {"": device}} if quantization is not None else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=revision, trust_remote_code=trust_remote_code)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = AutoModelForCausalLM.from_pretrained(ref.path, revision=revision, dtype=dtype,
                                                     trust_remote_code=trust_remote_code,
                                                     attn_implementation=attention_implementation(attention, device, packing),
                                                     **extra)
    except OSError as error:
        raise AdapterOpsError(f"Cannot load base model {ref.path!r} (revision {ref.revision}): {str(error).splitlines()[0]} "
                              "Point base_model at a local folder or a hub id present in the local cache.") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return (model if quantization is not None else model.to(device)), tokenizer
