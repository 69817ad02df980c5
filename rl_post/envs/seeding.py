"""Episode seed sequence: seed = base + cursor, base = env.seed + seed_offset (per env worker).

One cursor step is one handed-out seed. A group reset (initial reset, synchronized mode) hands
one seed per group of `group_size` sub-envs so group members share an initial state; an
independent auto-reset hands one seed per finished sub-env. Saving `cursor` in a checkpoint and
restoring it continues the same seed sequence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SeedSchedule:
    base: int
    num_envs: int
    group_size: int = 1
    cursor: int = 0

    def next_single_seeds(self, count: int) -> list[int]:
        seeds = [self.base + self.cursor + j for j in range(count)]
        self.cursor += count
        return seeds

    def next_group_seeds(self) -> list[int]:
        """One seed per group, repeated for each of its members: length num_envs."""
        per_group = self.next_single_seeds(self.num_envs // self.group_size)
        return [per_group[i // self.group_size] for i in range(self.num_envs)]
