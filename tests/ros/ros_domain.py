"""Claim a ROS_DOMAIN_ID no other live process on this machine holds (lock files with the owner's pid)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "inril-ros-domains"
# 0-101 are safe on Linux (ros2-notes §6); 0 is the default a developer's own nodes use, so tests start at 1.
DOMAIN_RANGE = range(1, 102)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_domain_id(pid: int | None = None) -> int:
    """The first domain id whose lock is free or held by a dead process; the lock names ``pid``."""
    pid = os.getpid() if pid is None else pid
    LOCK_DIR.mkdir(exist_ok=True)
    start = pid % len(DOMAIN_RANGE)
    for offset in range(len(DOMAIN_RANGE)):
        domain = DOMAIN_RANGE[(start + offset) % len(DOMAIN_RANGE)]
        lock = LOCK_DIR / str(domain)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(lock.read_text() or 0)
            except (OSError, ValueError):
                continue
            if owner == pid:
                return domain
            if owner and not _alive(owner):
                lock.unlink(missing_ok=True)
                try:
                    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    continue
            else:
                continue
        with os.fdopen(fd, "w") as f:
            f.write(str(pid))
        return domain
    raise RuntimeError(f"every ROS domain id in {DOMAIN_RANGE} is held by a live process (locks in {LOCK_DIR})")
