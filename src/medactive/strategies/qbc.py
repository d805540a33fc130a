"""Query by committee: top-b by the disagreement of a committee's members.

The committee is the deep ensemble the task trains for the round (``"member_probas"``
``[n, c, m]``, ``medactive run --ensemble-size M``):

- ``qbc_vote_entropy``: entropy of the members' hard-vote distribution (Dagan and Engelson
  1995); only the members' top classes count;
- ``qbc_kl``: mean KL divergence of each member from the consensus (McCallum and Nigam 1998).
  With the uniform consensus it equals ``ensemble_bald``'s mutual information (see
  :mod:`medactive.scoring.committee`), so the two select alike up to rounding.

References:
    Seung, Opper and Sompolinsky, "Query by committee", COLT 1992; Dagan and Engelson,
    "Committee-based sampling for training probabilistic classifiers", ICML 1995; McCallum and
    Nigam, "Employing EM and pool-based active learning for text classification", ICML 1998.
"""

from __future__ import annotations

from medactive.scoring.committee import mean_kl_to_consensus, vote_entropy
from medactive.strategies.base import register_strategy
from medactive.strategies.ensemble import MemberScoreStrategy


@register_strategy
class QBCVoteEntropy(MemberScoreStrategy):
    """Top-b by the vote entropy of the committee (Dagan and Engelson 1995)."""

    name = "qbc_vote_entropy"
    description = ("Query by committee: top-b by the entropy of the ensemble members' hard "
                   "votes (--ensemble-size M).")
    score_fn = vote_entropy


@register_strategy
class QBCKL(MemberScoreStrategy):
    """Top-b by the mean KL divergence to the consensus (McCallum and Nigam 1998)."""

    name = "qbc_kl"
    description = ("Query by committee: top-b by the mean KL divergence of the ensemble members "
                   "from their consensus (--ensemble-size M).")
    score_fn = mean_kl_to_consensus
