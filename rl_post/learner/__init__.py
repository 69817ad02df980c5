"""DeepSpeed learner: `Learner` (one rank, no Ray) and `LearnerGroup` (N ranks as Ray actors)."""

from rl_post.learner.group import LearnerActor, LearnerGroup
from rl_post.learner.learner import Learner

__all__ = ["Learner", "LearnerActor", "LearnerGroup"]
