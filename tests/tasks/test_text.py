"""Word-pair text tasks: data, templates, first-token targets, left padding."""

from __future__ import annotations

import json

import pytest
import torch

from tvlens.tasks.text import DATA_DIR, TEMPLATES, TextTasks, WordPairs, builtin_tasks, word_pairs_from_csv

from ..hf_models import train_sentencepiece_tokenizer


def test_builtin_data():
    tasks = builtin_tasks()
    assert len(tasks) >= 8 and all(len(t.pairs) >= 100 for t in tasks.values())
    for path in DATA_DIR.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["license"].startswith("CC0") and data["description"]
        assert len({x for x, _ in data["pairs"]}) == len(data["pairs"])  # one answer per input


def test_arrow_prompt_and_first_token_target(tokenizer):
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
    by_path = TextTasks((str(path), "antonyms"), tokenizer=tokenizer)  # a CSV path resolves like a name
    assert by_path.tasks == (pairs, builtin_tasks()["antonyms"])
    (tmp_path / "bad.csv").write_text("a,b,c\n", encoding="utf-8")
    with pytest.raises(ValueError, match="exactly two columns"):
        word_pairs_from_csv(tmp_path / "bad.csv")


def test_errors(tokenizer):
    with pytest.raises(ValueError, match="tokenizer"):
        TextTasks(("antonyms",))
    with pytest.raises(ValueError, match="tasks: 'synonyms' is not a built-in word-pair task nor a .csv file"):
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


#: How each built-in template ends a prompt: the query's line up to its answer (written out here, not derived).
QUERY_LINE = {"hendel": "example:{x}->", "todd": "Q: {x}\nA:", "arrow": "{x} ->", "qa": "Q: {x}\nA:"}
#: The space the answer carries (Todd's prepend_space; none after Hendel's "->").
ANSWER_SPACE = {"hendel": "", "todd": " ", "arrow": " ", "qa": " "}


@pytest.fixture(scope="module", params=["byte-level BPE", "SentencePiece"])
def any_tokenizer(request, tokenizer):
    return tokenizer if request.param == "byte-level BPE" else train_sentencepiece_tokenizer()


def _prompt_text(template: str, pairs) -> str:
    demos = "".join(TEMPLATES[template].format(x=x, y=y) for x, y in pairs[:-1])
    return demos + QUERY_LINE[template].format(x=pairs[-1][0])


def test_papers_templates_are_their_code_formats():
    assert TEMPLATES["hendel"] == "example:{x}->{y}\n"  # icl_task_vectors: FewShotFormat
    assert TEMPLATES["todd"] == "Q: {x}\nA: {y}\n\n"  # function_vectors: Q:/A: prefixes, \n and \n\n, spaces
    assert TEMPLATES["arrow"] == "{x} -> {y}\n" and TEMPLATES["qa"] == TEMPLATES["todd"]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_prompts_are_the_tokenization_of_their_whole_text(any_tokenizer, template):
    """For every template and built-in task: the prompt's ids are the tokenizer's ids of the whole prompt string,
    and every target is the first token of its answer in that tokenization (multi-token answers included)."""
    task = TextTasks(tuple(builtin_tasks()), tokenizer=any_tokenizer, template=template)
    bos = [any_tokenizer.bos_token_id]
    multi_token = straddled = 0
    for t in range(task.n_tasks):
        batch = task.single(t).sample(6, 3, seed=t)
        for row in range(len(batch)):
            pairs = batch.examples[row]
            text = _prompt_text(template, pairs)
            ids = any_tokenizer(text, add_special_tokens=False).input_ids
            real = batch.inputs[row][batch.attention_mask[row].bool()] if batch.attention_mask is not None \
                else batch.inputs[row]
            assert real.tolist() == bos + ids, (template, text)
            offset = batch.inputs.shape[1] - len(real)
            # the query's target: the first token overlapping its answer (with the answer's leading space) when the
            # prompt and its answer are tokenized together — the answer's own first token if that one straddles
            space = ANSWER_SPACE[template]
            full = any_tokenizer(text + space + pairs[-1][1], add_special_tokens=False, return_offsets_mapping=True)
            k = next(i for i, (_, end) in enumerate(full["offset_mapping"]) if end > len(text))
            if full["offset_mapping"][k][0] >= len(text):
                assert full["input_ids"][:k] == ids and int(batch.targets[row]) == full["input_ids"][k]
            else:
                straddled += 1
                first = any_tokenizer(space + pairs[-1][1], add_special_tokens=False).input_ids[0]
                assert int(batch.targets[row]) == first
            assert int(batch.query_positions[row]) == batch.inputs.shape[1] - 1
            # each demonstration: its answer position is the token before the first token overlapping the answer
            spans = any_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            for i, (x, y) in enumerate(pairs[:-1]):
                start = len("".join(TEMPLATES[template].format(x=a, y=b) for a, b in pairs[:i])
                            + QUERY_LINE[template].format(x=x))
                first = next(j for j, (_, end) in enumerate(spans) if end > start)
                assert int(batch.answer_positions[row, i]) == offset + len(bos) + first - 1
                assert int(batch.answer_targets[row, i]) == ids[first]
                multi_token += len(any_tokenizer(space + y, add_special_tokens=False).input_ids) > 1
            zero = batch.zero_shot
            zero_real = zero.inputs[row][zero.attention_mask[row].bool()] if zero.attention_mask is not None \
                else zero.inputs[row]
            assert zero_real.tolist() == bos + any_tokenizer(QUERY_LINE[template].format(x=pairs[-1][0]),
                                                             add_special_tokens=False).input_ids
    assert multi_token > 0  # the check covered answers of several tokens
    assert straddled < multi_token


