"""One process against N under torchrun: training throughput and the losses.

Runs ``python -m core.train`` once as a single process and once as
``torchrun --standalone --nproc-per-node N`` with the same flags and seed, then
reads both runs' ``metrics.jsonl``:

    python benchmarks/bench_distributed.py --data PATH               # default model, 200 steps
    python benchmarks/bench_distributed.py --data PATH --nproc 2 --steps 300

Throughput is the global batch's tokens per second of training time, from the
second step on (the first pays for warm-up). The loss columns give the largest
relative difference between the two runs' per-step losses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} ... failed:\n{done.stderr[-2000:]}")


def read(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "train"]


def tokens_per_s(rows: list[dict], tokens_per_step: int) -> float:
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) * tokens_per_step / (last["elapsed_s"] - first["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="corpus (UTF-8 text)")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    args = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--data-path", str(Path(args.data).resolve()), "--steps", str(args.steps),
                 "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
                 "--log-every", "1", "--eval-every", "0", "--save-every", "0", "--device", "cpu"]
        one_dir, many_dir = Path(tmp) / "one", Path(tmp) / "many"
        run([sys.executable, "-m", "core.train", *flags, "--save-dir", str(one_dir)], env)
        run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
             str(args.nproc), "-m", "core.train", *flags, "--save-dir", str(many_dir)], env)
        one, many = read(one_dir), read(many_dir)

    tokens = args.batch_size * args.seq_len
    worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(one, many, strict=True))
    print(f"B{args.batch_size} x T{args.seq_len}, {args.steps} steps, CPU, {os.cpu_count()} cores")
    print(f"{'processes':>10} {'tokens/s':>10} {'final loss':>11}")
    print(f"{1:>10} {tokens_per_s(one, tokens):>10,.0f} {one[-1]['loss']:>11.4f}")
    print(f"{args.nproc:>10} {tokens_per_s(many, tokens):>10,.0f} {many[-1]['loss']:>11.4f}")
    print(f"largest relative difference of the per-step losses: {worst:.1e}")


if __name__ == "__main__":
    main()
