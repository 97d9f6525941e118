"""Counts in words: the singular for one, the plural otherwise."""

import pytest

from bench.wording import counted


@pytest.mark.parametrize("n, expected", [(0, "0 runs"), (1, "1 run"), (2, "2 runs")])
def test_one_is_singular_and_every_other_count_plural(n, expected):
    assert counted(n, "run") == expected


def test_an_irregular_plural_is_given():
    assert counted(3, "process", "processes") == "3 processes"
    assert counted(1, "process", "processes") == "1 process"
