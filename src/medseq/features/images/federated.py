"""Fit the volume featurizer across sites: it learns only the slice shape.

:class:`~medseq.features.images.volumes.VolumeFeaturizer` scales voxels by a fixed factor
and reads the volume along a fixed axis; the one thing its fit learns is the slice shape
``(H, W)``, which sizes the model. Each site sends its own (from its training volumes) and
sites that disagree are an error, since one global model reads every site's volumes. One
stage, ``shape``. What leaks: the volume size a site stores, nothing about a patient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medseq.features.federated import FederatedFit, require_replies
from medseq.features.images.volumes import VolumeFeaturizer

#: ``(data, ids) -> volumes (N, S, S, S)``: a site's training volumes, in ``ids`` order.
Volumes = Callable[[Any, np.ndarray], np.ndarray]


class VolumeFederatedFit(FederatedFit):
    """The slice shape of a :class:`VolumeFeaturizer` from the sites' own fits.

    Parameters
    ----------
    make : callable ``() -> VolumeFeaturizer``
        The unfitted featurizer of the ``[features]`` table.
    volumes : callable ``(data, ids) -> ndarray``
    """

    stages = ("shape",)

    def __init__(self, make: Callable[[], VolumeFeaturizer], volumes: Volumes) -> None:
        self.make = make
        self.volumes = volumes
        make()  # bad options fail here, before any exchange

    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        self.check_stage(stage)
        featurizer = self.make().fit(self.volumes(data, np.asarray(ids, dtype=np.int64)))
        return {"slice_shape": list(featurizer.slice_shape_ or ())}

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        self.check_stage(stage)
        require_replies(stage, replies)
        shapes = sorted({tuple(int(v) for v in r["slice_shape"]) for r in replies})
        if len(shapes) != 1:
            raise ValueError(
                f"federated volume statistics: sites disagree on the slice shape {shapes}; "
                "one model needs volumes of one size (resample them at the sites)"
            )
        featurizer = self.make()
        featurizer.slice_shape_ = (shapes[0][0], shapes[0][1])
        return featurizer.state_dict()
