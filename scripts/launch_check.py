"""gpu_check.sh's launch step: `summary LABEL` prints one line of a training run's JSON
result (stdin); `compare DIR_A DIR_B` says whether two runs recorded the same losses and
accuracies every epoch (exit 1 if not)."""
import json
import sys


def records(run_dir):
    with open(f"{run_dir}/metrics.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


if sys.argv[1] == "summary":
    summary = json.loads(sys.stdin.read().strip().splitlines()[-1])
    final = summary.get("final_eval", {})
    print(
        f"  {sys.argv[2]:>8}: best top-1 {summary.get('best_top1')}, final test loss "
        f"{final.get('loss')}, {summary.get('train_seconds', 0):.1f} s of training"
    )
else:
    a, b = records(sys.argv[2]), records(sys.argv[3])
    keys = ["train_loss", "test_loss", "test_top1"]
    same = len(a) == len(b) and all(x[k] == y[k] for x, y in zip(a, b) for k in keys)
    print(f"  metrics.jsonl: {'identical' if same else 'DIFFERENT'} {', '.join(keys)} over {len(a)} epochs")
    if not same and len(a) == len(b):
        worst = max(
            abs(x[k] - y[k]) / max(abs(x[k]), 1e-12) for x, y in zip(a, b) for k in keys
        )
        print(f"  largest relative difference: {worst:.2e}")
    sys.exit(0 if same else 1)
