"""Image volumes over REST: the request body of the AdrenalMNIST3D spec.

Body (imported on the first request)::

    {"volumes": [{"id": "scan-1", "voxels": [[[0, 12, ...], ...], ...]}]}

``voxels`` is the volume as nested arrays ``[depth][height][width]`` of intensities on the
training files' scale (0..255 for MedMNIST); its size must be the one the bundle was
trained on (28³ or 64³), else the answer is a 422 naming ``voxels`` and both shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from medseq.serving.requests import (
    MAX_ITEMS,
    Parsed,
    RequestContext,
    RequestError,
    item_ids,
    validate,
)
from medseq.serving.schemas import Number, PatientId, Strict

#: A 64³ volume: the largest MedMNIST size.
MAX_SIDE = 64
Row = Annotated[list[Number], Field(min_length=1, max_length=MAX_SIDE)]
Plane = Annotated[list[Row], Field(min_length=1, max_length=MAX_SIDE)]


class VolumeIn(Strict):
    id: PatientId
    voxels: list[Plane] = Field(min_length=1, max_length=MAX_SIDE)


class VolumesRequest(Strict):
    """``POST /v1/predict`` for volume bundles."""

    volumes: list[VolumeIn] = Field(min_length=1, max_length=MAX_ITEMS // 8)


@dataclass(frozen=True)
class RequestVolumes:
    """The request's volumes as the reader's ``images`` array (N, S, S, S)."""

    images: np.ndarray


def parse(body: Any, context: RequestContext) -> Parsed:
    """Nested arrays -> volumes of the fitted shape (ids 0..N-1)."""
    request = validate(VolumesRequest, body)
    names = [v.id for v in request.volumes]
    item_ids(names, ("body", "volumes"))
    expected = getattr(context.featurizer, "slice_shape_", None)
    arrays = []
    for k, volume in enumerate(request.volumes):
        loc = ("body", "volumes", k, "voxels")
        try:
            array = np.asarray(volume.voxels, dtype=np.float32)
        except ValueError:
            raise RequestError.at(loc, "every plane and row needs the same length") from None
        side = array.shape[0]
        if array.ndim != 3 or array.shape != (side, side, side):
            raise RequestError.at(loc, f"must be a cube (S, S, S), got shape {array.shape}")
        if expected is not None and (side, side) != tuple(expected):
            raise RequestError.at(loc, f"the model reads {expected[0]}³ volumes, got {side}³")
        arrays.append(array)
    if len({a.shape for a in arrays}) != 1:
        raise RequestError.at(("body", "volumes"), "every volume needs the same size")
    ids = np.arange(len(arrays), dtype=np.int64)
    return Parsed(RequestVolumes(np.stack(arrays)), ids, names)
