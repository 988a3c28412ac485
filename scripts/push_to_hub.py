#!/usr/bin/env python
"""Publish a finished hfdl run to the Hugging Face Hub with its model card (any task: finetune,
char-LM, style). A run with several models (strategies, cell types) gives one repo each: ID-<name>.

    python scripts/push_to_hub.py outputs/finetune --hub_model_id me/lite0-fashion            # me/lite0-fashion-feature, -finetune
    python scripts/push_to_hub.py outputs/finetune --hub_model_id me/lite0-ft --only finetune
    python scripts/push_to_hub.py outputs/char_lm --hub_model_id me/austen-lstm --card_only    # write README.md files, no upload

The token comes from HF_TOKEN or `hf auth login`; it is never printed or written.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.hub.push import check_repo_id  # noqa: E402


@dataclass
class PushArguments:
    output_dir: str = field(metadata={"help": "A finished run's --output_dir (holds all_results.json and run_config.json)."})
    hub_model_id: str = field(metadata={"help": "Repo id USER/NAME; a run with several models goes to NAME-<model>."})
    only: str | None = field(
        default=None, metadata={"aliases": ["--strategy"], "help": "Publish only these models of the run (comma list of strategies / cell types)."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the repos private."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created when missing)."})
    card_only: bool = field(default=False, metadata={"help": "Write each repo's model card next to its files (README.md); upload nothing."})

    def __post_init__(self):
        check_repo_id(self.hub_model_id)
        if not os.path.isdir(self.output_dir):
            raise HfdlError(f"{self.output_dir} is not a folder: pass the --output_dir of a finished run")


def main(argv: list[str] | None = None) -> dict[str, str]:
    (args,) = parse_args((PushArguments,), argv, positional=("output_dir",))
    from hfdl.hub.registry import plans, push_run
    from hfdl.tasks import load_all

    load_all()

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if args.card_only:
        written = {}
        for name, plan in plans(args.output_dir, args.hub_model_id, only).items():
            path = plan.model_folder / "README.md"
            plan.card.save(str(path))
            written[name] = str(path)
            print(f"{name}: card for {plan.repo_id} written to {path}")
        return written
    urls = push_run(args.output_dir, args.hub_model_id, only, private=args.hub_private, revision=args.hub_revision)
    for name, url in urls.items():
        print(f"pushed {name}: {url}")
    return urls


if __name__ == "__main__":
    run_main(main)
