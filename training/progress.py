"""One progress bar style for every long step (prepare, decoding, scoring, leave-source-out).

tqdm shows done/total, rate and time left. In a terminal it redraws often; written to a log file
(a nice'd background job) it refreshes at most every ``LOG_INTERVAL`` seconds so the log stays
readable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_INTERVAL = 15.0


def progress(
    items: Iterable[T], total: int | None, description: str, unit: str = "file"
) -> Iterator[T]:
    """``items`` unchanged, with a bar on stderr (``prepare: 40% 512/1280 [00:10<00:15,
    51 file/s]``: done/total, elapsed<left, rate)."""
    interactive = sys.stderr.isatty()
    yield from tqdm(
        items,
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        mininterval=0.2 if interactive else LOG_INTERVAL,
        dynamic_ncols=interactive,
        ascii=not interactive,
    )
