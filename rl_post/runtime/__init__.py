"""Runtime: collection of segments from rollout workers, in-process or through Ray."""
