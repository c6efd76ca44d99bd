"""The longest steps of a ``python -m scim serve`` process's event loop, and what ran in them: a benchmark probe.

One instance serves every tenant on one event loop, and a step of it (a callback, or one slice of a task between two
``await``s) holds every other request until it returns. ``bench/fairness.py --stalls`` runs its victim's instance
through this script instead of ``python -m scim``; nothing here is imported by the app.

Every step of the loop is timed (``asyncio.events.Handle._run``, wall and thread CPU time). A sampler thread looks
at the loop's thread every :data:`SAMPLE_SECONDS` and, while a step has run for over a millisecond, records its
stack, so that a long step comes with what ran in it, not only where it stopped. Each step of at least
``SCIM_STALLS_MS`` (default 5) is appended to ``SCIM_STALLS_OUT`` as a JSON line: its end (``time.time()``), wall and
CPU milliseconds, how many times the OS preempted the loop's thread during it, the garbage collector's time in it,
the generations it collected and the unreachable objects it found, and its sampled stacks, innermost frame last. A
step's wall time includes the time the thread waited for a core (the machine is shared, and Azurite runs on it); its
CPU time does not: a long step with little CPU was the OS's doing, not the instance's.

A heartbeat also asks the loop for a callback every :data:`BEAT_SECONDS` and records how late it ran: the wait of
any request's step for the loop, whatever held it (one long step or many short ones ahead in its queue). The lags
are appended once a second as ``{"end": …, "lags_ms": […]}``.

The probe costs a little: two clock reads and a ``getrusage`` per step, and the sampler's wake-ups (the interpreter's
switch interval is lowered to 1 ms so that the sampler gets its turn inside a long step).

    SCIM_STALLS_OUT=/tmp/stalls.jsonl python bench/loop_stalls.py serve --port 7071   # from the checkout's root
"""

import asyncio.events
import gc
import json
import os
import resource
import runpy
import sys
import threading
import time
from types import FrameType
from typing import IO

SAMPLE_SECONDS = 0.001
SAMPLE_AFTER_SECONDS = 0.001
"""A step is sampled only once it has run this long: most steps take microseconds."""
MAX_SAMPLES = 64
BEAT_SECONDS = 0.005
FRAME_LIMIT = 60


class StallProbe:
    """Times every step of the loops run in this process's main thread; keeps the stacks of the long ones."""

    def __init__(self, out: IO[str], threshold_seconds: float) -> None:
        self.out = out
        self.threshold = threshold_seconds
        self.started: float | None = None
        """When the running step started (``perf_counter``), None between steps."""
        self.samples: list[list[str]] = []
        self.thread = threading.get_ident()
        self.lags: list[float] = []
        self.beating = False
        self.collecting: float | None = None
        self.collected = 0.0
        """Seconds the garbage collector ran during the current step, and the generations it collected."""
        self.generations: list[int] = []
        self.garbage = 0
        """Unreachable objects the collector found in the current step."""

    def install(self) -> None:
        original = asyncio.events.Handle._run
        probe = self

        def timed_run(handle: asyncio.events.Handle) -> None:
            if not probe.beating:
                probe.beating = True
                handle._loop.call_soon(probe.beat, handle._loop, time.perf_counter(), time.time() + 1)
            probe.samples, probe.collected, probe.generations, probe.garbage = [], 0.0, [], 0
            preempted = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
            cpu = time.thread_time()
            probe.started = started = time.perf_counter()
            try:
                original(handle)
            finally:
                wall = time.perf_counter() - started
                probe.started = None
                if wall >= probe.threshold:
                    preempted = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw - preempted
                    probe.record(wall, time.thread_time() - cpu, preempted)

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self.on_gc)
        sys.setswitchinterval(SAMPLE_SECONDS)
        threading.Thread(target=self.sample, name="stall-sampler", daemon=True).start()

    def sample(self) -> None:
        while True:
            time.sleep(SAMPLE_SECONDS)
            started = self.started
            if started is None or time.perf_counter() - started < SAMPLE_AFTER_SECONDS:
                continue
            frame = sys._current_frames().get(self.thread)
            if frame is not None and len(self.samples) < MAX_SAMPLES and self.started == started:
                self.samples.append(stack(frame))

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.collecting = time.perf_counter()
        elif self.collecting is not None:
            self.collected += time.perf_counter() - self.collecting
            self.generations.append(info["generation"])
            self.garbage += info["collected"]
            self.collecting = None

    def beat(self, loop: asyncio.AbstractEventLoop, due: float, flush_at: float) -> None:
        """One heartbeat: how late it ran; the next one is due :data:`BEAT_SECONDS` from now."""
        now = time.perf_counter()
        self.lags.append(round((now - due) * 1000, 2))
        if time.time() >= flush_at:
            self.out.write(json.dumps({"end": time.time(), "lags_ms": self.lags}) + "\n")
            self.out.flush()
            self.lags, flush_at = [], time.time() + 1
        loop.call_at(loop.time() + BEAT_SECONDS, self.beat, loop, now + BEAT_SECONDS, flush_at)

    def record(self, wall: float, cpu: float, preempted: int) -> None:
        line = {
            "end": time.time(),
            "wall_ms": wall * 1000,
            "cpu_ms": cpu * 1000,
            "preempted": preempted,
            "gc_ms": self.collected * 1000,
            "gc_generations": self.generations,
            "gc_garbage": self.garbage,
            "samples": self.samples,
        }
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


def stack(frame: FrameType | None) -> list[str]:
    """``path:function`` of each frame, outermost first; paths from the package root (``scim/…``, ``azure/…``)."""
    frames: list[str] = []
    while frame is not None and len(frames) < FRAME_LIMIT:
        code = frame.f_code
        frames.append(f"{short_path(code.co_filename)}:{code.co_name}")
        frame = frame.f_back
    return frames[::-1]


def short_path(path: str) -> str:
    root = os.getcwd() + "/"
    if path.startswith(root):
        return path[len(root) :]
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return path


def main() -> None:
    out = open(os.environ["SCIM_STALLS_OUT"], "a", encoding="utf-8")  # noqa: SIM115 (open until the process ends)
    StallProbe(out, float(os.environ.get("SCIM_STALLS_MS") or 5) / 1000).install()
    sys.path.insert(0, os.getcwd())  # the checkout being served (the server runs from its root)
    sys.argv = ["scim", *sys.argv[1:]]
    runpy.run_module("scim", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
