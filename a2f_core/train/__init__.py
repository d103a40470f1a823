"""Training: data sets, feature cache, SequentialTrainer."""

from .data import TrainItem, features_for, load_manifest, load_pair
from .trainer import SequentialTrainer, TrainConfig

__all__ = ["TrainItem", "features_for", "load_manifest", "load_pair", "SequentialTrainer", "TrainConfig"]
