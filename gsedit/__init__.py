"""gsedit: multi-turn text-driven editing of 3D Gaussian splatting scenes and NeRFs.

`from gsedit import Session` is the library's front door (README, "Python API"); it is imported on
first use, so `import gsedit` stays light (no torch) for the command line's early checks.
"""

__version__ = "0.1.0"

_PUBLIC = {"Session": "gsedit.edit.api", "TurnInfo": "gsedit.edit.api", "TurnProgress": "gsedit.edit.api",
           "TurnCancelled": "gsedit.edit.events"}
__all__ = ["Session", "TurnCancelled", "TurnInfo", "TurnProgress", "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'gsedit' has no attribute {name!r}")
