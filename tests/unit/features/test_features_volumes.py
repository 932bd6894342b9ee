"""Volume featurizer (slice axis, scaling) and flip/shift augmentation."""

import numpy as np
import pytest
import torch

from medseq.features.images.volumes import VolumeFeaturizer, VolumeFlipShift


def test_axis_moves_to_slice_dimension_and_scales():
    images = np.zeros((2, 4, 5, 6), np.uint8)
    images[0, 1, 2, 3] = 255
    out = VolumeFeaturizer(axis=2).fit(images).transform(images)["slices"]
    assert out.shape == (2, 6, 4, 5) and out.dtype == np.float32
    assert out[0, 3, 1, 2] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)
    state = VolumeFeaturizer(axis=2).state_dict()
    assert VolumeFeaturizer.from_state_dict(state).axis == 2
    with pytest.raises(ValueError, match="axis must be 0, 1 or 2"):
        VolumeFeaturizer(axis=3)
    with pytest.raises(ValueError, match=r"\(N, S, S, S\)"):
        VolumeFeaturizer().transform(images[0])


def test_flip_shift_keeps_content_and_is_seeded():
    x = torch.zeros(4, 8, 8, 8)
    x[:, 3:5, 3:5, 3:5] = 1.0
    batch = {"slices": x, "y": torch.zeros(4)}
    augment = VolumeFlipShift(flip_p=0.5, max_shift=2)
    out = augment(batch, torch.Generator().manual_seed(1))
    again = augment(batch, torch.Generator().manual_seed(1))
    assert torch.equal(out["slices"], again["slices"])
    assert out["slices"].sum() == x.sum()  # rolls and flips only move voxels
    assert not torch.equal(out["slices"], x)
    assert torch.equal(VolumeFlipShift(0.0, 0)(batch, torch.Generator())["slices"], x)


def test_axis_permutation_keeps_voxels_and_happens_only_when_asked():
    x = torch.zeros(6, 5, 5, 5)
    x[:, 0, 1, 2] = 1.0  # an asymmetric voxel shows which axes were swapped
    batch = {"slices": x}
    out = VolumeFlipShift(flip_p=0.0, max_shift=0, permute_p=1.0)(batch, torch.Generator())
    assert (out["slices"].sum(dim=(1, 2, 3)) == 1).all()
    positions = {tuple(torch.nonzero(v)[0].tolist()) for v in out["slices"]}
    assert positions <= {(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)}
    assert len(positions) > 1
    with pytest.raises(ValueError, match="permute_p"):
        VolumeFlipShift(permute_p=2.0)
