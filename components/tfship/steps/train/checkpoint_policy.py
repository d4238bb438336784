"""When to checkpoint: pure decisions, tested without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass

from tfship.errors import ConfigError


@dataclass(frozen=True)
class FixedIntervalPolicy:
    """Save every `every` steps, and always at the last step."""

    every: int
    last_step: int

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"Invalid value for `checkpoint_every`: {self.every}. Expected an integer >= 1.")

    def should_save(self, step: int) -> bool:
        return step == self.last_step or (step > 0 and step % self.every == 0)
