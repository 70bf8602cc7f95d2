"""Backbone.check_elements: one implementation, each backbone's coverage and words in its message."""

import numpy as np
import pytest
import torch

from skdynemb.backbones.base import Backbone
from skdynemb.backbones.cgcnn import CgcnnBackbone
from skdynemb.errors import InvalidStructureError
from skdynemb.structures import Crystal


def _crystal(numbers, crystal_id=None):
    n = len(numbers)
    return Crystal(np.eye(3) * 4.0 * n, np.arange(n)[:, None] / n * np.ones(3), np.array(numbers), crystal_id)


def _bare(cls, **fields):
    """A backbone of class ``cls`` without weights: enough for check_elements."""
    return cls(name="test", module=torch.nn.Linear(1, 1), stage_names=["embedding"], stage_dims=[1], **fields)


def _problem(backbone, numbers, crystal_id=None, index=7):
    with pytest.raises(InvalidStructureError) as info:
        backbone.check_elements(_crystal(numbers, crystal_id), index)
    assert (info.value.index, info.value.sample_id) == (index, crystal_id)
    return str(info.value)


def test_cgcnn_names_the_atomic_numbers_its_table_lacks():
    known = np.zeros(101, dtype=bool)
    known[1:101] = True
    known[50] = False  # a hole in the table (Sn), not only the end of it
    backbone = _bare(CgcnnBackbone, known_elements=known)
    backbone.check_elements(_crystal([3, 27, 8, 8, 100]), 0)
    assert _problem(backbone, [118, 50, 3, 95, 118]) == (
        "sample 7: test has no atom features for atomic number(s) [50, 118] (CGCNN covers Z = 1..100)"
    )
    assert _problem(backbone, [101, 1], "md") == (
        "sample 7 (id='md'): test has no atom features for atomic number(s) [101] (CGCNN covers Z = 1..100)"
    )


def test_chgnet_refuses_beyond_plutonium():
    chgnet = pytest.importorskip("skdynemb.backbones.chgnet", reason="the chgnet extra")
    backbone = _bare(chgnet.ChgnetBackbone)
    backbone.check_elements(_crystal([1, 94]), 0)
    assert _problem(backbone, [101, 1, 100, 95], "x", index=3) == (
        "sample 3 (id='x'): test has no embedding for atomic number(s) [95, 100, 101] (CHGNet covers Z = 1..94)"
    )


def test_sevenn_refuses_what_its_checkpoint_does_not_embed():
    sevenn = pytest.importorskip("skdynemb.backbones.sevenn", reason="the sevenn extra")
    backbone = _bare(sevenn.SevennetBackbone, known_numbers=[1, 3, 8, 27])
    backbone.check_elements(_crystal([3, 27, 8, 8]), 0)
    assert _problem(backbone, [94, 3, 2, 94]) == (
        "sample 7: test has no embedding for atomic number(s) [2, 94] (the checkpoint covers 4 elements)"
    )


def test_base_accepts_every_element_and_asks_a_restricting_subclass_for_its_words():
    _bare(Backbone).check_elements(_crystal([1, 118]), 0)

    class OnlyHydrogen(Backbone):
        def _covers(self, z):
            return z == 1

    backbone = _bare(OnlyHydrogen)
    backbone.check_elements(_crystal([1, 1]), 0)
    with pytest.raises(NotImplementedError, match=r"OnlyHydrogen restricts its elements"):
        backbone.check_elements(_crystal([1, 2]), 0)
