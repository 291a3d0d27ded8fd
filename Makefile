# The two commands a newcomer needs; each sets up .venv first (idempotent).
.PHONY: demo test lint setup

setup:
	scripts/setup.sh

demo: setup  ## train -> register -> serve -> ask, on local Ray with the bundled MiniLM
	.venv/bin/python examples/pipeline.py

test: setup  ## lint, then every test (the slow ones start real Ray, DeepSpeed and S3 servers)
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q --durations=15

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
