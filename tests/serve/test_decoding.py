"""Continuous batching: a row that joins a running batch (shorter or longer prompt than the cache) or leaves it
early decodes exactly what it decodes alone, greedy or seeded."""

from __future__ import annotations

import pytest

from tasks.serve.decoding import Decoder, Sampling


class Row:
    def __init__(self, prompt_ids, max_new_tokens, sampling=Sampling(), adapter="default"):
        self.prompt_ids, self.max_new_tokens, self.sampling, self.adapter = prompt_ids, max_new_tokens, sampling, adapter
        self.tokens, self.reason, self.stop_after = [], None, None

    def emit(self, token):
        self.tokens.append(token.id)

    def done(self, reason):
        self.reason = reason

    def cancelled(self):
        return self.stop_after is not None and len(self.tokens) >= self.stop_after


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(3)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    return peft, AutoTokenizer.from_pretrained(tiny_model_dir)


def alone(model, tokenizer, row: Row) -> list[int]:
    solo = Row(row.prompt_ids, row.max_new_tokens, row.sampling)
    decoder = Decoder(model, tokenizer)
    decoder.admit([solo])
    while decoder.rows:
        decoder.step()
    return solo.tokens


def test_rows_joining_and_leaving_a_running_batch_decode_what_they_decode_alone(model):
    peft, tokenizer = model
    ids = lambda text: [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    first = Row(ids("Short ticket"), 20)
    longer = Row(ids("A much longer ticket about a refund that has not arrived after two weeks of waiting"), 12)
    seeded = Row(ids("Sampled"), 10, Sampling(temperature=1.2, top_p=0.9, seed=11))
    quitter = Row(ids("Cancelled half-way"), 20)
    quitter.stop_after = 4
    decoder = Decoder(peft, tokenizer)
    decoder.admit([first])
    for _ in range(3):
        decoder.step()
    decoder.admit([longer, quitter])          # a prompt longer than the running cache, and a short one
    for _ in range(5):
        decoder.step()
    decoder.admit([seeded])
    while decoder.rows:
        decoder.step()
    for row in (first, longer, seeded):
        assert row.tokens == alone(peft, tokenizer, row)
        assert row.reason in ("stop", "length")
    assert quitter.reason == "cancelled" and len(quitter.tokens) == 4
    assert quitter.tokens == alone(peft, tokenizer, Row(quitter.prompt_ids, 4))


def test_the_gathered_mixed_batch_forward_equals_pefts_and_falls_back_for_other_ranks(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tasks.serve.gathered_lora import install

    torch.manual_seed(4)
    config = lambda r: LoraConfig(r=r, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config(4), adapter_name="a").eval()
    model.add_adapter("b", config(4))
    ids = torch.randint(3, 500, (4, 9))
    names = ["a", "b", "__base__", "a"]
    with torch.inference_mode():
        reference = model(input_ids=ids, adapter_names=names).logits
        assert install(model) == 12
        gathered = model(input_ids=ids, adapter_names=names).logits
        assert torch.allclose(gathered, reference, atol=1e-4)
        model.add_adapter("c", config(8))          # another rank: peft's own path, same answer
        install(model)
        assert torch.allclose(model(input_ids=ids, adapter_names=names).logits, reference, atol=1e-4)
