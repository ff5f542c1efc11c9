"""Registration CPU per lifecycle of two checkouts, measured side by side.

On a shared machine the same code's CPU per lifecycle moves by 10 to 20 % between runs made a
minute apart, which hides a change worth a few milliseconds. This runs one `acceso dev` stack
per checkout at once and drives them in alternating batches (the order flips every round), so
both see the same load; it prints the running figures after each round and the totals by tier.

    .venv/bin/python bench/compare_registration.py /path/to/other-checkout [--rounds 8] [--batch 25]

The other checkout needs its own .venv (`make install` there), e.g. a `git worktree` of main.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from registration import TIERS, closed_loop, cpu_by_tier  # noqa: E402 (bench/ holds scripts)
from stack import ROOT, Stack, load_average  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the checkout to compare this one with")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=25, help="lifecycles per stack per round")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    roots = {"other": args.other.resolve(), "this": ROOT}
    stacks: dict[str, Stack] = {}
    try:
        for name, root in roots.items():
            stacks[name] = Stack(root=root)
        for stack in stacks.values():
            stack.import_patients(0, 10 + args.rounds * args.batch)
            closed_loop(stack, 0, 10, 4)
        used = {name: dict.fromkeys(TIERS, 0.0) for name in stacks}
        done = dict.fromkeys(stacks, 0)
        print(f"other: {roots['other']}; this: {roots['this']}; {load_average()}", flush=True)
        for round_ in range(args.rounds):
            first = 10 + round_ * args.batch
            order = list(stacks) if round_ % 2 == 0 else list(reversed(stacks))
            for name in order:
                before = cpu_by_tier(stacks[name])
                timings = closed_loop(stacks[name], first, args.batch, args.concurrency)
                time.sleep(0.3)  # the last "user confirmed" e-mail's activity has finished
                after = cpu_by_tier(stacks[name])
                for tier in TIERS:
                    used[name][tier] += after[tier] - before[tier]
                done[name] += len(timings.done)
                if timings.failures:
                    print(f"  {name}: {len(timings.failures)} failed: {timings.failures[:2]}")
            running = ", ".join(
                f"{name} {sum(used[name].values()) * 1000 / max(done[name], 1):.1f} ms"
                for name in stacks
            )
            print(f"round {round_ + 1}: {running} ({load_average()})", flush=True)
        for name in stacks:
            per = {tier: used[name][tier] * 1000 / max(done[name], 1) for tier in TIERS}
            print(
                f"{name}: {done[name]} lifecycles, {sum(per.values()):.1f} ms"
                f" (web {per['web']:.1f} + worker {per['worker']:.1f}"
                f" + Temporal {per['temporal']:.1f})"
            )
    finally:
        for stack in stacks.values():
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
