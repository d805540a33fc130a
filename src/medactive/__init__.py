"""medactive: deep active learning for medical image analysis.

The query model follows Wang et al. (2024), Eq. 1: ``D_q = S(I(x, f_theta), b)``. Informativeness
``I`` lives in :mod:`medactive.scoring`, sampling ``S`` in :mod:`medactive.selection`, and each
named method composing the two in :mod:`medactive.strategies`.
"""

from __future__ import annotations

__version__ = "0.1.0"
