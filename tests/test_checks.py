"""The one integer check: bools refused, numpy integers accepted, one line naming argument and value."""

from __future__ import annotations

import numpy as np
import pytest

from tvlens._checks import check_int
from tvlens.models import ModelConfig
from tvlens.tasks import PermutationMixture


def test_check_int():
    assert check_int("n", 3, 1) == 3 and check_int("n", np.int64(4), 1) == 4
    assert type(check_int("n", np.int64(4), 1)) is int
    for bad in (True, 2.0, "2", None):
        with pytest.raises(ValueError, match=f"^n={bad!r}: expected an int >= 1$"):
            check_int("n", bad, 1)
    with pytest.raises(ValueError, match=r"^n_random=5: expected an int >= 20 \(the control needs many draws\)$"):
        check_int("n_random", 5, 20, "the control needs many draws")


def test_a_bool_is_not_a_count_anywhere():
    """Where ``isinstance(x, int)`` alone was the check, ``True`` passed as 1."""
    with pytest.raises(ValueError, match="n_perms=True: expected an int >= 1"):
        PermutationMixture(n_symbols=8, n_perms=True)
    with pytest.raises(ValueError, match="n_prompts=True: expected an int >= 1"):
        PermutationMixture(n_symbols=8, n_perms=2).sample(True, 2)
    with pytest.raises(ValueError, match="ModelConfig.n_heads=True: expected an int >= 1"):
        ModelConfig(n_layers=1, d_model=8, n_heads=True, d_vocab=10, n_ctx=8)
