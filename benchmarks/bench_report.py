"""Writing benchmark results into docs/benchmarks.md: each benchmark owns the sections it names."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import threading
import time


def replace_section(path: str, title: str, body: str, level: int = 2) -> None:
    """Replaces the section that starts with ``title`` (a heading of ``level``: 2 for ``## ``) by ``body``, up to the
    next heading of that level, or appends it; atomic."""
    text = open(path).read() if os.path.exists(path) else ("# Benchmarks\n" if level > 1 else "")
    if title in text:
        start = text.index(title)
        following = text.find("\n" + "#" * level + " ", start + len(title))
        text = text[:start] + body + (text[following:] if following != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body if text.strip() else body
    write_text_atomically(path, text)


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a staging file, so a reader never sees half of it."""
    staging = path + ".partial"
    with open(staging, "w") as stream:
        stream.write(text)
    os.replace(staging, path)


def machine_line() -> str:
    """``commit abc1234, x86_64, 2 cores``: where and on what the numbers were measured."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return f"commit {commit}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def resident_mb() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize() / 2**20


def peak_growth(run, read=resident_mb, interval: float = 0.002) -> float:
    """The peak of ``read()`` (a memory level) while ``run()`` runs, sampled every ``interval`` seconds, above its
    level just before."""
    baseline, peak, running = read(), [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], read())
            time.sleep(interval)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        running[0] = False
        sampler.join()
    return max(peak[0], read()) - baseline


def peak_growth_mb(run) -> float:
    """Peak resident set size while ``run()`` runs (sampled every 2 ms) above the level just before it, in MB."""
    return peak_growth(run, resident_mb)
