"""Word-pair text tasks: data, templates, first-token targets, left padding."""

from __future__ import annotations

import json

import pytest
import torch

from tvlens.tasks.text import DATA_DIR, TextTasks, WordPairs, builtin_tasks, word_pairs_from_csv

from ..hf_models import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


def test_builtin_data():
    tasks = builtin_tasks()
    assert len(tasks) >= 8 and all(len(t.pairs) >= 100 for t in tasks.values())
    for path in DATA_DIR.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["license"].startswith("CC0") and data["description"]
        assert len({x for x, _ in data["pairs"]}) == len(data["pairs"])  # one answer per input


def test_hendel_prompt_and_first_token_target(tokenizer):
    task = TextTasks(("antonyms",), tokenizer=tokenizer)
    batch = task.sample(4, 3, seed=0)
    text = task.decode(batch.inputs[0][batch.attention_mask[0].bool()] if batch.attention_mask is not None
                       else batch.inputs[0])
    lines = text.removeprefix("<bos>").split("\n")
    assert len(lines) == 4 and all(" -> " in line for line in lines[:3]) and lines[3].endswith(" ->")
    pairs = dict(builtin_tasks()["antonyms"].pairs)
    query = lines[3].removesuffix(" ->")
    expected = tokenizer(" " + pairs[query], add_special_tokens=False).input_ids[0]
    assert int(batch.targets[0]) == expected
    # every demonstration's answer position predicts the first token of its answer
    for (pos, target), line in zip(zip(batch.answer_positions[0, :3].tolist(), batch.answer_targets[0, :3].tolist()),
                                   lines[:3]):
        x, y = line.split(" -> ")
        assert tokenizer.decode([int(batch.inputs[0, pos])]).endswith("->")
        assert target == tokenizer(" " + y, add_special_tokens=False).input_ids[0]
    assert int(batch.targets[0]) in task.label_set.tolist()


def test_todd_and_custom_templates(tokenizer):
    todd = TextTasks(("country_capital",), tokenizer=tokenizer, template="todd").sample(1, 1, seed=1)
    text = TextTasks(("country_capital",), tokenizer=tokenizer).decode(todd.inputs[0])
    assert text.startswith("<bos>Q: ") and "\nA: " in text and text.endswith("\nA:")
    custom = TextTasks(("next_number",), tokenizer=tokenizer, template="{x}={y};", prepend_bos=False)
    batch = custom.sample(1, 2, seed=2)
    decoded = custom.decode(batch.inputs[0])
    assert decoded.count(";") == 2 and decoded.endswith("=")
    x = decoded.split(";")[-1].removesuffix("=")
    # no space before {y}: the answer's first token is tokenized without a leading space
    assert int(batch.targets[0]) == tokenizer(str(int(x) + 1), add_special_tokens=False).input_ids[0]


def test_left_padding_puts_every_query_last(tokenizer):
    task = TextTasks(("country_capital", "antonyms"), tokenizer=tokenizer)
    batch = task.sample(16, 2, seed=3)
    assert batch.attention_mask is not None and bool((batch.attention_mask[:, -1] == 1).all())
    assert bool((batch.query_positions == batch.inputs.shape[1] - 1).all())
    pads = (batch.attention_mask == 0).sum(1)
    assert bool((batch.inputs[batch.attention_mask == 0] == tokenizer.pad_token_id).all()) and pads.max() > 0
    zero = batch.zero_shot
    assert bool((zero.query_positions == zero.inputs.shape[1] - 1).all()) and torch.equal(zero.targets, batch.targets)
    single = task.single(1)
    assert bool((single.sample(8, 2, seed=0).task_ids == 1).all())


def test_user_tasks_from_pairs_and_csv(tokenizer, tmp_path):
    path = tmp_path / "colours.csv"
    path.write_text("input,answer\nsky,blue\ngrass,green\nsnow,white\n", encoding="utf-8")
    pairs = word_pairs_from_csv(path)
    assert pairs.name == "colours" and pairs.pairs[0] == ("sky", "blue")
    task = TextTasks((pairs, WordPairs("echo", (("a", "a"), ("b", "b"), ("c", "c")))), tokenizer=tokenizer)
    assert task.n_tasks == 2 and task.max_shots() == 2
    (tmp_path / "bad.csv").write_text("a,b,c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="exactly two columns"):
        word_pairs_from_csv(tmp_path / "bad.csv")


def test_errors(tokenizer):
    with pytest.raises(ValueError, match="tokenizer"):
        TextTasks(("antonyms",))
    with pytest.raises(ValueError, match="'synonyms' is not a built-in task"):
        TextTasks(("synonyms",), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="template='{y} {x}'"):
        TextTasks(("antonyms",), tokenizer=tokenizer, template="{y} {x}")
    with pytest.raises(ValueError, match="at least 2 pairs"):
        WordPairs("one", (("a", "b"),))
    with pytest.raises(ValueError, match="no fixed length"):
        TextTasks(("antonyms",), tokenizer=tokenizer).prompt_length(3)


def test_csv_with_a_byte_order_mark_skips_its_header(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes("input,answer\nhot,cold\nbig,small\n".encode("utf-8-sig"))
    assert word_pairs_from_csv(path).pairs == (("hot", "cold"), ("big", "small"))
    (tmp_path / "latin.csv").write_bytes("caf\xe9,coffee\nhot,cold\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.csv.*not a UTF-8 text file"):
        word_pairs_from_csv(tmp_path / "latin.csv")


def test_conflicting_pairs_are_refused_and_repeats_dropped():
    with pytest.raises(ValueError, match="input 'hot' has two answers, 'cold' and 'warm'"):
        WordPairs("t", (("hot", "cold"), ("big", "small"), ("hot", "warm")))
    with pytest.warns(UserWarning, match="dropped 1 repeated pair"):
        pairs = WordPairs("t", (("hot", "cold"), ("big", "small"), ("hot", "cold")))
    assert pairs.pairs == (("hot", "cold"), ("big", "small"))
