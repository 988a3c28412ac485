"""The `--push_to_hub` flags every training script shares."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hfdl.errors import HfdlError
from hfdl.hub.push import check_repo_id

logger = logging.getLogger(__name__)


@dataclass
class HubArguments:
    push_to_hub: bool = field(default=False, metadata={"help": "Publish the finished run to the Hugging Face Hub (token from HF_TOKEN or `hf auth login`)."})
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Repo id USER/NAME (NAME alone: your namespace). Several strategies: one repo each, NAME-<strategy>."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the repo private."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created from main when missing); default main."})

    def __post_init__(self):
        if self.push_to_hub and not self.hub_model_id:
            raise HfdlError("--push_to_hub needs --hub_model_id USER/NAME (the repo to create or update)")
        if self.hub_model_id:
            check_repo_id(self.hub_model_id)
