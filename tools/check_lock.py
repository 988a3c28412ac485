#!/usr/bin/env python3
"""Check that every package pinned in requirements.lock is installed at the locked version.

Usage: python tools/check_lock.py [LOCKFILE]   (default: requirements.lock at the repo root)
Run it with the interpreter of the environment to check (`make check-lock` uses .venv/bin/python).
Prints one line per mismatch and a fix hint, exit 1; or one OK line, exit 0. Packages installed but not in the
lock (extra pytest plugins, tools) are not checked. Stdlib only.
"""

import re
import sys
from importlib import metadata
from pathlib import Path

DEFAULT_LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def normalize(name: str) -> str:
    """PEP 503 name: lowercase, runs of -, _ and . become one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise SystemExit(f"check_lock: {path}:{n}: not a name==version line: {raw!r}")
        pins[normalize(name.strip())] = version.strip()
    return pins


def installed_versions() -> dict[str, str]:
    versions = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(normalize(name), dist.version)  # first on sys.path wins, as for imports
    return versions


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    lock = Path(argv[0]) if argv else DEFAULT_LOCK
    if not lock.is_file():
        print(f"check_lock: {lock} not found; run make lock to create it")
        return 1
    pins = read_lock(lock)
    have = installed_versions()
    bad = 0
    for name, want in sorted(pins.items()):
        got = have.get(name)
        if got is None:
            print(f"{name}: not installed, lock {want}")
            bad += 1
        elif got != want:
            print(f"{name}: installed {got}, lock {want}")
            bad += 1
    if bad:
        print(f"check_lock: {bad} of {len(pins)} locked packages differ: run ./setup.sh to install the locked versions, or make lock to refresh the lock")
        return 1
    print(f"check_lock: ok ({len(pins)} packages match {lock.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
