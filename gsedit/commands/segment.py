"""`gsedit segment`: ADSS masks of images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tyro.conf import OmitArgPrefixes, Positional

from gsedit.commands.options import (
    Device,
    resolve_device,
)
from gsedit.models.adss_config import ADSSConfig


@dataclass
class Segment:
    """ADSS open-set segmentation of images: a mask and an overlay per image."""

    inputs: Positional[list[Path]]
    """Image files or folders of images."""
    query: str
    """What to segment, e.g. "the man's face"."""
    out: Path = Path("masks")
    keep: bool = False
    """Write the inverse mask (what must stay unchanged), as for additive edits."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    device: Device = "auto"

    def run(self) -> None:
        from gsedit.models.adss import ADSS
        from gsedit.models.segment_files import segment_paths

        segmenter = ADSS.from_pretrained(self.adss, resolve_device(self.device))
        written = segment_paths(list(self.inputs), self.query, self.keep, self.out, segmenter)
        print(f"wrote {len(written)} files to {self.out}")
