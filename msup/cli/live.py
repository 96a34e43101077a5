"""`msup study status --watch`: a view of a running study, redrawn in the terminal until Ctrl-C.

It only reads the study (its storage and study file), so leaving it, or
running several, changes nothing for the driver.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

BAR_WIDTH, FRONT_ROWS = 30, 5
_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen


def render(info: Mapping[str, Any]) -> str:
    """One frame: progress against the budget (each limit), counts, time, running trials and the top of the front."""
    from msup.search.state.account import describe, fraction_used

    used = fraction_used(info["budget"])  # the limit nearest its end sets the bar and the ETA
    filled = min(BAR_WIDTH, round(BAR_WIDTH * used))
    eta = f"   ETA {_duration(info['eta_s'])}" if info.get("eta_s") is not None and info["driver_running"] else ""
    lines = [
        f"study {info['study']} ({info['folder']}); driver {driver_text(info)}",
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {describe(info['budget'])} {100 * used:3.0f}%"
        f"   elapsed {_duration(info['elapsed_s'])}{eta}",
        " · ".join(f"{state} {count}" for state, count in info["counts"].items()),
    ]
    if info["running"]:
        lines.append("running:")
        for trial in info["running"]:
            accuracy = next(k for k in trial if k not in ("trial", "epoch", "epochs"))
            of = f"/{trial['epochs']}" if trial["epochs"] else ""
            lines.append(f"  trial {trial['trial']:>5}  epoch {trial['epoch']:>3}{of}  {accuracy} {trial[accuracy]:.4f}")
    front = info["front"]
    if front:
        lines.append(f"front ({min(FRONT_ROWS, len(front))} of {len(front)}, smallest first):")
        lines += ["  " + "  ".join(_cell(k, v) for k, v in point.items()) for point in front[:FRONT_ROWS]]
    return "\n".join(lines)


def driver_text(info: Mapping[str, Any]) -> str:
    """Whether a driver runs the study, and whose it is where a lease names it."""
    if "driver" in info:
        return f"running ({info['driver']})"
    return "running" if info["driver_running"] else "not running"


def watch(read: Callable[[], Mapping[str, Any]], every_s: float, out: TextIO = sys.stdout) -> int:
    """Redraw ``read()`` every ``every_s`` seconds until Ctrl-C (exit 0); plain frames when not a terminal.

    Ctrl-C only raises a flag, checked between frames: as an exception it could land inside the
    storage's driver, which may swallow it, and the view would go on.
    """
    clear, stopped = _CLEAR if out.isatty() else "", threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stopped.set())
    try:
        while not stopped.is_set():
            frame = render(read())
            print(f"{clear}{frame}\n(every {every_s:g} s; Ctrl-C leaves, the study goes on)", file=out, flush=True)
            if not stopped.is_set():
                time.sleep(every_s)  # Ctrl-C here ends the view once the sleep is over
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def _cell(key: str, value: Any) -> str:
    return f"{key}={value:.4g}" if isinstance(value, float) and not math.isnan(value) else f"{key}={value}"
