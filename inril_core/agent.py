"""The deployable policy: normalisers + diffusion model + chunk execution, mapping raw observations to raw actions.

Everything a policy needs at inference lives here and is saved together (one tensor dict), so a checkpoint can be
loaded by the trainer, the evaluator or a policy server without the config that trained it being reconstructed.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import torch
from torch import nn

from inril_core.policies.denoisers import build_denoiser
from inril_core.policies.diffusion import DiffusionPolicy
from inril_core.policies.normalizer import ActionNormalizer, ObservationNormalizer


class NonFiniteError(RuntimeError):
    """A NaN/Inf observation, action or loss: the run stops rather than command or learn from garbage."""


class DiffusionAgent(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, horizon: int, act_steps: int, n_steps: int, denoiser_cfg: dict,
                 obs_quaternions: list[int] | tuple[int, ...] = (),
                 act_quaternions: list[int] | tuple[int, ...] = ()):
        super().__init__()
        self.spec = {
            "obs_dim": obs_dim, "act_dim": act_dim, "horizon": horizon, "act_steps": act_steps,
            "n_steps": n_steps, "denoiser": dict(denoiser_cfg),
        }
        if obs_quaternions:  # only when used, so earlier checkpoints' specs stay as they were
            self.spec["obs_quaternions"] = [int(s) for s in obs_quaternions]
        if act_quaternions:
            self.spec["act_quaternions"] = [int(s) for s in act_quaternions]
        self.act_steps = act_steps
        self.policy = DiffusionPolicy(
            build_denoiser(denoiser_cfg, obs_dim, act_dim, horizon), obs_dim, act_dim, horizon, n_steps
        )
        self.obs_norm = ObservationNormalizer(obs_quaternions)
        self.act_norm = ActionNormalizer(act_quaternions)

    @classmethod
    def from_config(cls, cfg) -> "DiffusionAgent":
        from omegaconf import OmegaConf

        denoiser = OmegaConf.to_container(cfg.policy.denoiser, resolve=True)
        kind = denoiser["type"]
        keep = {"mlp": ("type", "hidden_dims", "time_dim"), "unet": ("type", "channels", "time_dim")}[kind]
        return cls(
            cfg.env.obs_dim, cfg.env.act_dim, cfg.policy.horizon, cfg.policy.act_steps, cfg.policy.n_steps,
            {k: v for k, v in denoiser.items() if k in keep}, list(cfg.policy.obs_quaternions),
            list(cfg.policy.act_quaternions),
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """Raw (B, obs_dim) numpy observations -> normalised tensor on the agent's device; NaN/Inf refused."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.spec["obs_dim"]:
            raise ValueError(f"observations must have shape (B, {self.spec['obs_dim']}), got {obs.shape}")
        if not np.isfinite(obs).all():
            raise NonFiniteError(f"observation contains NaN/Inf: {obs[~np.isfinite(obs).all(axis=1)][0]}")
        return self.obs_norm.normalize(torch.as_tensor(obs, device=self.device))

    def to_env_actions(self, chunk: torch.Tensor, steps: int | None = None) -> np.ndarray:
        """Normalised (B, H, A) chunk -> the executed raw (B, steps, A) actions; ``steps`` defaults to act_steps
        (what training executes), more is for a server whose decisions come late (policy_server publish_steps)."""
        actions = self.act_norm.unnormalize(chunk[:, : steps or self.act_steps]).cpu().numpy()
        if not np.isfinite(actions).all():
            raise NonFiniteError("the policy produced a NaN/Inf action; the run stops (last checkpoint is kept)")
        return actions

    @torch.no_grad()
    def act_deterministic(
        self, obs: np.ndarray, denoiser_for_step: Callable[[int], nn.Module] | None = None, steps: int | None = None,
        ddim_steps: int | None = None,
    ) -> np.ndarray:
        """Deterministic DDIM (eta=0) action chunk: the evaluation policy (``steps`` as in to_env_actions).
        ``ddim_steps`` below the policy's T samples faster, for a real-time server whose decisions come late."""
        chunk = self.policy.sample_ddim(self.obs_tensor(obs), eta=0.0, n_steps=ddim_steps,
                                        denoiser_for_step=denoiser_for_step)
        return self.to_env_actions(chunk, steps)

    def tensors(self, prefix: str = "agent.") -> dict[str, torch.Tensor]:
        """Weights and normaliser statistics as one flat tensor dict (safetensors-ready)."""
        out = {f"{prefix}policy.{k}": v for k, v in self.policy.state_dict().items()}
        out.update({f"{prefix}obs_norm.{k}": v for k, v in self.obs_norm.state_dict().items()})
        out.update({f"{prefix}act_norm.{k}": v for k, v in self.act_norm.state_dict().items()})
        out[f"{prefix}spec"] = torch.tensor(list(json.dumps(self.spec).encode()), dtype=torch.uint8)
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "agent.") -> "DiffusionAgent":
        spec = json.loads(bytes(tensors[f"{prefix}spec"].tolist()).decode())
        agent = cls(spec["obs_dim"], spec["act_dim"], spec["horizon"], spec["act_steps"], spec["n_steps"],
                    spec["denoiser"], spec.get("obs_quaternions", ()), spec.get("act_quaternions", ()))
        agent.load_tensors(tensors, prefix)
        return agent

    def load_tensors(self, tensors: dict[str, torch.Tensor], prefix: str = "agent.") -> None:
        def part(name: str) -> dict[str, torch.Tensor]:
            start = f"{prefix}{name}."
            return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}

        self.policy.load_state_dict(part("policy"))
        self.obs_norm.load_state_dict(part("obs_norm"))
        self.act_norm.load_state_dict(part("act_norm"))
