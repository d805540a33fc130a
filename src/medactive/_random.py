"""Randomness helpers: normalise once at the boundary, pass a Generator down."""

from __future__ import annotations

import numpy as np

RandomLike = int | np.random.Generator | None


def check_random_state(random_state: RandomLike) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` for an int seed, a Generator or ``None``.

    A Generator is returned as is (not copied), so a caller can thread one generator through a
    sequence of calls. ``None`` gives a generator seeded from the OS (not reproducible).
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be an int, a numpy Generator or None, got {random_state!r}")


def derive_seed(seed: int, *keys: int | str) -> int:
    """A stable 32-bit seed derived from ``seed`` and a path of keys (round, purpose, ...).

    Uses ``numpy.random.SeedSequence`` so that e.g. ``derive_seed(0, "train", 1)`` and
    ``derive_seed(0, "query", 1)`` give independent streams, identical on every machine.
    """
    entropy = [int(seed)]
    for key in keys:
        if isinstance(key, str):
            entropy.extend(key.encode("utf-8"))
        else:
            entropy.append(int(key))
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
