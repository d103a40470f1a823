"""The dual-stream model and its checkpoints."""

from .dual_stream import DualStreamModel, ModelConfig
from .checkpoint import load_checkpoint, save_checkpoint, default_checkpoint_path, FORMAT_VERSION

__all__ = ["DualStreamModel", "ModelConfig", "load_checkpoint", "save_checkpoint", "default_checkpoint_path",
           "FORMAT_VERSION"]
