#!/usr/bin/env python
"""Publish a Gradio app under spaces/ as a Hugging Face Space, in one commit: the folder as it is
(README.md front matter, app.py, requirements.txt, bundled models and examples) plus the hfdl
package at the Space root, where the app's `import hfdl` finds it.

    python scripts/push_space.py spaces/style_transfer --space_id me/style-transfer

The token comes from HF_TOKEN or `hf auth login`; it is never printed or written.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.hub.push import check_repo_id  # noqa: E402


@dataclass
class SpaceArguments:
    space_dir: str = field(metadata={"help": "The app folder, spaces/<name>."})
    space_id: str = field(metadata={"help": "Space repo id USER/NAME (created when missing, sdk gradio)."})
    private: bool = field(default=False, metadata={"help": "Create the Space private."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (created when missing)."})

    def __post_init__(self):
        check_repo_id(self.space_id)


def main(argv: list[str] | None = None) -> str:
    (args,) = parse_args((SpaceArguments,), argv, positional=("space_dir",))
    from hfdl.hub.spaces import push_space

    url = push_space(args.space_dir, args.space_id, private=args.private, revision=args.revision)
    print(f"pushed Space {args.space_id}: {url}")
    return url


if __name__ == "__main__":
    run_main(main)
