"""a2f_core: speech audio -> the 52 Apple ARKit blendshape curves, on the CPU.

>>> from a2f_core import ARKIT_NAMES
>>> len(ARKIT_NAMES)
52

Typical use::

    from a2f_core import load_model, infer
    curves = infer("speech.wav", load_model())
    curves.save("speech.csv")
"""

from __future__ import annotations

from .arkit import ARKIT_NAMES
from .curves import BlendshapeCurves
from .errors import A2FError, AudioError, CheckpointError, NoModelError, OutputError

__version__ = "0.1.0"


def load_model(path=None):
    """Load a checkpoint; with no path, the trained model shipped in the package."""
    from .model import load_checkpoint

    return load_checkpoint(path)


def infer(audio, model=None, **kwargs) -> BlendshapeCurves:
    """Audio (path, or array with ``rate=``) -> :class:`BlendshapeCurves`. See :func:`a2f_core.engine.infer`."""
    from .engine import infer as _infer

    return _infer(audio, model, **kwargs)


__all__ = ["ARKIT_NAMES", "BlendshapeCurves", "A2FError", "AudioError", "CheckpointError", "NoModelError",
           "OutputError", "load_model", "infer", "__version__"]
