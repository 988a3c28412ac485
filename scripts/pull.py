#!/usr/bin/env python
"""Prefetch a Hub repo into the local cache for offline use (then set HF_HUB_OFFLINE=1).

    python scripts/pull.py me/lite0-fashion-finetune [--revision main] [--local_dir DIR]

Prints the local folder. `timm.create_model("hf-hub:ID", pretrained=True)` then works offline.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402


@dataclass
class PullArguments:
    repo_id: str = field(metadata={"help": "Hub repo id (USER/NAME, hf-hub: prefix allowed)."})
    revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit; default main."})
    repo_type: str = field(default="model", metadata={"help": "model | dataset | space."})
    local_dir: str | None = field(default=None, metadata={"help": "Also materialise the files in this folder (default: the HF cache only)."})


def main(argv: list[str] | None = None) -> str:
    (args,) = parse_args((PullArguments,), argv, positional=("repo_id",))
    from hfdl.hub.push import pull

    path = pull(args.repo_id, revision=args.revision, repo_type=args.repo_type, local_dir=args.local_dir)
    print(path)
    return str(path)


if __name__ == "__main__":
    run_main(main)
