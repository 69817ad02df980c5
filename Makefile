# Two commands do everything on a fresh machine:
#   make train   set up (idempotent), then a ~10 min RL run on CPU that lifts an SFT policy
#   make test    set up (idempotent), then the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# The main job: Flow-Noise PPO on PushCube-v1 from the few-shot SFT checkpoint shipped in
# assets/sft/pushcube_flow_tiny (28% held-out success), 20 updates = 164k env steps (~10 min on
# 2 CPU cores), 100-episode held-out evaluations before, halfway and at the end.
TRAIN_RECIPE ?= env=pushcube presets=flow_ppo_rl init_from=assets/sft/pushcube_flow_tiny train.iterations=20 eval.every=10 checkpoint.every=10
TRAIN_ARGS ?=
TEST_ARGS ?=
RECIPE ?= pickcube_flow_ppo

.PHONY: setup train test test-fast proof bench bench-sim sweep lint format clean

setup:
	@bash scripts/setup.sh

train: setup
	$(VENV)/bin/rl-post train $(TRAIN_RECIPE) $(TRAIN_ARGS)

test: setup
	@bash scripts/run_tests.sh $(TEST_ARGS)

proof: setup
	$(VENV)/bin/rl-post proof $(RECIPE) proof.publish=true

test-fast: setup
	$(PY) -m pytest -q -m "not e2e and not sim" $(TEST_ARGS)

bench: setup
	$(VENV)/bin/rl-post bench

bench-sim: setup
	$(VENV)/bin/rl-post bench sim

sweep: setup
	$(VENV)/bin/rl-post sweep

lint: setup
	$(VENV)/bin/ruff check rl_post tests
	$(VENV)/bin/ruff format --check rl_post tests

format: setup
	$(VENV)/bin/ruff format rl_post tests
	$(VENV)/bin/ruff check --fix rl_post tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
