import json

from adapterops.demo_data import demo_lines, generate_records, write_demo_data


def test_generator_is_deterministic_for_a_seed():
    assert demo_lines(200, 5) == demo_lines(200, 5)
    assert demo_lines(200, 5) != demo_lines(200, 6)


def test_demo_export_plants_the_problems_curation_must_handle():
    lines = demo_lines(200, 5)
    parsed = []
    malformed = 0
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            malformed += 1
    assert malformed == 1
    prompts = [r["prompt"] for r in parsed]
    assert len(set(prompts)) < len(prompts)                       # exact copies
    assert any("@example.com" in p for p in prompts)              # PII
    assert any(r["completion"] == "" for r in parsed)             # invalid rows
    assert len({r["id"] for r in parsed}) == len(parsed)


def test_eval_file_is_separate_from_training_ids(tmp_path):
    train, evaluation = write_demo_data(tmp_path, 100, 3)
    lines = evaluation.read_text().splitlines()
    eval_ids = {json.loads(line)["id"] for line in lines if line.endswith("}")}
    assert len(eval_ids) == len(lines) - 1          # one planted malformed line
    assert all(i.startswith("E") for i in eval_ids)
    assert not eval_ids & {r["id"] for r in generate_records(100, 3)}
