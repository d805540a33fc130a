"""A benchmark backend like ``tests.bench.fake_backend`` that pretrains "encoders" (tests only).

``pretrain_encoder`` writes the table it was given as JSON (a no-op when the file already holds
it) and records the call in :data:`PRETRAINED`; ``build_task`` records each task's encoder in
:data:`BUILT` and refuses an encoder file that does not exist yet, so a test sees that the
runner pretrains before any unit runs. In-process grids only (``workers=1``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench import fake_backend

BACKEND = "tests.bench.encoder_backend"
PRETRAINED: list[tuple[str, str]] = []  # (data, path) of every pretraining that ran
BUILT: list[str | None] = []  # the encoder option of every task built


def pretrain_encoder(options, table, path):
    path = Path(path)
    text = json.dumps(table, sort_keys=True)
    if path.is_file() and path.read_text() == text:
        return {"key": table}
    PRETRAINED.append((options["data"], str(path)))
    assert "encoder" not in options and "train_mode" not in options
    path.write_text(text)
    return {"key": table}


def build_task(options):
    encoder = options.get("encoder")
    if encoder is not None and not Path(encoder).is_file():
        raise RuntimeError(f"encoder {encoder} does not exist")
    BUILT.append(encoder)
    return fake_backend.build_task(options)


loop_config = fake_backend.loop_config
supervised_reference = fake_backend.supervised_reference
