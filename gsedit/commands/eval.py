"""`gsedit eval`: the metrics of every turn of a session, a table and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tyro.conf import OmitArgPrefixes, Positional

from gsedit.commands.options import (
    Device,
    resolve_device,
)
from gsedit.evaluation.evaluate_config import EvalConfig


@dataclass
class Eval:
    """Metrics of every turn (and the refine) -> DIR/metrics.json and a table."""

    session: Positional[Path]
    settings: OmitArgPrefixes[EvalConfig] = field(default_factory=EvalConfig)
    device: Device = "auto"

    def run(self) -> None:
        from gsedit.commands.progress import console
        from gsedit.edit.session import SessionFolder
        from gsedit.evaluation.evaluate import evaluate_session
        from gsedit.evaluation.metrics_table import format_table
        from gsedit.evaluation.report import write_report
        from gsedit.scene.files import load_scene_file

        device = resolve_device(self.device)
        metrics = evaluate_session(self.session, self.settings, device,
                                   load_scene=lambda p: load_scene_file(p, device))
        console.print(format_table(metrics))
        for entry in metrics.get("unavailable", []):
            console.print(f"[yellow]unavailable[/] {entry['metric']}: {entry['reason']}", highlight=False)
        write_report(SessionFolder.open(self.session))
        console.print(f"metrics: {Path(self.session) / 'metrics.json'}")
