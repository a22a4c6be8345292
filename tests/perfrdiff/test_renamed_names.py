"""perfrdiff names of the previous release still work for one release, with a warning."""

from __future__ import annotations

import perfrdiff.training
import pytest
from perfrdiff.training import StageTraining


def test_stage_run_is_stage_training_with_a_warning():
    with pytest.warns(DeprecationWarning, match="StageRun is deprecated .* use .*StageTraining"):
        alias = perfrdiff.training.StageRun
    assert alias is StageTraining


def test_unknown_names_are_still_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        perfrdiff.training.NoSuchThing
