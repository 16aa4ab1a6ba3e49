"""Writing benchmark results into docs/benchmarks.md: each benchmark owns the sections it names."""

from __future__ import annotations

import os
import platform
import subprocess


def replace_section(path: str, title: str, body: str) -> None:
    """Replaces the section that starts with ``title`` (a ``## `` heading) by ``body``, or appends it; atomic."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if title in text:
        start = text.index(title)
        following = text.find("\n## ", start + len(title))
        text = text[:start] + body + (text[following:] if following != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    tmp = path + ".tmp"
    with open(tmp, "w") as stream:
        stream.write(text)
    os.replace(tmp, path)


def machine_line() -> str:
    """``commit abc1234, x86_64, 2 cores``: where and on what the numbers were measured."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return f"commit {commit}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
