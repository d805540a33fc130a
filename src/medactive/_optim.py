"""One guarded optimiser step, shared by supervised, semi-supervised and self-supervised training."""

from __future__ import annotations

import torch


def optimisation_step(loss: torch.Tensor, optimiser, scheduler, *, what: str,
                      epoch: int) -> float:
    """One optimiser and scheduler step on ``loss`` (``scheduler`` may be ``None``); returns
    its value.

    Raises:
        FloatingPointError: the loss is NaN or infinite (naming ``what`` and the epoch).
    """
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} loss became {loss.item()} at epoch {epoch}; "
                                 "lower the learning rate")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    if scheduler is not None:
        scheduler.step()
    return loss.item()
