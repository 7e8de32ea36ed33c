"""Trainer settings: the only module that reads the environment.

Every variable, with its default:
- SYNTHTUNE_TRAINER_LISTEN          127.0.0.1:50052  host:port the gRPC server binds
- SYNTHTUNE_MODELS_ROOT             ./var/models     folder of local base models, by name
- SYNTHTUNE_TRAINER_CANCEL_GRACE_S  60               after a cancel, how long a run may take to stop
                                                      before its process is killed
- SYNTHTUNE_TRAINER_LAUNCHER        local            how a run's training processes start: "local" (one
                                                      process), "torchrun" (python -m torch.distributed.run,
                                                      processes_per_node processes on this machine)
- SYNTHTUNE_TRAINER_CHECKPOINT_STEPS 50            a checkpoint every N optimizer steps (0: only per epoch;
                                                      one is always saved at every epoch's end)
- SYNTHTUNE_TRAINER_CHECKPOINT_KEEP  2             how many of a run's newest checkpoints are kept
- SYNTHTUNE_TRAINER_MAX_AUTO_RESUMES 3             how often a run whose process died (or whose service
                                                      stopped) is resumed from its checkpoint by itself
- SYNTHTUNE_HF_HUB_CACHE            (unset)          Hugging Face hub cache for base models not under the
                                                      models root; alias TRANSFORMERS_CACHE (the old app's,
                                                      which transformers 5 no longer reads). Unset:
                                                      huggingface_hub's own default, which honours HF_HOME
plus the shared SYNTHTUNE_* settings of synthtune.settings.CommonSettings.
One run trains at a time (one per device); the others wait in the queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from synthtune.settings import CommonSettings, SettingsError, env_alias
from synthtune.settings import load_settings as _load


class TrainerSettings(CommonSettings):
    listen: str = Field(default="127.0.0.1:50052", validation_alias=env_alias("SYNTHTUNE_TRAINER_LISTEN", "listen"),
                        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
    models_root: Path = Field(default=Path("./var/models"),
                              validation_alias=env_alias("SYNTHTUNE_MODELS_ROOT", "models_root"))
    cancel_grace_s: float = Field(default=60.0, gt=0, le=3600,
                                  validation_alias=env_alias("SYNTHTUNE_TRAINER_CANCEL_GRACE_S", "cancel_grace_s"))
    launcher: Literal["local", "torchrun"] = Field(default="local", validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_LAUNCHER", "launcher"))
    checkpoint_steps: int = Field(default=50, ge=0, le=1_000_000, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_CHECKPOINT_STEPS", "checkpoint_steps"))
    checkpoint_keep: int = Field(default=2, ge=1, le=100, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_CHECKPOINT_KEEP", "checkpoint_keep"))
    max_auto_resumes: int = Field(default=3, ge=0, le=100, validation_alias=env_alias(
        "SYNTHTUNE_TRAINER_MAX_AUTO_RESUMES", "max_auto_resumes"))
    hf_hub_cache: Path | None = Field(
        default=None, validation_alias=AliasChoices("SYNTHTUNE_HF_HUB_CACHE", "hf_hub_cache", "TRANSFORMERS_CACHE"))

    @property
    def hub_environment(self) -> dict[str, str]:
        """Variables the training processes need for the hub cache (they inherit the trainer's)."""
        return {"HF_HUB_CACHE": str(self.hf_hub_cache.resolve())} if self.hf_hub_cache else {}


def load_settings(**overrides) -> TrainerSettings:
    """Read the environment once (keyword overrides win, for tests); raise SettingsError if bad."""
    return _load(TrainerSettings, **overrides)


__all__ = ["SettingsError", "TrainerSettings", "load_settings"]
