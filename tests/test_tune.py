"""Search spaces and their checks: everything that must fail before any trial starts."""

from types import SimpleNamespace

import pytest
from conftest import make_spec, sentiment_raw

from ftray.errors import FtrayError
from ftray.search_space import check_search_space, ray_param_space, trial_spec
from ftray.tune import evaluations_per_trial, make_scheduler, make_searcher, trial_row


def spec_with(tmp_path, **tune):
    raw = sentiment_raw(
        tmp_path / "model", strategy={"kind": "adapter", "r": 4}, train={"epochs": 3}
    )
    raw["tune"] = tune
    return make_spec(raw)


def test_trial_specs_apply_sampled_values_and_only_the_knobs_of_their_kind(tmp_path):
    spec = spec_with(
        tmp_path,
        search_space={
            "strategy.kind": {"choice": ["adapter", "prompt"]},
            "strategy.r": {"randint": [2, 8]},
            "train.learning_rate": {"loguniform": [1e-5, 1e-3]},
        },
    )
    adapter = trial_spec(
        spec, {"strategy.kind": "adapter", "strategy.r": 6, "train.learning_rate": 3e-4}
    )
    assert (adapter.strategy.kind, adapter.strategy.r, adapter.train.learning_rate) == (
        "adapter",
        6,
        3e-4,
    )
    prompt = trial_spec(spec, {"strategy.kind": "prompt", "strategy.r": 6})
    assert prompt.strategy.kind == "prompt" and not hasattr(prompt.strategy, "r")
    kept = trial_spec(spec, {"train.epochs": 5})
    assert kept.strategy.r == 4 and kept.train.epochs == 5  # the base spec's knobs stay


def test_ray_distributions(tmp_path):
    from ray.tune.search.sample import Categorical, Float, Integer

    spec = spec_with(
        tmp_path,
        search_space={
            "train.batch_size": {"choice": [16, 32]},
            "strategy.r": {"randint": [4, 8]},
            "train.learning_rate": {"loguniform": [1e-5, 1e-3]},
            "train.epochs": {"grid": [1, 2]},
        },
    )
    space = ray_param_space(spec)
    assert isinstance(space["train.batch_size"], Categorical)
    assert isinstance(space["strategy.r"], Integer) and space["strategy.r"].upper == 9  # inclusive
    assert isinstance(space["train.learning_rate"], Float)
    assert space["train.epochs"] == {"grid_search": [1, 2]}
    spec.tune.searcher = "grid"
    spec.tune.search_space = {"train.batch_size": {"choice": [16, 32]}}
    assert ray_param_space(spec)["train.batch_size"] == {"grid_search": [16, 32]}


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        (
            {"search_space": {"train.lr": {"choice": [1e-3]}}},
            "train.lr=0.001: unknown field 'train.lr'",
        ),
        (
            {"search_space": {"train.batch_size": {"choice": []}}},
            "train.batch_size: choice needs at least one value",
        ),
        (
            {"search_space": {"train.batch_size": {"range": [1, 2]}}},
            "give exactly one of loguniform",
        ),
        (
            {"search_space": {"train.learning_rate": {"loguniform": [0, 1]}}},
            "loguniform needs low > 0",
        ),
        (
            {"search_space": {"train.epochs": {"uniform": [5, 1]}}},
            "needs [low, high] with low <= high",
        ),
        (
            {"search_space": {"train.batch_size": {"choice": [0]}}},
            "train.batch_size=0: train.batch_size",
        ),
        (
            {"search_space": {"strategy.kind": {"choice": ["full", "magic"]}}},
            "strategy.kind='magic'",
        ),
        (
            {"search_space": {"strategy.num_virtual_tokens": {"choice": [4]}}},
            "is a knob of no strategy",
        ),
        (
            {"metric": "bleu", "search_space": {"train.epochs": {"grid": [1]}}},
            "tune.metric: 'bleu' is not reported",
        ),
        (
            {"num_samples": 0, "search_space": {"train.epochs": {"grid": [1]}}},
            "tune.num_samples: Input should be greater than 0",
        ),
        (
            {"scheduler": {"reduction_factor": 1}, "search_space": {"train.epochs": {"grid": [1]}}},
            "tune.scheduler.reduction_factor: Input should be greater than 1",
        ),
        (
            {"searcher": "grid", "search_space": {"train.learning_rate": {"uniform": [0.1, 0.2]}}},
            "grid needs choice or grid values for every key",
        ),
        ({"search_space": {}}, "tune.search_space: empty"),
    ],
)
def test_bad_search_spaces_are_one_line_errors_before_any_trial(tmp_path, tune, message):
    with pytest.raises(FtrayError) as caught:
        check_search_space(spec_with(tmp_path, **tune))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_asha_max_t_counts_evaluations(tmp_path):
    spec = spec_with(tmp_path, search_space={"train.epochs": {"choice": [2, 4]}})
    assert evaluations_per_trial(spec, train_examples=1600) == 4
    spec.train.eval_steps = 10  # 1600 / 32 = 50 steps an epoch: 5 evaluations each
    spec.tune.search_space = {"train.learning_rate": {"loguniform": [1e-4, 1e-3]}}
    assert evaluations_per_trial(spec, train_examples=1600) == 15


@pytest.mark.parametrize("searcher", ["random", "optuna"])
def test_searchers_hold_the_concurrency_limit(tmp_path, searcher):
    spec = spec_with(tmp_path, searcher=searcher, search_space={"strategy.r": {"choice": [2, 4]}})
    assert make_searcher(spec, concurrency=2).max_concurrent == 2


def test_asha_never_waits_past_the_last_evaluation_and_fifo_stops_nothing(tmp_path):
    space = {"strategy.r": {"choice": [2, 4]}}
    settings = {"grace_period": 5, "reduction_factor": 4}
    asha = make_scheduler(spec_with(tmp_path, search_space=space, scheduler=settings), max_t=2)
    # Ray refuses a grace period past max_t; ftray clamps it, so the one rung is at max_t.
    assert [rung for rung, _ in asha._brackets[0]._rungs] == [2]
    fifo = make_scheduler(spec_with(tmp_path, search_space=space, scheduler={"kind": "fifo"}), 2)
    assert type(fifo).__name__ == "FIFOScheduler"


def result(metrics, error=None, config=None):
    return SimpleNamespace(
        metrics=metrics,
        error=error,
        config=config or {},
        path="/x/run_trial_ab123_00004_4_a=1_2026",
    )


def test_leaderboard_rows_say_why_a_trial_stopped():
    history = [{"f1": 0.5}, {"f1": 0.7}, {"f1": 0.6}]
    done = trial_row(
        result({"history": history, "step": 30, "total_steps": 30, "epoch": 3, "trial_id": "t1"}),
        "f1",
        "max",
    )
    assert (done.best, done.stopped, done.epochs, done.trial) == (
        0.7,
        "completed",
        3,
        "t1",
    )
    cut = trial_row(
        result({"history": history[:1], "step": 10, "total_steps": 30, "epoch": 1}), "f1", "max"
    )
    assert cut.stopped == "scheduler" and cut.trial == "ab123_00004"
    patient = trial_row(
        result({"history": history, "step": 20, "total_steps": 30, "stopped_early": True}),
        "f1",
        "min",
    )
    assert patient.stopped == "early stopping" and patient.best == 0.5
    failed = trial_row(result({}, error=RuntimeError("boom\nValueError: bad things")), "f1", "max")
    assert (
        failed.stopped == "error"
        and failed.error == "ValueError: bad things"
        and failed.best is None
    )
