"""The machine a benchmark ran on, for the results tables."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        torch_v, threads = torch.__version__, torch.get_num_threads()
    except ImportError:
        torch_v, threads = None, None
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem_gib, "python": platform.python_version(),
            "torch": torch_v, "torch_threads": threads}


def machine_line() -> str:
    m = machine()
    return (f"{m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB RAM, Python {m['python']}, "
            f"torch {m['torch']} ({m['torch_threads']} threads)")
