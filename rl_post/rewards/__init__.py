"""Reward functions and learned reward models (`reward=<name>` in `rl-post train`).

  rl-post reward train                                   # success classifier -> runs/reward/.../classifier
  rl-post train reward=success_classifier reward.checkpoint=<that classifier directory>
  rl-post train reward=env_sparse                        # true success, 0/1 once per episode
  python -m rl_post.rewards.curves RUN_A RUN_B --labels a b --out curves.png

Modules: base (reward functions, RewardScorer), classifier (model + checkpoint), dataset and train
(env-labelled data, fitting), agreement (precision / recall / AUROC / ECE), shaping
(potential-based shaping, success bonus), worker (in-process or Ray RewardWorker), curves (plots).
"""