def test_shuffled_labels_permute_whole_answers(any_tokenizer):
    task = TextTasks(("country_capital", "english_french"), tokenizer=any_tokenizer, template="todd")
    batch = task.sample(12, 4, seed=5)
    corrupted = task.with_shuffled_labels(batch, torch.Generator().manual_seed(0))
    answers = {y for t in task.tasks for _, y in t.pairs}
    moved = 0
    for clean, dirty in zip(batch.examples, corrupted.examples):
        assert [x for x, _ in clean] == [x for x, _ in dirty] and clean[-1] == dirty[-1]
        assert sorted(y for _, y in clean[:-1]) == sorted(y for _, y in dirty[:-1])
        assert all(y in answers for _, y in dirty)  # whole answers, never fragments
        moved += sum(a != b for (_, a), (_, b) in zip(clean[:-1], dirty[:-1]))
    assert moved > 0
    multi = [y for pairs in corrupted.examples for _, y in pairs[:-1]
             if len(any_tokenizer(" " + y, add_special_tokens=False).input_ids) > 1]
    assert multi  # answers of several tokens were moved whole
    for row in range(len(corrupted)):  # re-tokenized as whole strings
        real = corrupted.inputs[row][corrupted.attention_mask[row].bool()] if corrupted.attention_mask is not None \
            else corrupted.inputs[row]
        text = _prompt_text("todd", corrupted.examples[row])
        assert real.tolist() == [any_tokenizer.bos_token_id] + any_tokenizer(text, add_special_tokens=False).input_ids
    assert torch.equal(corrupted.targets, batch.targets) and corrupted.zero_shot is None
    with pytest.raises(ValueError, match="built from text: shuffle whole answers with task.with_shuffled_labels"):
        batch.with_shuffled_labels(torch.Generator())  # the token-level shuffle would leave fragments
    sub = batch.select(slice(2, 5))
    assert sub.examples == batch.examples[2:5] and sub.zero_shot.examples == batch.zero_shot.examples[2:5]


def test_slow_tokenizers_are_refused(tokenizer):
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="expected a fast Hugging Face tokenizer"):
        TextTasks(("antonyms",), tokenizer=Slow())


def test_a_template_with_an_unknown_field_is_refused_at_construction(tokenizer):
    with pytest.raises(ValueError, match=r"template='\{x\} \{z\} -> \{y\}': has the fields \['x', 'z', 'y'\]"):
        TextTasks(("antonyms",), tokenizer=tokenizer, template="{x} {z} -> {y}")
    with pytest.raises(ValueError, match=r"template='\{x -> \{y\}'"):
        TextTasks(("antonyms",), tokenizer=tokenizer, template="{x -> {y}")


