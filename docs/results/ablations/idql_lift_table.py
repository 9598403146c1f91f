"""The table of docs/results/ablations/README.md from the summaries: each IDQL variant on Lift against the
algorithm table's own IDQL rows (docs/results/paper/algorithms-lift), per arm the final success (mean, 95% CI),
the mean over the first evaluation after fine-tuning began (9.6k env steps) and the mean while training.

    python docs/results/ablations/idql_lift_table.py
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).parent
ARMS = ("idql/in-ril", "idql/rl-only", "idql/bc-reg")
VARIANTS = {  # folder: what the variant changes (its overrides are in its summary.json's command)
    HERE.parent / "paper": "none (the algorithm table)",
    HERE / "idql-lift-awr-beta1": "advantage-weighted actor, beta 1",
    HERE / "idql-lift-awr-beta3": "advantage-weighted actor, beta 3",
    HERE / "idql-lift-min-sampling-std-0.05": "exploration std floor 0.05 (0.1)",
    HERE / "idql-lift-actor-lr-3e-5": "actor lr 3e-5 (1e-4)",
    HERE / "idql-lift-actor-lr-0": "actor lr 0: no replay denoising",
    HERE / "idql-lift-pick-margin-3": "pick margin 3 (1)",
}


def first_evaluation(folder: Path, arm: str) -> float:
    """Mean success over seeds at each run's first evaluation after step 0."""
    with (folder / "algorithms-lift" / "all_evals.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == arm and r["iteration"] != "0"]
    first = {}
    for r in rows:  # rows are in iteration order per seed
        first.setdefault(r["seed"], float(r["success_rate"]))
    return sum(first.values()) / len(first)


def main() -> None:
    print("| actor / acting change | arm | final (95% CI) | first evaluation | mean while training |")
    print("|---|---|---|---|---|")
    for folder, change in VARIANTS.items():
        path = folder / "algorithms-lift" / "summary.json"
        if not path.exists():
            continue
        methods = json.loads(path.read_text())["methods"]
        for arm in ARMS:
            m = methods[arm]
            lo, hi = m["final_ci95"]
            print(f"| {change} | {arm} | {m['final_mean']:.2f} [{lo:.2f}, {hi:.2f}] | "
                  f"{first_evaluation(folder, arm):.2f} | {m['during_mean']:.2f} |")


if __name__ == "__main__":
    main()
