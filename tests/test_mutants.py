"""`make mutants` (tests/mutants.py) can still apply every bug it lists: a refactor that
moves or rewrites a listed line fails here, at once, rather than in the next mutants run."""
import pytest

import mutants
from conftest import ROOT


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda mutant: mutant.name)
def test_each_listed_bug_finds_its_line_once_in_its_file(mutant):
    text = (ROOT / mutant.path).read_text()
    assert text.count(mutant.original) == 1, (
        "%s: %r is in %s %d times; write the mutant again for the new text"
        % (mutant.name, mutant.original, mutant.path, text.count(mutant.original)))
