"""Peak memory of a stretch of work (a turn, a refine, a refit), as session.json and compare.json record it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import torch

SAMPLE_SECONDS = 0.05  # RSS has no kernel-kept peak per interval: sample it this often


@dataclass
class MemoryMeter:
    """Peak resident memory (sampled) and peak CUDA memory of one turn."""

    peak_rss: int = 0
    device: torch.device | None = None
    _process: object = field(default=None, repr=False)

    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self, device: torch.device) -> None:
        """Starts measuring; a background thread samples RSS every SAMPLE_SECONDS until `peaks_mb`."""
        import psutil

        self._process = psutil.Process(os.getpid())
        self.device = device
        self.peak_rss = self._process.memory_info().rss
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        threading.Thread(target=self._watch, daemon=True, name="gsedit-memory").start()

    def _watch(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)

    def peaks_mb(self) -> tuple[float, float | None]:
        """(peak RSS, peak CUDA memory or None) in MiB since `start`; stops the sampling."""
        self._stop.set()
        self.sample()
        cuda = None
        if self.device is not None and self.device.type == "cuda":
            cuda = torch.cuda.max_memory_allocated(self.device) / 2**20
        return self.peak_rss / 2**20, cuda
