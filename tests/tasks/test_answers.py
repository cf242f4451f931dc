"""Whole answers read and scored as Todd et al. score generations: textbook cases of each step."""

from __future__ import annotations

import pytest

from tvlens.tasks.answers import exact_match, normalize_answer, read_answer, token_f1


def test_an_answer_is_the_first_run_of_words_dots_and_spaces():
    assert read_answer(" Paris\nQ: Spain\nA: Madrid") == " Paris"
    assert read_answer(" St. Louis, Missouri") == " St. Louis"
    assert read_answer("\n\n") == ""


def test_normalisation_drops_case_punctuation_articles_and_extra_spaces():
    assert normalize_answer("  The  Eiffel-Tower!  ") == "eiffeltower"
    assert normalize_answer("a cat and AN owl") == "cat and owl"


@pytest.mark.parametrize(("prediction", "answer", "em", "f1"), [
    (" Paris", "paris", 1.0, 1.0),
    ("the cat sat", "cat sat on", 0.0, 0.8),            # P = 2/2, R = 2/3
    ("new new york", "new york", 0.0, 0.8),              # counted with multiplicity: P = 2/3, R = 1
    ("london", "paris", 0.0, 0.0),
    ("", "paris", 0.0, 0.0),
    ("the", "a", 1.0, 1.0),                              # both empty after normalisation
])
def test_exact_match_and_token_f1(prediction, answer, em, f1):
    assert exact_match(prediction, answer) == em
    assert token_f1(prediction, answer) == pytest.approx(f1)
