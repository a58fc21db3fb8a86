"""Options that several commands share: the device, the cameras and trainer-folder flags, the
default method."""

from __future__ import annotations

from typing import Literal

from gsedit.edit.config import DEFAULT_METHOD  # noqa: F401 -- the commands' default, read by cli.py

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: Device):
    """The torch device of --device (imported when a command runs: torch loads only then)."""
    from gsedit.edit.options import resolve_device as resolve

    return resolve(device)


CAMERAS_HELP = ("INRIA cameras.json, transforms.json, a COLMAP model folder, a trainer's output folder, or "
                "orbit:N[@WxH]; default: a trainer folder's own cameras.")

ITERATION_HELP = "Of a trainer's output folder: the iteration/step to load (default: the last)."

FRAME_CHECK_HELP = ("Refuse a scene and cameras that do not see each other (a frame mix-up) before any work; "
                    "--no-frame-check goes ahead anyway.")

DATAPARSER_HELP = ("A nerfstudio run's dataparser_transforms.json: maps --cameras (the dataset's, in its original "
                   "frame) into that run's frame, e.g. for an ns-export splat edited with the dataset's transforms.json.")
