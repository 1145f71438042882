"""The face-swap model: pure torch, no I/O (see swapface.modeldir for saving and loading)."""

from swapface.model.autoencoder import IDENTITIES, Identity, SwapAutoencoder, TrainOutputs
from swapface.model.config import PRESETS, ModelConfig, preset

__all__ = ["IDENTITIES", "PRESETS", "Identity", "ModelConfig", "SwapAutoencoder", "TrainOutputs", "preset"]
