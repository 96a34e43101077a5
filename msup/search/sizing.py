"""Sizes of a sampled configuration, computed when the trial is sampled (before training)."""

from __future__ import annotations

from msup.config import TrainConfig
from msup.sizes import Inventory, inventory, model_size


class SizeCache:
    """Paper / entropy / dense sizes per training config; one model build per architecture.

    What a network stores does not depend on the coat settings, so the
    inventory of each architecture is computed once and reused for every
    sampled set of sparsities.
    """

    def __init__(self) -> None:
        self._inventories: dict[tuple, Inventory] = {}

    def sizes(self, config: TrainConfig) -> dict[str, float]:
        spec = config.model_spec()
        key = (spec.name, spec.num_classes, spec.input_shape, spec.dense_first_last, spec.bn_affine, spec.width,
               spec.mask is None)
        if key not in self._inventories:
            self._inventories[key] = inventory(spec.build())
        size = model_size(self._inventories[key], config.mask.sparsities)
        if spec.mask is None:
            return {"size_paper_mib": size.dense_mib, "size_entropy_mib": size.dense_mib, "dense_mib": size.dense_mib}
        return {"size_paper_mib": size.paper_mib, "size_entropy_mib": size.entropy_mib, "dense_mib": size.dense_mib}
