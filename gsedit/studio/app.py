"""The studio: one viser server over one open `gsedit.Session`.

GUI callbacks arrive on viser's threads; a turn runs on its own worker thread, so the page keeps
answering (orbit, look at earlier turns) while it trains. One turn, undo or delete at a time: a
second one while one runs is refused in the page. Every browser tab sees the same GUI and scene.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsedit.atomic import write_json
from gsedit.errors import GseditError
from gsedit.render.images import to_uint8
from gsedit.studio.panels import EditPanel, ExportPanel, HistoryPanel, SelectionPanel
from gsedit.studio.view import SceneView
from gsedit.viewer.camera import ViewPose, pose_to_cameras
from gsedit.viewer.server import place_initial_camera

SELECTIONS_FILE = "selections.json"


@dataclass
class StudioConfig:
    """How the studio serves and draws."""

    host: str = "127.0.0.1"
    """Address to listen on: loopback by default."""
    port: int = 8080
    """HTTP/websocket port of the page."""
    max_side: int = 256
    """Longer side of a server-rendered frame (nerfacto, overlays) once the camera stops."""
    moving_side: int = 96
    """Longer side of a server-rendered frame while the camera moves."""
    preview_every: int = 10
    """Steps between live pictures of a running turn (0: none)."""
    sam_checkpoint: Path | None = None
    """SAM weights (.pth): clicks are segmented with SAM's point prompts on the clicked view and lifted
    to the Gaussians; without them the selection grows in 3D from the clicked Gaussians."""
    sam_model_type: str = "vit_h"
    """SAM backbone of sam_checkpoint (vit_h, vit_l, vit_b)."""


class Studio:
    """The page's actions, each done through the session."""

    def __init__(self, session, config: StudioConfig | None = None):
        import viser

        self.session = session
        self.config = config or StudioConfig()
        self.device = session.device
        self.quiet = False  # True while the studio itself sets widgets (no callbacks fire)
        self._busy = threading.Lock()  # held by a running turn, undo or delete
        self._cancel: threading.Event | None = None
        self.worker: threading.Thread | None = None
        self.selected: torch.Tensor | None = None  # [N] bool over the last finished turn's Gaussians
        self._prompts = None  # SAM clicks on one view: (camera pose, selection before them, [(x, y, positive)])
        self.sam = None
        if self.config.sam_checkpoint is not None:  # clicks become SAM point prompts (else grown in 3D)
            from gsedit.models.sam_points import SamPointSegmenter

            self.sam = SamPointSegmenter.from_checkpoint(self.config.sam_checkpoint, self.config.sam_model_type,
                                                         self.device)
        self.server = viser.ViserServer(host=self.config.host, port=self.config.port, verbose=False)
        self.server.gui.configure_theme(control_width="large")
        self.edit = EditPanel(self)
        self.history = HistoryPanel(self)
        self.selection = SelectionPanel(self)
        self.exports = ExportPanel(self)
        self.view = SceneView(self.server, self.device, self.config.max_side, self.config.moving_side,
                              on_error=self.edit.say)
        self.server.scene.set_up_direction(tuple(float(v) for v in _up(session)))
        place_initial_camera(self.server, session.scene(0), session.cameras)
        self.server.on_client_connect(self._connected)
        self.server.on_client_disconnect(lambda client: self.view.frames.forget(client.client_id))
        self.server.scene.on_click()(self._clicked)
        self.server.scene.on_click(modifier="shift")(lambda event: self._clicked(event, negative=True))
        self.turns_changed()

    # -- life cycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.server.get_port()}"

    def stop(self) -> None:
        """Cancels a running turn (finished turns stay), stops the server; the caller closes the session."""
        if self._cancel is not None:
            self._cancel.set()
        if self.worker is not None:
            self.worker.join()
        self.view.stop()
        self.server.stop()

    def serve_forever(self) -> None:
        """Blocks until Ctrl-C, then stops (finished turns kept, a running one cancelled)."""
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- what is shown ------------------------------------------------------------------------
    def turns_changed(self) -> None:
        """The session's turns changed (a turn, undo, delete): the slider shows the last one."""
        labels = ["turn 0: input"] + [f"turn {t.index}: {t.instruction}" for t in self.session.turns]
        self.quiet = True
        try:
            self.history.set_turns(labels)
            self.history.before.value = False
        finally:
            self.quiet = False
        self.selected = None
        self._prompts = None
        self._show_selection()
        self.view_changed()

    def view_changed(self) -> None:
        index, before = self.history.index, bool(self.history.before.value)
        shown = max(index - 1, 0) if before else index
        overlay = self.history.overlay.value
        scene = self.session.scene(shown)
        masks = self._turn_masks(index) if overlay == "mask" else None
        tint = self.selected if shown == self.last else None
        self.history.title.content = f"**{self.history.labels[index]}** ({'before' if before else 'after'})"
        self.view.show(scene, overlay, tint, masks)

    @property
    def last(self) -> int:
        return len(self.session.turns)

    def _turn_masks(self, index: int):
        """([C, H, W] masks, cameras) of turn `index`, or None for the input."""
        from gsedit.render.images import read_image_stack, read_mask

        if index == 0:
            return None
        cameras = self.session.cameras
        folder = self.session.folder / f"turn_{index:02d}" / "masks"
        paths = [folder / f"{i:04d}.png" for i in range(len(cameras))]
        if not all(p.is_file() for p in paths):
            return None
        return read_image_stack(paths, folder, read_mask), cameras

    def _connected(self, client) -> None:
        client.camera.on_update(lambda camera: self.view.frames.moved(camera.client.client_id))

    # -- editing ------------------------------------------------------------------------------
    def _check(self, instruction: str) -> str | None:
        """The reason `instruction` cannot run, or None."""
        from gsedit.edit.session import check_instruction

        try:
            check_instruction(instruction, "Instruction")
        except GseditError as exc:
            return str(exc)
        if self.selection.use.value != "none" and (self.selected is None or not bool(self.selected.any())):
            return (f"Use selection as {self.selection.use.value}: nothing is selected (click the scene, "
                    "or set it to none).")
        return None

    def preview(self, instruction: str, client) -> None:
        """Before | edited | mask of the client's current view, as the next turn would edit it."""
        problem = self._check(instruction)
        if problem:
            self.edit.say(f"**error:** {problem}")
            return
        if self._busy.locked():
            self.edit.say("**refused:** a turn is running; Preview once it has finished or is cancelled.")
            return
        camera = self._client_camera(client, max(self.session.cameras.width, self.session.cameras.height))
        self.edit.say("previewing ...")
        try:
            result = self.session.preview(camera, instruction, **self._selection_use())
        except GseditError as exc:
            self.edit.say(f"**error:** {exc}")
            return
        self.edit.show_image(to_uint8(result.side_by_side()))
        self.edit.say(f"preview in {result.seconds:.2f} s (nothing written)")

    def start_turn(self, instruction: str) -> None:
        problem = self._check(instruction)
        if problem:
            self.edit.say(f"**error:** {problem}")
            return
        if not self._busy.acquire(blocking=False):
            self.edit.say("**refused:** a turn is already running (one at a time); Cancel it or wait.")
            return
        self._cancel = threading.Event()
        self.edit.running(True)
        self.edit.say("starting the turn ...")
        self.worker = threading.Thread(target=self._run_turn, args=(instruction, self._selection_use()),
                                       name="gsedit-studio-turn", daemon=True)
        self.worker.start()

    def _selection_use(self) -> dict:
        """run_turn's / preview's selection arguments from "Use selection as" (none, target, keep)."""
        use = self.selection.use.value
        if use == "none":
            return {}
        return {f"{use}_selection": self.selected.clone()}

    def _run_turn(self, instruction: str, selections: dict) -> None:
        from gsedit.edit import TurnCancelled

        start = time.monotonic()

        def progress(p) -> None:
            eta = (time.monotonic() - start) / p.step * (p.total - p.step) if p.step else float("nan")
            self.edit.say(f"turn {p.turn}: step {p.step}/{p.total} · loss {p.loss:.4f} · edits {p.edits} · ETA {eta:.0f} s")
            if p.preview is not None:
                self.edit.show_image(to_uint8(torch.as_tensor(p.preview)))

        try:
            info = self.session.run_turn(instruction, on_progress=progress, cancel=self._cancel,
                                         preview_every=self.config.preview_every, **selections)
            self.edit.say(f"turn {info.index} done in {info.seconds:.1f} s: {info.scene_path}")
        except TurnCancelled:
            self.edit.say("cancelled: no turn written (finished turns kept)")
        except GseditError as exc:
            self.edit.say(f"**error:** {exc}")
        except Exception as exc:  # a failing turn must not stop the server: say it in the page
            self.edit.say(f"**error:** the turn failed: {type(exc).__name__}: {exc}")
        finally:
            self._busy.release()
            self.edit.running(False)
            self.turns_changed()

    def cancel_turn(self) -> None:
        if self._cancel is None or not self._busy.locked():
            self.edit.say("nothing to cancel: no turn is running")
            return
        self._cancel.set()
        self.edit.say("cancelling at the next step ...")

    def undo(self) -> None:
        self._exclusive(lambda: self.edit.say(f"turn {self.session.undo()} undone"))

    def _exclusive(self, action) -> None:
        """Runs `action` unless a turn, undo or delete is running; errors go to the page."""
        if not self._busy.acquire(blocking=False):
            self.edit.say("**refused:** a turn is running; wait for it or Cancel it first.")
            return
        try:
            action()
        except GseditError as exc:
            self.edit.say(f"**error:** {exc}")
        finally:
            self._busy.release()
        self.turns_changed()

    # -- selection ----------------------------------------------------------------------------
    def _client_camera(self, client, side: int):
        camera = client.camera
        pose = ViewPose(np.array(camera.wxyz), np.array(camera.position), float(camera.fov), float(camera.aspect))
        return pose_to_cameras(pose, side, self.device)

    def _clicked(self, event, negative: bool = False) -> None:
        from gsedit.edit.selection import clicked_gaussians, grow_selection

        scene = self.session.scene()
        if not hasattr(scene, "geometry"):
            self.edit.say("selection by clicking needs a 3DGS scene")
            return
        camera = self._client_camera(event.client, self.config.max_side)
        u, v = event.screen_pos
        negative = negative or bool(self.selection.negative.value)
        if self.sam is not None:
            self.selected = self._sam_click(scene, camera, event.client, u, v, negative)
        else:
            grown = grow_selection(scene.gaussians, clicked_gaussians(scene, camera, u, v))
            current = self.selected if self.selected is not None else torch.zeros_like(grown)
            self.selected = current & ~grown if negative else current | grown
        self._show_selection()
        self._show_last()

    def _sam_click(self, scene, camera, client, u: float, v: float, negative: bool) -> torch.Tensor:
        """[N] bool: the selection before this view's clicks, plus SAM's mask of all of them lifted.

        Clicks accumulate as SAM's point prompts while the camera stays put; moving it starts a new
        set of prompts on the new view, added to what was selected before.
        """
        from gsedit.edit.selection import sam_selection

        pose = (tuple(client.camera.wxyz), tuple(client.camera.position), float(client.camera.fov))
        if self._prompts is None or self._prompts[0] != pose:
            base = self.selected if self.selected is not None else torch.zeros(len(scene), dtype=torch.bool)
            self._prompts = (pose, base, [])
        _, base, points = self._prompts
        points.append((u * camera.width, v * camera.height, not negative))
        lifted, _ = sam_selection(scene, camera, torch.tensor([p[:2] for p in points]),
                                  torch.tensor([p[2] for p in points]), self.sam)
        return base | lifted

    def _show_last(self) -> None:
        """Shows the last turn (where the selection lives), with the selection tinted."""
        self.quiet = True
        try:
            self.history.turn.value = self.last
            self.history.before.value = False
        finally:
            self.quiet = False
        self.view_changed()

    def _show_selection(self) -> None:
        count = 0 if self.selected is None else int(self.selected.sum())
        self.selection.show(count, len(self.session.scene()), sorted(self._named()))

    def clear_selection(self) -> None:
        self.selected = None
        self._prompts = None
        self._show_selection()
        self.view_changed()

    def delete_selection(self) -> None:
        if self.selected is None or not bool(self.selected.any()):
            self.edit.say("**error:** Delete selection: nothing is selected (click the scene to select).")
            return
        selected = self.selected
        self._exclusive(lambda: self.edit.say(
            f"turn {self.session.delete_gaussians(selected).index}: {int(selected.sum())} Gaussians deleted"))

    # -- named selections (kept in the session folder, so they survive the page) ---------------
    def _named(self) -> dict:
        import json

        path = self.session.folder / SELECTIONS_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def keep_selection(self, name: str) -> None:
        name = name.strip()
        if not name or self.selected is None or not bool(self.selected.any()):
            self.edit.say("**error:** Keep selection needs a name and a selection.")
            return
        named = self._named()
        named[name] = {"turn": self.last, "gaussians": torch.nonzero(self.selected).flatten().tolist()}
        write_json(self.session.folder / SELECTIONS_FILE, named)
        self._show_selection()
        self.edit.say(f"selection '{name}' kept ({int(self.selected.sum())} Gaussians, turn {self.last})")

    def recall_selection(self, name: str) -> None:
        entry = self._named().get(name)
        if entry is None:
            return
        if entry["turn"] != self.last:
            self.edit.say(f"**error:** selection '{name}' was made on turn {entry['turn']}; the scene is now turn {self.last}.")
            return
        selected = torch.zeros(len(self.session.scene()), dtype=torch.bool)
        selected[torch.tensor(entry["gaussians"], dtype=torch.long)] = True
        self.selected = selected
        self._show_selection()
        self._show_last()

    # -- export -------------------------------------------------------------------------------
    def export(self, turntable: bool) -> None:
        """Shows the files of the shown turn: its scene (always written), the session's --export
        formats, and (on demand) a turntable video of it, written now."""
        index = self.history.index
        folder = self.session.folder / f"turn_{index:02d}"
        if turntable:
            self.edit.say("writing the turntable video ...")
            try:
                self._write_turntable(index, folder / "renders" / "turntable.mp4")
            except GseditError as exc:
                self.edit.say(f"**error:** {exc}")
                return
            self.edit.say("turntable written")
        files = sorted(p for p in folder.glob("scene.*") if not p.name.endswith(".labels.json"))
        files += sorted((folder / "renders").glob("*.mp4"))
        self.exports.where.content = "  \n".join(f"`{p}`" for p in files)

    def _write_turntable(self, index: int, path) -> None:
        from gsedit.cameras import OrbitConfig
        from gsedit.render.video import write_turntable
        from gsedit.viewer.camera import up_direction

        first = self.session.scene(0)
        orbit = OrbitConfig(up=tuple(float(v) for v in up_direction(self.session.cameras)))
        write_turntable(self.session.scene(index), first.bounds(), path, orbit=orbit)


def _up(session) -> np.ndarray:
    from gsedit.viewer.camera import up_direction

    return up_direction(session.cameras)
