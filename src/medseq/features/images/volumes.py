"""A volume as a sequence of slices: axis choice and intensity scaling, plus training flips/shifts.

A 3D volume ``(S, S, S)`` becomes ``slices`` ``(D, H, W)``: the chosen axis is the sequence
axis a recurrent model walks along, the other two are each slice's image. Intensities are
scaled by a fixed factor (MedMNIST stores ``uint8``, so ``1/255`` maps to ``[0, 1]``); the
featurizer has no fitted statistics, so it behaves the same on any split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # the augmentation alone needs torch; featurising a volume does not
    import torch

from medseq.features.base import ArraySpec, FeaturizerDescription


class VolumeFeaturizer:
    """Volumes (N, S, S, S) -> ``slices`` float32 (N, D, H, W) along ``axis``.

    Parameters
    ----------
    axis : {0, 1, 2}, default=0
        Volume axis read as the slice sequence (0 keeps the stored order).
    scale : float, default=1/255
        Intensity multiplier.
    """

    kind: ClassVar[str] = "volume"

    def __init__(self, axis: int = 0, scale: float = 1.0 / 255.0) -> None:
        if axis not in (0, 1, 2) or isinstance(axis, bool):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.axis = int(axis)
        self.scale = float(scale)
        self.slice_shape_: tuple[int, int] | None = None

    def fit(self, images: np.ndarray) -> VolumeFeaturizer:
        """Record the slice shape ``(H, W)`` (the model's size); nothing else is learned."""
        self._check(images)
        shape = np.moveaxis(images[:1], self.axis + 1, 1).shape
        self.slice_shape_ = (int(shape[2]), int(shape[3]))
        return self

    @property
    def slice_size(self) -> int:
        """``H`` of the square slices seen at fit time."""
        if self.slice_shape_ is None:
            raise RuntimeError("VolumeFeaturizer is not fitted; call fit(train_volumes) first")
        return self.slice_shape_[0]

    @staticmethod
    def _check(images: np.ndarray) -> None:
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            shape = getattr(images, "shape", None)
            raise ValueError(f"volumes must be an array (N, S, S, S), got shape {shape}")

    def transform(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``{"slices": float32 (N, D, H, W)}``."""
        self._check(images)
        moved = np.moveaxis(images, self.axis + 1, 1)
        if self.slice_shape_ is not None and moved.shape[2:] != self.slice_shape_:
            raise ValueError(
                f"volumes give slices of shape {moved.shape[2:]}, the featurizer was fitted "
                f"on {self.slice_shape_} (a 28 vs 64 voxel mix-up?)"
            )
        return {"slices": np.ascontiguousarray(moved, dtype=np.float32) * np.float32(self.scale)}

    def describe(self) -> FeaturizerDescription:
        """``slices`` (N, D, H, W) float32 along ``axis``; D is the sequence."""
        if self.slice_shape_ is None:
            raise RuntimeError("VolumeFeaturizer is not fitted; call fit(train_volumes) first")
        sizes = {"H": self.slice_shape_[0], "W": self.slice_shape_[1]}
        return FeaturizerDescription(
            kind=self.kind,
            modality="volume",
            inputs="volumes (N, S, S, S)",
            outputs=(ArraySpec("slices", "float32", ("N", "D", "H", "W"), sizes, "scaled slices"),),
            step=f"slice along volume axis {self.axis}",
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON, ``kind`` included."""
        shape = None if self.slice_shape_ is None else list(self.slice_shape_)
        return {"kind": self.kind, "axis": self.axis, "scale": self.scale, "slice_shape": shape}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> VolumeFeaturizer:
        """Inverse of :meth:`state_dict`."""
        if state.get("kind") != cls.kind:
            raise ValueError(f"not a volume featurizer state (kind={state.get('kind')!r})")
        featurizer = cls(axis=int(state["axis"]), scale=float(state["scale"]))
        shape = state.get("slice_shape")
        featurizer.slice_shape_ = None if shape is None else (int(shape[0]), int(shape[1]))
        return featurizer


class VolumeFlipShift:
    """Training augmentation on ``batch["slices"]`` (B, D, H, W): random flips and shifts.

    Each volume is flipped along each of its three axes with probability ``flip_p`` and rolled
    by an integer shift in ``[-max_shift, max_shift]`` voxels along each axis (the MedMNIST
    crops are centred on the gland, and the gland is small, so a roll of a few voxels moves
    only background across the border). With probability ``permute_p`` the three axes of a
    cubic volume are also put in a random order (the crops are isotropic, and whether a
    gland holds a mass does not depend on its orientation). Randomness comes from the
    trainer's generator.

    Parameters
    ----------
    flip_p : float, default=0.5
    max_shift : int, default=2
    permute_p : float, default=0.0
    """

    def __init__(self, flip_p: float = 0.5, max_shift: int = 2, permute_p: float = 0.0) -> None:
        for name, p in (("flip_p", flip_p), ("permute_p", permute_p)):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p!r}")
        self.permute_p = float(permute_p)
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
        self.flip_p = float(flip_p)
        self.max_shift = max_shift

    def __call__(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        import torch

        x = batch["slices"]
        n = x.shape[0]
        flips = torch.rand(n, 3, generator=generator) < self.flip_p
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (n, 3), generator=generator)
        permute = torch.rand(n, generator=generator) < self.permute_p
        orders = torch.stack([torch.randperm(3, generator=generator) for _ in range(n)])
        cubic = x.shape[1] == x.shape[2] == x.shape[3]
        out = []
        for i in range(n):
            v = x[i]
            if cubic and permute[i]:
                v = v.permute(*orders[i].tolist())
            dims = [d for d in range(3) if flips[i, d]]
            if dims:
                v = torch.flip(v, dims)
            if self.max_shift:
                v = torch.roll(v, tuple(int(s) for s in shifts[i]), dims=(0, 1, 2))
            out.append(v)
        return {**batch, "slices": torch.stack(out)}
