"""Re-evaluate IDQL runs made before ``rl.pick_margin`` existed with the margin, through IDQL's own greedy pick.

Their checkpoints carry no running TD error, so it is taken from each run's last three iterations of metrics.csv
(q_loss is the twins' summed MSE: RMS TD = sqrt(q_loss / 2)); the evaluation is the run's own (task, seeds, episodes).
Prints one JSON line per run: success, and the share of decisions where the pick replaced the policy's mode.

    .venv/bin/python docs/results/paper/pick-margin-transport/reeval.py RUN [RUN ...] [--margin 1.0]
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from inril_core.agent import DiffusionAgent
from inril_core.checkpoint import load_latest
from inril_core.config import load_run_config
from inril_core.rl import build_algorithm
from inril_core.run_log import read_csv
from inril_core.training import evaluate_algorithm


def reevaluate(run: Path, margin: float) -> dict:
    tensors = load_latest(run)[1]
    agent = DiffusionAgent.from_tensors(tensors)
    cfg = load_run_config(run)
    OmegaConf.set_struct(cfg, False)
    cfg.rl.pick_margin = margin
    algo = build_algorithm(cfg, agent)
    algo.load_tensors(tensors)
    last = read_csv(run / "metrics.csv")[-3:]
    td_rms = math.sqrt(sum(r["q_loss"] for r in last) / len(last) / 2)
    algo.td_rms.value.fill_(td_rms)
    replaced: list[bool] = []
    pick = algo._pick

    def counting_pick(obs: torch.Tensor, greedy: bool) -> torch.Tensor:
        chosen = pick(obs, greedy)
        mode = algo.policy.sample_ddim(obs, eta=0.0)
        replaced.extend((chosen - mode).flatten(1).abs().amax(1).gt(1e-6).tolist())
        return chosen

    algo._pick = counting_pick
    result = evaluate_algorithm(cfg, algo)
    return {"run": str(run), "pick_margin": margin, "td_rms": round(td_rms, 4), "success": result.success_rate,
            "replaced_frac": round(float(np.mean(replaced)), 4), "n_episodes": result.n_episodes}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--margin", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        print(json.dumps(reevaluate(run, args.margin)), flush=True)
