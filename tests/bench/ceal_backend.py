"""A benchmark backend like ``tests.bench.fake_backend`` whose task takes pseudo-labels (CEAL).

``fit`` adds the pseudo-labelled points to the centroids, so they change the model; the loop
config carries the unit's ``pseudo_label`` option.
"""

from __future__ import annotations

import numpy as np

from medactive.loop.active_loop import LoopConfig
from medactive.loop.pseudo_label import PseudoLabelConfig
from tests.bench import fake_backend
from tests.bench.fake_backend import FakeTask

BACKEND = "tests.bench.ceal_backend"


class PseudoTask(FakeTask):
    supports_pseudo_labels = True

    def fit(self, labeled_idx, labels, *, seed, init_model=None, extra_idx=None,
            extra_labels=None):
        if extra_idx is not None and len(extra_idx):
            labeled_idx = np.concatenate([labeled_idx, extra_idx])
            labels = np.concatenate([np.asarray(labels), extra_labels])
        return super().fit(labeled_idx, labels, seed=seed, init_model=init_model)


def build_task(options):
    return PseudoTask(n_pool=options.get("data_options", {}).get("n_pool", 60))


def loop_config(options):
    config = fake_backend.loop_config(options)
    pseudo = options.get("pseudo_label")
    if pseudo is None:
        return config
    return LoopConfig(**{**vars(config), "pseudo_label": PseudoLabelConfig.from_dict(pseudo)})


supervised_reference = fake_backend.supervised_reference
