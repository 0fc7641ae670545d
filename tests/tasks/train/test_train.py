import torch

from adapterops.config import LoraConfig, TrainConfig
from adapterops.refs import BaseModelRef
from tasks.evaluate.run import per_example_loss
from tasks.model.base_model import load_base_model
from tasks.train.recipe import train_lora, wrap_with_lora
from tasks.train.sft_data import IGNORE, tokenize_examples

RECORDS = [{"prompt": f"Ticket {i}: my invoice is wrong", "completion": f"Triage: billing | priority: normal {i}"}
           for i in range(12)]
CFG = TrainConfig(max_steps=4, batch_size=4, max_length=96, warmup_steps=1)


def load(tiny_model_dir):
    return load_base_model(BaseModelRef("tiny", str(tiny_model_dir), "sha256:x"))


def test_loss_is_on_completion_tokens_only_and_truncation_is_counted(tiny_model_dir):
    _, tokenizer = load(tiny_model_dir)
    tokenizer.chat_template = None   # the configured prompt template renders (a base without a chat template)
    examples, truncated = tokenize_examples(RECORDS[:1], tokenizer, "Q: {prompt}\nA: ", max_length=512)
    prompt_len = 1 + len(tokenizer("Q: " + RECORDS[0]["prompt"] + "\nA: ", add_special_tokens=False)["input_ids"])
    labels = examples[0].labels
    assert truncated == 0
    assert all(label == IGNORE for label in labels[:prompt_len]) and IGNORE not in labels[prompt_len:]
    assert labels[-1] == tokenizer.eos_token_id
    _, truncated = tokenize_examples(RECORDS[:3], tokenizer, "Q: {prompt}\nA: ", max_length=16)
    assert truncated == 3


def test_cpu_training_is_reproducible_bit_for_bit_and_changes_only_lora(tiny_model_dir):
    runs = []
    for _ in range(2):
        model, tokenizer = load(tiny_model_dir)
        examples, _ = tokenize_examples(RECORDS, tokenizer, CFG.prompt_template, CFG.max_length)
        model = wrap_with_lora(model, LoraConfig(r=4, alpha=8), seed=CFG.seed)
        base_before = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
        history = train_lora(model, tokenizer, examples, CFG)
        runs.append((history, {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}))
    assert [h["loss"] for h in runs[0][0]] == [h["loss"] for h in runs[1][0]]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    after = model.state_dict()
    assert all(torch.equal(before, after[k]) for k, before in base_before.items())


def test_disabled_adapter_gives_the_base_model_loss(tiny_model_dir):
    model, tokenizer = load(tiny_model_dir)
    examples, _ = tokenize_examples(RECORDS[:4], tokenizer, CFG.prompt_template, CFG.max_length)
    base_losses = per_example_loss(model, examples, tokenizer.pad_token_id)
    model = wrap_with_lora(model, LoraConfig(r=4, alpha=8), seed=1)
    train_lora(model, tokenizer, examples, CFG)
    assert per_example_loss(model, examples, tokenizer.pad_token_id, adapter=None) == base_losses
    assert per_example_loss(model, examples, tokenizer.pad_token_id, adapter="default") != base_losses


def test_packed_rows_restart_positions_and_keep_examples_apart(tiny_model_dir):
    from tasks.train.sft_data import collate, collate_packed, pack_rows

    model, tokenizer = load(tiny_model_dir)
    examples, _ = tokenize_examples(RECORDS[:5] + [{"prompt": "short", "completion": "ok"}], tokenizer,
                                    CFG.prompt_template, CFG.max_length)
    packed = collate_packed(examples, tokenizer.pad_token_id)
    assert packed["input_ids"].shape == (1, sum(len(e.input_ids) for e in examples))
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert starts == [sum(len(e.input_ids) for e in examples[:i]) for i in range(len(examples))]
    assert all(len(row) >= 1 and sum(len(e.input_ids) for e in row) <= 120 for row in pack_rows(examples, 120))
    ids, mask, labels = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        padded_loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        packed_loss = model(**packed, use_cache=False).loss
        rows_loss = model(**collate_packed(examples, tokenizer.pad_token_id, capacity=120), use_cache=False).loss
    # Equal losses: no token attended across an example boundary (block-diagonal mask under sdpa).
    assert torch.allclose(packed_loss, padded_loss, atol=1e-5) and torch.allclose(rows_loss, padded_loss, atol=1e-5)
    per_example, _ = load_base_model(BaseModelRef("tiny", str(tiny_model_dir), "sha256:x"), packing=True)
    assert per_example.config._attn_implementation == "sdpa_packed"
    with torch.no_grad():
        for capacity in (0, 120):
            loss = per_example(**collate_packed(examples, tokenizer.pad_token_id, capacity), use_cache=False).loss
            assert torch.allclose(loss, padded_loss, atol=1e-5)


def test_packed_and_padded_training_follow_the_same_curve(tiny_model_dir):
    curves = []
    for packing in (True, False):
        model, tokenizer = load_base_model(BaseModelRef("tiny", str(tiny_model_dir), "sha256:x"), packing=packing)
        examples, _ = tokenize_examples(RECORDS, tokenizer, CFG.prompt_template, CFG.max_length)
        model = wrap_with_lora(model, LoraConfig(r=4, alpha=8), seed=CFG.seed)
        curves.append([h["loss"] for h in train_lora(model, tokenizer, examples, CFG.model_copy(update={"packing": packing}))])
    assert torch.allclose(torch.tensor(curves[0]), torch.tensor(curves[1]), atol=1e-4)


