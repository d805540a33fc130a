"""Scores of a committee's (deep ensemble's) member stacks: disagreement between models.

Every function takes the members' probabilities ``[n, c, ..., m]``: class axis 1, any spatial
axes after it (segmentation pixels), and the ``m`` members (independently seeded models of a
deep ensemble, or any committee) on the last axis. It returns ``[n, ...]``; higher means more
informative. They are the survey's "multiple inferences, model disagreement" family (§3.1.1).

- :func:`ensemble_entropy` — entropy of the members' mean prediction (total uncertainty);
- :func:`ensemble_bald` — mutual information between the prediction and the member, the BALD
  of :func:`medactive.scoring.bald` on the member axis (Beluch et al. 2018);
- :func:`vote_entropy` — entropy of the members' hard votes (Dagan and Engelson 1995);
- :func:`mean_kl_to_consensus` — mean KL divergence of each member from the consensus
  (McCallum and Nigam 1998). With the uniform consensus ``p̄ = mean_m p_m`` it equals
  :func:`ensemble_bald`: ``mean_m KL(p_m || p̄) = H[p̄] - mean_m H[p_m]`` (the
  Jensen-Shannon divergence of the members), so the two rank alike; it is computed here from
  its own definition and the tests check the identity.

Example:
    >>> import numpy as np
    >>> stack = np.array([[[1.0, 0.0], [0.0, 1.0]],     # sample 0: members say 0 and 1
    ...                   [[1.0, 1.0], [0.0, 0.0]]])    # sample 1: both say class 0
    >>> vote_entropy(stack).round(4)
    array([0.6931, 0.    ])

References:
    Lakshminarayanan, Pritzel and Blundell, "Simple and scalable predictive uncertainty
    estimation using deep ensembles", NeurIPS 2017; Beluch et al., "The power of ensembles for
    active learning in image classification", CVPR 2018; Dagan and Engelson, "Committee-based
    sampling for training probabilistic classifiers", ICML 1995; McCallum and Nigam, "Employing
    EM and pool-based active learning for text classification", ICML 1998.
"""

from __future__ import annotations

import numpy as np

from medactive.scoring.bayesian import bald, check_stack
from medactive.scoring.uncertainty import _entropy


def ensemble_entropy(member_probas: np.ndarray) -> np.ndarray:
    """Entropy of the members' mean prediction, ``H[mean_m p_m]``.

    Args:
        member_probas: ``[n, c, ..., m]`` probabilities of ``m`` members.

    Returns:
        ``[n, ...]`` scores in ``[0, log c]``.

    References:
        Lakshminarayanan et al., NeurIPS 2017; Beluch et al., CVPR 2018 ("Entropy" of the
        ensemble).
    """
    member_probas = _check_members(member_probas)
    return _entropy(member_probas.mean(axis=-1), axis=1)


def ensemble_bald(member_probas: np.ndarray) -> np.ndarray:
    """Mutual information across members, ``H[mean_m p_m] - mean_m H[p_m]``.

    :func:`medactive.scoring.bald` with the ensemble's members in place of MC-dropout passes.

    Args:
        member_probas: ``[n, c, ..., m]`` probabilities of ``m`` members.

    Returns:
        ``[n, ...]`` scores in ``[0, log c]``.

    References:
        Houlsby et al., 2011; Beluch et al., CVPR 2018 (BALD on ensembles).
    """
    return bald(_check_members(member_probas))


def vote_entropy(member_probas: np.ndarray) -> np.ndarray:
    """Entropy of the hard-vote distribution ``V(y) / m``, where ``V(y)`` counts the members
    whose most probable class is ``y``.

    Soft disagreement is ignored: members that all put most mass on one class score 0
    however unsure each is. A member whose top probabilities tie votes for the lowest class
    index (``argmax``).

    Args:
        member_probas: ``[n, c, ..., m]`` probabilities of ``m`` members.

    Returns:
        ``[n, ...]`` scores in ``[0, log min(c, m)]``.

    References:
        Dagan and Engelson, ICML 1995 (vote entropy); Settles, "Active learning literature
        survey", 2009, Eq. 2.3.
    """
    member_probas = _check_members(member_probas)
    votes = member_probas.argmax(axis=1)  # [n, ..., m]
    m = member_probas.shape[-1]
    shares = np.stack([(votes == k).sum(axis=-1) / m
                       for k in range(member_probas.shape[1])], axis=1)  # [n, c, ...]
    return _entropy(shares, axis=1) + 0.0  # + 0.0: a unanimous vote scores 0, not -0


def mean_kl_to_consensus(member_probas: np.ndarray) -> np.ndarray:
    """Mean over members of ``KL(p_m || p̄)``, with the consensus ``p̄ = mean_m p_m``.

    Args:
        member_probas: ``[n, c, ..., m]`` probabilities of ``m`` members.

    Returns:
        ``[n, ...]`` scores ``>= 0`` (tiny negative rounding is clipped to 0).

    References:
        McCallum and Nigam, ICML 1998 ("KL divergence to the mean"); Settles 2009, Eq. 2.4.
    """
    member_probas = _check_members(member_probas)
    consensus = member_probas.mean(axis=-1, keepdims=True)
    # 0 log 0 = 0; where p_m > 0 the consensus is > 0 too
    positive = member_probas > 0
    log_ratio = np.log(np.where(positive, member_probas, 1.0)) - \
        np.log(np.where(positive, consensus, 1.0))
    kl = (member_probas * log_ratio).sum(axis=1)  # [n, ..., m]
    return np.maximum(kl.mean(axis=-1), 0.0)


def _check_members(member_probas: np.ndarray) -> np.ndarray:
    return check_stack(member_probas, name="member_probas", last="the members", letter="m")
