"""Formal-language families: the exact next-symbol probabilities (``next_token_probs``, the known-task oracle) against
brute-force enumeration of every hidden path or string on small processes, and the sampler against them."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from tvlens.tasks import HMMMixture, RegularLanguages

HMM = HMMMixture(n_symbols=3, n_processes=2, n_states=3, seed=4)
DFA = RegularLanguages(n_symbols=3, n_processes=2, n_states=3, out_degree=2, seed=1)


def hmm_joint(task: HMMMixture, k: int, symbols: tuple[int, ...]) -> float:
    """``p(x_1 … x_T | process k)`` by summing over every hidden state path (uniform first state)."""
    trans, emit = task.transition[k].double(), task.emission[k].double()
    total = 0.0
    for path in itertools.product(range(task.n_states), repeat=len(symbols)):
        p = 1.0 / task.n_states
        for i, (state, x) in enumerate(zip(path, symbols)):
            p *= float(emit[state, x]) * (float(trans[state, path[i + 1]]) if i + 1 < len(path) else 1.0)
        total += p
    return total


@pytest.mark.parametrize("k", [0, 1])
def test_hmm_next_symbol_probabilities_are_the_path_sums(k):
    """p(x_{t+1} | x_1…x_t) = p(x_1…x_{t+1}) / p(x_1…x_t), both summed over all 3^T state paths."""
    for symbols in itertools.product(range(HMM.n_symbols), repeat=3):
        tokens = torch.tensor([[HMM.bos, *symbols]])
        probs = HMM.next_token_probs(tokens, torch.tensor([k]))[0].double()  # [4 positions, d_vocab]
        for t in range(4):  # position t predicts symbol t + 1 from BOS and the first t symbols
            prefix = symbols[:t]
            norm = hmm_joint(HMM, k, prefix) if prefix else 1.0
            expected = [hmm_joint(HMM, k, (*prefix, v)) / norm for v in range(HMM.n_symbols)]
            torch.testing.assert_close(probs[t, : HMM.n_symbols], torch.tensor(expected, dtype=torch.float64),
                                       atol=1e-6, rtol=1e-5)
            assert float(probs[t, HMM.n_symbols:].abs().sum()) == 0.0  # BOS and ';' are never emitted


def dfa_streams(task: RegularLanguages, k: int, length: int) -> dict[tuple[int, ...], float]:
    """Every stream of ``length`` tokens process ``k`` can emit, with its probability: from the start state each
    step picks uniformly among the outgoing symbols and, in an accepting state, ``;`` (back to the start)."""
    delta, accept = task.transitions[k], task.accepting[k]
    out: dict[tuple[int, ...], float] = {}

    def walk(state: int, stream: tuple[int, ...], p: float) -> None:
        if len(stream) == length:
            out[stream] = out.get(stream, 0.0) + p
            return
        options = [s for s in range(task.n_symbols) if int(delta[state, s]) >= 0] + ([task.sep] if accept[state] else [])
        for token in options:
            walk(0 if token == task.sep else int(delta[state, token]), (*stream, token), p / len(options))

    walk(0, (), 1.0)
    return out


@pytest.mark.parametrize("k", [0, 1])
def test_dfa_next_symbol_probabilities_are_the_string_sums(k):
    """p(next | prefix) = mass of the streams that continue the prefix with that token / mass of the prefix,
    summed over every stream of 5 tokens the automaton's random walk can produce."""
    streams = dfa_streams(DFA, k, 5)
    assert sum(streams.values()) == pytest.approx(1.0)
    for stream in streams:
        tokens = torch.tensor([[DFA.bos, *stream]])
        probs = DFA.next_token_probs(tokens, torch.tensor([k]))[0].double()
        for t in range(5):
            prefix = stream[:t]
            mass = sum(p for s, p in streams.items() if s[:t] == prefix)
            expected = torch.zeros(DFA.d_vocab, dtype=torch.float64)
            for s, p in streams.items():
                if s[:t] == prefix:
                    expected[s[t]] += p / mass
            torch.testing.assert_close(probs[t], expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("task", [HMM, DFA], ids=lambda t: t.name)
def test_the_sampler_draws_the_process_the_oracle_describes(task):
    """Over 20 000 sampled prompts of one process, each first-two-symbol pair occurs with the frequency the
    exact probabilities give (within 4.5 binomial standard errors), and the oracle's NLL is their mean."""
    n = 20_000
    batch = task.single(1).sample(n, 2, seed=7)
    assert bool((batch.task_ids == 1).all())
    pairs = batch.answer_targets[:, :2]
    probs = task.next_token_probs(batch.inputs, batch.task_ids).double()
    for a, b in itertools.product(task.label_set.tolist(), repeat=2):
        exact = task.next_token_probs(torch.tensor([[task.bos, a, b]]), torch.tensor([1]))[0].double()
        p = float(exact[0, a] * exact[1, b])  # (garbage after an impossible a: multiplied by p(a) = 0)
        frequency = float(((pairs[:, 0] == a) & (pairs[:, 1] == b)).double().mean())
        assert abs(frequency - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-12, (a, b, frequency, p)
    nll = task.oracle_nll(batch.select(slice(0, 50)))
    expected = -probs[:50].gather(2, batch.answer_targets[:50, :, None]).squeeze(-1).clamp_min(1e-30).log()
    torch.testing.assert_close(nll.double(), expected, atol=1e-5, rtol=1e-5)