def test_gradient_checkpointing_and_all_linear_train_only_lora(tiny_model_dir):
    model, tokenizer = load(tiny_model_dir)
    examples, _ = tokenize_examples(RECORDS[:4], tokenizer, CFG.prompt_template, CFG.max_length)
    model = wrap_with_lora(model, LoraConfig(r=2, alpha=4, target_modules="all-linear"), seed=1,
                           gradient_checkpointing=True)
    history = train_lora(model, tokenizer, examples, CFG.model_copy(update={"max_steps": 2}))
    assert len(history) == 2 and all(h["grad_norm"] > 0 for h in history)
    assert not any("lm_head" in n and p.requires_grad for n, p in model.named_parameters())


def test_qlora_on_cpu_is_refused_with_what_to_do():
    import pytest

    from adapterops.errors import AdapterOpsError
    from tasks.model.base_model import quantization_config

    with pytest.raises(AdapterOpsError, match="needs a CUDA GPU"):
        quantization_config(LoraConfig(qlora=True), "cpu")
    assert quantization_config(LoraConfig(), "cpu") is None


def test_logged_artifact_with_base_weights_or_too_many_bytes_fails_the_run(tmp_path):
    import pytest

    from adapterops.errors import AdapterOpsError
    from tasks.train.run import check_logged_artifact

    (tmp_path / "adapter_model.safetensors").write_bytes(b"\0" * 1000)
    assert check_logged_artifact(str(tmp_path), expected_bytes=1000) == 1000
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(AdapterOpsError, match="base weights were logged"):
        check_logged_artifact(str(tmp_path), expected_bytes=1000)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "blob.json").write_bytes(b"\0" * 2_000_000)
    with pytest.raises(AdapterOpsError, match="far above"):
        check_logged_artifact(str(tmp_path), expected_bytes=1000)


def test_serving_builds_prompts_exactly_as_training_did(tiny_model_dir):
    from transformers import AutoTokenizer

    import tasks.model.prompts
    from tasks.serve.pyfunc import prompt_token_ids

    assert prompt_token_ids is tasks.model.prompts.prompt_token_ids   # one builder, shipped with the model as code
    from tasks.train.sft_data import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    record = {"prompt": "my invoice is wrong", "completion": "Triage: billing"}
    # a template renders the assistant's turn too (training labels what it adds to the prompt)
    for chat_template in (None, "{% for m in messages %}<{{ m.role }}>{{ m['content'] }}</{{ m.role }}>{% endfor %}"
                                "{% if add_generation_prompt %}<assistant>{% endif %}"):
        tokenizer.chat_template = chat_template
        (example,), _ = tokenize_examples([record], tokenizer, "Ticket: {prompt}\nAnswer:", 128)
        served = prompt_token_ids(tokenizer, record["prompt"], "Ticket: {prompt}\nAnswer:")
        assert example.input_ids[:len(served)] == served and example.labels[len(served)] != -100
        assert example.labels[len(served) - 1] == -100


def test_the_recipe_trains_conversations_and_stores_the_template_it_rendered_with(tiny_model_dir, tmp_path):
    from adapterops.config import Recipe
    from adapterops.tiny_model import CHAT_TEMPLATE
    from tasks.model.prompts import template_digest
    from tasks.records.conversation import Conversation, Message, stored_columns
    from tasks.train.recipe import run_recipe, training_key

    conversation = Conversation(messages=(Message(role="system", content="Policy."),
                                          Message(role="user", content="Hi"), Message(role="assistant", content="Hello"),
                                          Message(role="user", content="Refund?"),
                                          Message(role="assistant", content="Triage: refund")))
    records = [{"id": "c", **stored_columns(conversation)}] + [dict(r, id=str(i)) for i, r in enumerate(RECORDS[:3])]
    recipe = Recipe(train=TrainConfig(max_steps=2, batch_size=2, max_length=96, checkpoint_every=0,
                                      overlong="quarantine"))
    done = run_recipe(recipe, BaseModelRef("tiny", str(tiny_model_dir), "sha256:x"), records, tmp_path)
    assert (tmp_path / "adapter" / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert done["chat_template_digest"] == template_digest(CHAT_TEMPLATE)
    assert done["preflight"].records == 4 and done["preflight"].multi_turn == 1 and done["examples"] == 4
    settings = recipe.settings()
    assert training_key("sha256:c", "r", settings, CHAT_TEMPLATE) != training_key("sha256:c", "r", settings, "{{ x }}")


def test_train_chat_template_replaces_the_tokenizers_as_text_or_a_file(tiny_model_dir, tmp_path):
    import pytest
    from transformers import AutoTokenizer

    from adapterops.errors import AdapterOpsError
    from tasks.train.recipe import apply_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    own = tokenizer.chat_template
    assert apply_template(tokenizer, TrainConfig()) == own
    (tmp_path / "t.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert apply_template(tokenizer, TrainConfig(chat_template=str(tmp_path / "t.jinja"))).startswith("{% for m")
    assert tokenizer.chat_template.startswith("{% for m") and tokenizer.chat_template != own
    assert apply_template(tokenizer, TrainConfig(chat_template="{{ messages[0].content }}")) == "{{ messages[0].content }}"
    with pytest.raises(AdapterOpsError, match="not a file"):
        apply_template(tokenizer, TrainConfig(chat_template=str(tmp_path / "missing.jinja")))
