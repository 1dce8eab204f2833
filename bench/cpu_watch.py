"""The benches' noise check: CPU used by the bench (this process, its Spark JVM, and e.g. the
Kafka broker) versus everything else on the machine, read from /proc (Linux)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _procs(children: bool = False) -> dict[int, tuple[int, int, bytes]]:
    """pid -> (parent pid, CPU ticks used so far, command line); `children` adds the ticks of
    its reaped children (a task process's finished spark-submit)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes()
            last = 15 if children else 13
            out[int(d.name)] = (int(fields[1]), sum(int(x) for x in fields[11:last]), cmd)
        except (OSError, ValueError, IndexError):
            continue
    return out


def _busy_ticks() -> int:
    """CPU ticks the whole machine has spent busy (not idle, not waiting on I/O)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(f) - f[3] - f[4]


def _tree(procs: dict[int, tuple[int, int, bytes]], roots: set[int]) -> set[int]:
    tree, grew = set(roots) & set(procs), True
    while grew:
        kids = {pid for pid, (ppid, _, _) in procs.items() if ppid in tree} - tree
        tree |= kids
        grew = bool(kids)
    return tree


def cpu_seconds(also: tuple[int, ...] = ()) -> float:
    """CPU seconds used so far by this process, its children (the Spark JVM) and `also`
    (processes that end in between are not counted; the ones here live throughout)."""
    procs = _procs()
    return sum(procs[p][1] for p in _tree(procs, {os.getpid(), *also})) / _TICK


class CpuWatch:
    """How many cores this bench (this process, its Spark JVM and `also`) and everything else
    used while the block ran. Says it with `say`; adds it to `notes` when noisy (or always)."""

    def __init__(
        self,
        label: str,
        notes: list[str],
        say: Callable[[str], None],
        also: tuple[int, ...] = (),
        note_always: bool = False,
    ) -> None:
        self.label, self.notes, self.say, self.also = label, notes, say, also
        self.note_always = note_always

    def __enter__(self) -> CpuWatch:
        self.t, self.busy, self.procs = time.perf_counter(), _busy_ticks(), _procs()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t
        busy = _busy_ticks() - self.busy
        procs = _procs()
        mine = _tree(procs, {os.getpid(), *self.also})
        used = sum(procs[p][1] - self.procs.get(p, (0, 0, b""))[1] for p in mine)
        ours = used / _TICK / wall
        other = max(0.0, (busy - used) / _TICK / wall)
        jvms = [
            p
            for p, (_, _, cmd) in sorted(procs.items())
            if b"spark.deploy.SparkSubmit" in cmd and p not in mine
        ]
        msg = (
            f"cpu during {self.label}: the bench used {ours:.2f} cores, everything else "
            f"{other:.2f} of {os.cpu_count()} (load avg {os.getloadavg()[0]:.1f})"
        )
        if jvms:
            msg += f"; other Spark JVMs running: {jvms}"
        self.say(msg)
        noisy = other > 0.25 or bool(jvms)
        if noisy or self.note_always:
            self.notes.append(msg + (" -> these timings are noisy" if noisy else ""))
