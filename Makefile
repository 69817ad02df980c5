# Two commands do everything on a fresh machine:
#   make train   set up (idempotent), then a short real RL run on CPU that lifts a policy
#   make test    set up (idempotent), then the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# The main job: PPO from scratch with the Gaussian MLP on PushCube-v1 (ManiSkill PPO's recipe),
# 100 updates = 80k env steps, held-out evaluation before, halfway and at the end.
TRAIN_RECIPE ?= env=pushcube presets=mlp_ppo_scratch train.iterations=100 eval.every=50 checkpoint.every=50
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
