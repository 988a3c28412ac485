#!/usr/bin/env python
"""Generate text with a trained char-LM (a folder written by train_char_lm.py, or a Hub id).

python scripts/sample_char_lm.py --model outputs/austen_lstm --prompt "It is a truth" --max_new_tokens 300 --temperature 0.8 --seed 0
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hfdl.core.cli import parse_args, run_main  # noqa: E402


@dataclass
class SampleArguments:
    model: str = field(metadata={"help": "Folder written by scripts/train_char_lm.py, or a Hub id."})
    prompt: str = field(default="\n", metadata={"help": "Text to continue (characters outside the vocabulary map to <unk> with a warning)."})
    max_new_tokens: int = field(default=300, metadata={"help": "Characters to generate."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature; 0 = greedy."})
    top_k: int | None = field(default=None, metadata={"help": "Keep the k most likely characters (0/None = off)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling mass in (0, 1] (None/1 = off)."})
    seed: int | None = field(default=None, metadata={"help": "Seed for reproducible samples."})
    stream: bool = field(default=False, metadata={"help": "Print characters as they are generated."})
    debug: bool = field(default=False, metadata={"help": "Show full tracebacks."})


def main(argv: list[str] | None = None) -> str:
    (args,) = parse_args((SampleArguments,), argv)
    from hfdl.tasks.char_lm.model import check_sampling, load_char_lm

    check_sampling(args.temperature, args.top_k, args.top_p, args.max_new_tokens)
    gen = load_char_lm(args.model)
    if args.stream:
        sys.stdout.write(args.prompt)
        parts = [args.prompt]
        for chunk in gen.stream(args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed):
            sys.stdout.write(chunk)
            sys.stdout.flush()
            parts.append(chunk)
        sys.stdout.write("\n")
        return "".join(parts)
    text = gen.generate(args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    print(text)
    return text


if __name__ == "__main__":
    run_main(main)
