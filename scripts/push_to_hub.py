#!/usr/bin/env python
"""Publish a finished hfdl run to the Hugging Face Hub (one repo per strategy), with its model card.

    python scripts/push_to_hub.py outputs/finetune --hub_model_id me/lite0-fashion            # me/lite0-fashion-feature, -finetune
    python scripts/push_to_hub.py outputs/finetune --hub_model_id me/lite0-ft --strategy finetune
    python scripts/push_to_hub.py outputs/finetune --hub_model_id me/lite0-ft --strategy finetune --card_only   # write README.md, no upload

The token comes from HF_TOKEN or `hf auth login`; it is never printed or written.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.cli import parse_args, run_main  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.hub import check_repo_id, strategy_repo_ids  # noqa: E402


@dataclass
class PushArguments:
    output_dir: str = field(metadata={"help": "A finished run's --output_dir (holds all_results.json and run_config.json)."})
    hub_model_id: str = field(metadata={"help": "Repo id USER/NAME; several strategies go to NAME-<strategy>."})
    strategy: str | None = field(default=None, metadata={"help": "Publish only this strategy (comma list allowed); default all of the run."})
    hub_private: bool = field(default=False, metadata={"help": "Create the repos private."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created when missing)."})
    card_only: bool = field(default=False, metadata={"help": "Write each strategy's model card to <output_dir>/<strategy>/README.md; upload nothing."})

    def __post_init__(self):
        check_repo_id(self.hub_model_id)
        if not os.path.isdir(self.output_dir):
            raise HfdlError(f"{self.output_dir} is not a folder: pass the --output_dir of a finished run")


def main(argv: list[str] | None = None) -> dict[str, str]:
    (args,) = parse_args((PushArguments,), argv, positional=("output_dir",))
    from hfdl.transfer import _finished, model_card, push_run

    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()] if args.strategy else None
    if args.card_only:
        all_results, _ = _finished(__import__("pathlib").Path(args.output_dir))
        chosen = strategies or list(all_results)
        ids = strategy_repo_ids(args.hub_model_id, chosen)
        paths = {}
        for s in chosen:
            path = os.path.join(args.output_dir, s, "README.md")
            model_card(args.output_dir, s, ids[s]).save(path)
            paths[s] = path
            print(f"{s}: card for {ids[s]} written to {path}")
        return paths
    urls = push_run(args.output_dir, args.hub_model_id, strategies, private=args.hub_private, revision=args.hub_revision)
    for s, url in urls.items():
        print(f"pushed {s}: {url}")
    return urls


if __name__ == "__main__":
    run_main(main)
