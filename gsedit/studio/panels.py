"""The studio's panels: one small class each, its GUI handles next to the callbacks that use them.

Every panel takes the Studio (app.py) that owns it and talks to it, which talks to the session; the panels only format.
Labels are the ones the issue and README name (Instruction, Preview, Run turn, ...).
"""

from __future__ import annotations

import numpy as np

OVERLAY_CHOICES = ("none", "mask", "relevance")
SELECTION_USES = ("none", "target", "keep")


class EditPanel:
    """Instruction, Preview, Run turn, Cancel, Undo; progress and messages."""

    def __init__(self, studio):
        gui = studio.server.gui
        self.studio = studio
        self.instruction = gui.add_text("Instruction", initial_value="", hint="e.g. make the sphere red")
        self.preview = gui.add_button("Preview", hint="edit the current view only: before | edited | mask")
        self.run = gui.add_button("Run turn", hint="run the instruction as the session's next turn")
        self.cancel = gui.add_button("Cancel", disabled=True, hint="stop the running turn at its next step")
        self.undo = gui.add_button("Undo", hint="drop the last finished turn (as `gsedit undo`)")
        self.status = gui.add_markdown("")
        self.image = gui.add_image(np.zeros((8, 24, 3), np.uint8), label="before | edited | mask", visible=False)
        self.preview.on_click(lambda event: studio.preview(self.instruction.value, event.client))
        self.run.on_click(lambda _: studio.start_turn(self.instruction.value))
        self.cancel.on_click(lambda _: studio.cancel_turn())
        self.undo.on_click(lambda _: studio.undo())

    def say(self, text: str) -> None:
        self.status.content = text

    def show_image(self, image: np.ndarray) -> None:
        self.image.image = image
        self.image.visible = True

    def running(self, busy: bool) -> None:
        self.cancel.disabled = not busy
        self.undo.disabled = busy


class HistoryPanel:
    """Turn slider (0 = input), Before checkbox, overlay choice."""

    def __init__(self, studio):
        gui = studio.server.gui
        self.studio = studio
        self.turn = gui.add_slider("Turn", min=0, max=1, step=1, initial_value=0, hint="0 = the input scene")
        self.before = gui.add_checkbox("Before", False, hint="the scene this turn started from")
        self.overlay = gui.add_dropdown("Overlay", OVERLAY_CHOICES, initial_value="none",
                                        hint="mask: where the turn edited; relevance: the relevance field")
        self.title = gui.add_markdown("")
        for handle in (self.turn, self.before, self.overlay):
            handle.on_update(lambda _: None if studio.quiet else studio.view_changed())

    def set_turns(self, labels: list[str]) -> None:
        """`labels`: one per finished state (turn 0 first); shows the last."""
        last = len(labels) - 1
        self.turn.max = max(last, 1)  # viser needs max > min
        self.turn.value = last
        self.turn.disabled = last == 0
        self.labels = labels

    @property
    def index(self) -> int:
        return min(int(self.turn.value), len(self.labels) - 1)


class SelectionPanel:
    """Clicks select; Clear selection, Delete selection, named selections, target/keep use."""

    def __init__(self, studio):
        gui = studio.server.gui
        self.studio = studio
        self.negative = gui.add_checkbox("Negative clicks", False, hint="clicks remove from the selection (or hold Shift)")
        self.summary = gui.add_markdown("nothing selected: click the scene")
        self.use = gui.add_dropdown("Use selection as", SELECTION_USES, initial_value="none",
                                    hint="target: the next turn (and Preview) edits only the selection; "
                                         "keep: they never touch it")
        self.clear = gui.add_button("Clear selection")
        self.delete = gui.add_button("Delete selection", hint="a turn that removes the selected Gaussians")
        self.name = gui.add_text("Selection name", initial_value="")
        self.keep = gui.add_button("Keep selection", hint="save it under the name above")
        self.named = gui.add_dropdown("Named selections", ("(none)",), initial_value="(none)")
        self.clear.on_click(lambda _: studio.clear_selection())
        self.delete.on_click(lambda _: studio.delete_selection())
        self.keep.on_click(lambda _: studio.keep_selection(self.name.value))
        self.named.on_update(lambda _: None if studio.quiet else studio.recall_selection(self.named.value))

    def show(self, count: int, total: int, names: list[str]) -> None:
        self.summary.content = f"{count} of {total} Gaussians selected" if count else "nothing selected: click the scene"
        options = ("(none)", *names)
        if tuple(self.named.options) != options:
            self.named.options = options


class ExportPanel:
    """Export: the shown turn's .ply (always there), the session's --export formats, a turntable."""

    def __init__(self, studio):
        gui = studio.server.gui
        self.turntable = gui.add_checkbox("Turntable video", False)
        self.export = gui.add_button("Export")
        self.where = gui.add_markdown("")
        self.export.on_click(lambda _: studio.export(bool(self.turntable.value)))
