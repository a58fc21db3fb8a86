"""The multi-turn edit loop, mask fusion, relevance field and sessions (`Session`, in api.py).

Its public names load on first use: the command line imports `gsedit.edit.lock` before torch.
"""

_PUBLIC = {"Session": "gsedit.edit.api", "TurnInfo": "gsedit.edit.api", "TurnProgress": "gsedit.edit.api",
           "TurnCancelled": "gsedit.edit.events", "SessionFolder": "gsedit.edit.session",
           "Turn": "gsedit.edit.session"}


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'gsedit.edit' has no attribute {name!r}")
