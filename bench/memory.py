"""Resident memory of the server process: sampled while the load runs, plus the kernel's peak."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil


class RssMonitor:
    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.sampled_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sampled_peak = max(self.sampled_peak, self.rss())

    def rss(self) -> int:
        try:
            return self.process.memory_info().rss
        except psutil.Error:
            return 0

    def peak(self) -> int:
        """The kernel's high-water mark (VmHWM) where there is one, else the sampled peak."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return max(self.sampled_peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        return self.sampled_peak
