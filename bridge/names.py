"""The one declaration of what the bridge is in a model's state dict: its modules and their name prefixes.

The bridge is trainable and saved on its own at full scale (mm.checkpoint), converted from foreign
checkpoints (bridge.layouts) and selected for training (mm.train); all of them ask here.
"""

from __future__ import annotations

QFORMERS = "qformers"  # one Q-Former per modality
PROJECTORS = "projectors"  # one projection into the LLM's embedding space per modality
BRIDGE_MODULES = (QFORMERS, PROJECTORS)
BRIDGE_PREFIXES = tuple(f"{m}." for m in BRIDGE_MODULES)


def is_bridge_key(name: str) -> bool:
    """Whether a state-dict key of `MMModel` belongs to the bridge."""
    return name.startswith(BRIDGE_PREFIXES)