def test_the_token_memo_equals_the_tokenizer_and_follows_its_vocabulary(tokenizer, monkeypatch):
    """A text is tokenized once per tokenizer; what comes back equals the tokenizer's own ids and offsets (repeated
    texts, a second call, a tokenizer given new tokens), and the memo forgets the least recently used texts."""
    import copy

    from tvlens.tasks import text as text_module
    from tvlens.tasks.text import TokenMemo

    own = copy.deepcopy(tokenizer)  # tokens are added below: not the shared session tokenizer
    texts = ["hot -> cold\nbig ->", "up -> down\n", "hot -> cold\nbig ->", "Q: dog\nA: cat"]

    def direct(batch: list[str]) -> list:
        encoded = own(batch, add_special_tokens=False, return_offsets_mapping=True)
        return [(list(ids), [tuple(span) for span in spans])
                for ids, spans in zip(encoded["input_ids"], encoded["offset_mapping"])]

    calls = []
    real_call = type(own).__call__
    monkeypatch.setattr(type(own), "__call__", lambda self, batch, **kw: calls.append(list(batch)) or real_call(
        self, batch, **kw))
    memo = TokenMemo.of(own)
    assert memo.tokenize(texts) == direct(texts)
    assert calls[0] == [texts[0], texts[1], texts[3]]  # each distinct text once
    calls.clear()
    assert memo.tokenize(texts[::-1]) == direct(texts[::-1]) and len(calls) == 1  # only the direct call
    assert TokenMemo.of(own) is memo
    before = direct(texts)
    own.add_tokens(["cold\nbig"])  # the vocabulary changed: a fresh memo, and the new token is used
    fresh = TokenMemo.of(own)
    assert direct(texts) != before and fresh is not memo and fresh.tokenize(texts) == direct(texts)
    monkeypatch.setattr(text_module, "TOKEN_MEMO_TEXTS", 2)
    fresh.tokenize(["a ->", "b ->", texts[1]])
    assert list(fresh.texts) == ["b ->", texts[1]]

    class Unhashable:  # a tokenizer-like object that compares by value: no memo to keep, still equal results
        __hash__ = None

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Unhashable)

        def __len__(self) -> int:
            return len(own)

        def __call__(self, batch: list[str], **kw):
            return own(batch, **kw)

    assert TokenMemo.of(Unhashable()).tokenize(texts) == direct(texts)


def test_pairs_needed_is_the_fewest_that_fill_every_held_out_block():
    """Checked against the blocks themselves: with pairs_needed(k) pairs every split's block holds k + 1 pairs, with
    any fewer some block does not."""
    from tvlens.tasks.base import ContentBlock
    from tvlens.tasks.splits import BLOCK_FRACTIONS, Splits
    from tvlens.tasks.text import pairs_needed

    blocks = [ContentBlock(i, BLOCK_FRACTIONS, Splits(3).partition) for i in range(len(BLOCK_FRACTIONS))]
    for k in range(40):
        n = pairs_needed(k)
        assert min(b.items(n, salt=k).numel() for b in blocks) >= k + 1
        assert all(min(b.items(m).numel() for b in blocks) < k + 1 for m in range(len(blocks), n)), k
    assert pairs_needed(10**6) == 10 * (10**6 + 1) - 5  # closed form at scale (the validation block's 10 %)


def test_the_docs_state_the_pairs_a_word_pair_task_needs():
    import re
    from pathlib import Path

    from tvlens.tasks.text import pairs_needed

    text = " ".join((Path(__file__).parents[2] / "docs" / "real-models.md").read_text(encoding="utf-8").split())
    stated = re.search(r"`tvlens\.tasks\.text\.pairs_needed`: (\d+) pairs for 5-shot prompts, (\d+) for one shot", text)
    assert stated and (int(stated[1]), int(stated[2])) == (pairs_needed(5), pairs_needed(1))
