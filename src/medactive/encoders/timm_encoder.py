"""External encoders from timm with weights from a local file (survey §7.5, foundation models).

A hospital that has downloaded a checkpoint (DINOv2, BiomedCLIP's vision tower, a RadImageNet
ResNet) uses it offline: ``--encoder timm:NAME --encoder-weights FILE`` builds
``timm.create_model(NAME, pretrained=False, num_classes=0)`` — nothing is downloaded, ever —
and loads the file (a state dict saved with ``torch.save``, optionally under a ``state_dict`` or
``model`` key, or a ``.safetensors`` file). The classifier head of a checkpoint is dropped
(``num_classes=0`` has none). Images are adapted inside the backbone
(:class:`~medactive.encoders.base.InputAdapter`): channels matched to the model's, resized to
its input size and normalised with its mean and std (from timm's pretrained config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medactive.encoders.base import AdaptedBackbone, Encoder, InputAdapter, key_digest
from medactive.errors import ConfigError, DataError


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(f"{path}: reading .safetensors needs the safetensors package"
                              ) from None
        return load_file(str(path))
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise DataError(f"{path}: expected a state dict of tensors")
    return state


def load_timm_encoder(name: str, *, weights: str | None, in_channels: int,
                      image_size: int | None = None) -> Encoder:
    """``timm:NAME`` with weights from the local file ``weights``.

    Args:
        name: a timm model name (e.g. ``resnet18``, ``vit_small_patch14_dinov2``).
        weights: the local checkpoint (required).
        in_channels: the data's channels (grey images are repeated to the model's channels).
        image_size: feed images at this side (default: the model's configured input size).

    Raises:
        ConfigError: timm missing, unknown model, no weights file.
        DataError: unreadable weights, or weights that do not fit the model.
    """
    if not weights:
        raise ConfigError(f"--encoder timm:{name} needs --encoder-weights FILE (a local "
                          "checkpoint; medactive never downloads weights)")
    path = Path(weights)
    if not path.is_file():
        raise DataError(f"{path}: encoder weights file not found")
    try:
        import timm
    except ImportError as exc:
        raise ConfigError(f"--encoder timm:{name} needs timm ({exc}); install it with "
                          "`pip install timm` (and a torchvision matching your torch)") from None
    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r} (see timm.list_models())")
    net = timm.create_model(name, pretrained=False, num_classes=0)
    state = _read_state(path)
    own = net.state_dict()
    state = {k: v for k, v in state.items() if k in own or not _is_head(k)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = (f"missing {', '.join(missing[:3])}" if missing
                else f"unexpected {', '.join(unexpected[:3])}")
        raise DataError(f"{path}: weights do not fit timm:{name} ({what}"
                        f"{' ...' if len(missing) + len(unexpected) > 3 else ''})")
    cfg = getattr(net, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    model_channels = int(cfg.get("input_size", (len(mean), 224, 224))[0])
    size = image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
    adapter = InputAdapter(in_channels=in_channels, out_channels=model_channels,
                           image_size=size, mean=mean[:model_channels], std=std[:model_channels])
    backbone = AdaptedBackbone(adapter, net, net.num_features)
    digest = key_digest({k: [list(v.shape), float(v.float().sum())] for k, v in state.items()})
    key = {"method": "timm", "model": name, "weights": digest, "image_size": size,
           "in_channels": in_channels}
    return Encoder(f"timm:{name}", backbone, key=key,
                   info={"source": str(path.resolve()), "image_size": size,
                         "timm": getattr(timm, "__version__", "?")})


def _is_head(key: str) -> bool:
    """Classifier-head parameters that a ``num_classes=0`` model does not have."""
    return key.split(".")[0] in ("fc", "head", "classifier", "last_linear")
