"""The dual-stream model and its checkpoints."""

from .dual_stream import DualStreamModel, ModelConfig
from .checkpoint import (FORMAT_VERSION, average_checkpoints, default_checkpoint_path, load_checkpoint,
                         save_checkpoint)

__all__ = ["DualStreamModel", "ModelConfig", "average_checkpoints", "load_checkpoint", "save_checkpoint",
           "default_checkpoint_path", "FORMAT_VERSION"]
