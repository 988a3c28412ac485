"""Publish finished runs to the Hugging Face Hub and pull them back; model cards with `model-index` metrics.

    errors    every Hub failure as a one-line HfdlError that says what to do next
    push      token, staging, push_files (one commit), pull (snapshot for offline use)
    cards     render_card over model_cards/<task>.md, eval_results for model-index, shared card pieces
    registry  RepoPlan, the per-task registry, push_run, cards written after training
    spaces    an app folder under spaces/ published as a Space with the hfdl package
    args      the --push_to_hub flags every training script shares

A task registers `plans(out, hub_model_id, only) -> {name: RepoPlan}` and fills its card template;
staging, pushing, error handling and `model-index` come from here.
"""

from hfdl.hub.args import HubArguments
from hfdl.hub.cards import PLACEHOLDERS, eval_results, markdown_table, render_card
from hfdl.hub.errors import endpoint, hub_errors
from hfdl.hub.push import IGNORE_PATTERNS, check_repo_id, pull, push_files, require_token, stage
from hfdl.hub.registry import RepoPlan, plans, push_run, register, write_cards

__all__ = [
    "IGNORE_PATTERNS", "PLACEHOLDERS", "HubArguments", "RepoPlan", "check_repo_id", "endpoint", "eval_results", "hub_errors",
    "markdown_table", "plans", "pull", "push_files", "push_run", "register", "render_card", "require_token", "stage", "write_cards",
]  # fmt: skip
