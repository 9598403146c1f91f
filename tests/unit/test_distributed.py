"""Data-parallel learning on torch.distributed: DDP averages each step's gradients over the ranks (two CPU
processes on gloo, loopback only), and a torchrun fine-tuning run keeps both ranks' weights identical."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import toy_run
from inril_core.checkpoint import load_latest
from inril_core.distributed import GradSync, shutdown

LOOPBACK = {"GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g)


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _grad_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(LOOPBACK, MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = net()
        if rank == 1:  # a different start: DDP must broadcast rank 0's weights
            torch.nn.init.zeros_(model[0].weight)
        x, y = rank_data(rank)
        sync = GradSync(model.parameters())
        sync(lambda: (model(x) - y).pow(2).mean()).backward()
        torch.save({"params": [p.detach() for p in model.parameters()], "grads": [p.grad for p in model.parameters()]},
                   f"{out}/rank{rank}.pt")
    finally:
        shutdown()


def test_ddp_averages_the_gradient_of_a_step_over_the_ranks(tmp_path):
    mp.spawn(_grad_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    expected = []
    for r in range(2):  # each rank's own gradient, computed alone from rank 0's weights
        model = net()
        x, y = rank_data(r)
        (model(x) - y).pow(2).mean().backward()
        expected.append([p.grad for p in model.parameters()])
    for i, p in enumerate(net().parameters()):
        mean = (expected[0][i] + expected[1][i]) / 2
        assert torch.allclose(ranks[0]["grads"][i], mean, atol=1e-6)
        assert torch.equal(ranks[0]["grads"][i], ranks[1]["grads"][i])
        assert torch.equal(ranks[1]["params"][i], p.detach())  # rank 1 started from rank 0's weights


def test_without_a_process_group_gradsync_only_evaluates_the_loss():
    model = net()
    sync = GradSync(model.parameters())
    assert sync.ddp is None and sync(lambda: torch.tensor(3.0)).item() == 3.0


@pytest.mark.parametrize("algo", ["dppo", "residual_ppo", "idql", "rlpd"])
def test_a_torchrun_fine_tuning_run_keeps_both_ranks_identical(tmp_path_factory, algo):
    root = toy_run.pretrained_toy_root(tmp_path_factory, f"ddp-{algo}")
    run_dir = root / "ddp-run"
    env = {**os.environ, **LOOPBACK, "PYTHONPATH": os.pathsep.join([str(Path(toy_run.__file__).parent),
                                                                    os.environ.get("PYTHONPATH", "")])}
    overrides = toy_run.toy_overrides(root, algo) + [f"run.dir={run_dir}", "train.env_steps=100"]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "inril_core.cli", "train", *overrides], env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (step0, weights0, state0), (step1, weights1, state1) = load_latest(run_dir), load_latest(run_dir / "rank1")
    assert step0 == step1 and state0["env_steps"] == state1["env_steps"] >= 100
    assert set(weights0) == set(weights1)
    assert all(torch.equal(weights0[k], weights1[k]) for k in weights0)  # same steps, averaged gradients
    assert (run_dir / "report.json").exists() and not (run_dir / "rank1" / "report.json").exists()
