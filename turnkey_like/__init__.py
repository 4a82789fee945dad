"""turnkey_like (`tk`): discover, characterize, build and benchmark the PyTorch models a script runs.

The Python API mirrors the command line:

- :func:`turnkey_like.characterize` counts MACs/FLOPs, memory traffic and the roofline bound of one
  model call (see :mod:`turnkey_like.characterize`).
"""

__version__ = "0.3.0"


def __getattr__(name):  # lazy: `import turnkey_like` must not import torch
    if name == "characterize":
        from turnkey_like.characterize import characterize

        return characterize
    raise AttributeError(f"module 'turnkey_like' has no attribute {name!r}")
