"""What a worker measures of itself and its host for its heartbeat: memory, CPU, load, disk."""

import os
from typing import Any

import psutil
from django.conf import settings

_process: psutil.Process | None = None


def _this_process() -> psutil.Process:
    # One Process object per process: cpu_percent() measures since its previous call.
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
        _process.cpu_percent(None)
    return _process


def measure() -> dict[str, Any]:
    """This process's resident memory and CPU share, the host's 1-minute load and free disk."""
    process = _this_process()
    disk = psutil.disk_usage(settings.CONVEYOR_DISK_PATH)
    return {
        "rss_mb": round(process.memory_info().rss / 2**20, 1),
        "cpu_percent": round(process.cpu_percent(None), 1),
        "load_1m": round(os.getloadavg()[0], 2),
        "disk_free_gb": round(disk.free / 2**30, 2),
        "disk_free_percent": round(100 - disk.percent, 1),
    }
