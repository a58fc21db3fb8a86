"""A turn that deletes selected Gaussians: no diffusion model, a normal turn folder all the same.

It is written like every turn (`engine.write_turn` inside `atomic_dir`: scene.ply, renders/, masks/
appear together or not at all) and recorded in session.json as done, so `gsedit undo`, `eval`,
`view` and `edit --resume` treat it as any other finished turn. Its masks are where the deleted
Gaussians showed in each view.
"""

from __future__ import annotations

import time

from torch import Tensor

from gsedit.atomic import atomic_dir
from gsedit.cameras import Cameras
from gsedit.edit.engine import write_turn
from gsedit.edit.loop import TurnResult
from gsedit.edit.selection import remove_gaussians
from gsedit.edit.session import SessionFolder, Turn, TurnRecord
from gsedit.errors import GseditError
from gsedit.scene.gaussian_scene import GaussianScene

SELECTED = "selected"


def delete_instruction(count: int) -> str:
    """The instruction a delete turn records (session.json, report, the studio's turn list)."""
    return f"delete the selection ({count} Gaussians)"


def delete_turn(folder: SessionFolder, scene: GaussianScene, selected: Tensor, cameras: Cameras) -> TurnRecord:
    """Appends and writes a turn whose scene is `scene` without the `selected` [N] bool Gaussians.

    `scene` is the last finished turn's scene; the caller holds the session's lock.

    Raises:
        GseditError: nothing is selected, everything is, or the session has unfinished turns.
    """
    count = int(selected.sum())
    if count == 0:
        raise GseditError("Delete selection: nothing is selected (click the scene to select).")
    if count == len(scene):
        raise GseditError(f"Delete selection: all {count} Gaussians are selected; a scene needs some left.")
    if folder.pending():
        raise GseditError(f"{folder.folder} has unfinished turns: finish or undo them before deleting.")
    folder.add_turns([Turn(delete_instruction(count))])
    record = folder.records[-1]
    start = time.perf_counter()
    with atomic_dir(folder.turn_dir(record.index)) as tmp:
        marked = scene.clone()
        marked.set_channel(SELECTED, selected.float().to(scene.device))
        out = marked.render(cameras, channels=[SELECTED])
        result = remove_gaussians(scene, selected)
        renders = result.render(cameras).rgb
        masks = out.channels[SELECTED].clamp(0, 1)  # [C, H, W] where the deleted Gaussians showed
        write_turn(tmp, result, TurnResult(out.rgb, masks, renders, edits=0, loss=float("nan")), cameras)
    record.status = "done"
    record.edits = 0
    record.seconds = round(time.perf_counter() - start, 3)
    record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    folder.update(record)
    return record
