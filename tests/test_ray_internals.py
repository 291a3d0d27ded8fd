"""Each private Ray API and internal switch in `ftray.ray_internals` still exists in the
installed Ray: an upgrade that removes or renames one fails here, by name."""

import inspect
import pathlib
import subprocess

import pytest
import ray

from ftray import ray_internals

RAY_SOURCE = pathlib.Path(ray.__file__).parent


def ray_reads(name: str) -> bool:
    found = subprocess.run(
        ["grep", "-rlq", "--include=*.py", name, str(RAY_SOURCE)], check=False
    ).returncode
    return found == 0


@pytest.mark.parametrize("flag", sorted(ray_internals.ALL_FLAGS))
def test_each_environment_switch_is_still_read_by_ray(flag):
    assert ray_reads(flag), f"Ray {ray.__version__} no longer reads {flag}"


def test_ray_init_still_takes_the_node_address():
    for option in ray_internals.loopback_node():
        assert option in inspect.getsource(ray.init), f"ray.init lost {option}"


def test_serve_still_lists_replica_ports_through_its_controller():
    from ray.serve._private.client import ServeControllerClient
    from ray.serve._private.controller import ServeController
    from ray.serve.context import _get_global_client

    assert callable(_get_global_client)
    assert "self._controller" in inspect.getsource(ServeControllerClient)
    assert hasattr(ServeController, "get_target_groups")


def test_tune_still_puts_the_trial_id_in_the_trial_directory_name():
    from ray import tune
    from ray.tune.experiment import Trial

    tune.register_trainable("ftray_probe", lambda config: None)
    trial = Trial("ftray_probe", config={}, experiment_tag="0", trial_id="a1b2c_00003")
    assert ray_internals.trial_id_from_dirname(trial._generate_dirname()) == "a1b2c_00003"


def test_the_driver_still_prints_pushed_errors_through_print_to_stdstream(capsys):
    from ray._private import worker

    assert "print_to_stdstream(" in inspect.getsource(worker.listen_error_messages)
    saved = worker.print_to_stdstream
    try:
        ray_internals.drop_benign_driver_messages()
        ray_internals.drop_benign_driver_messages()  # wrapping twice is wrapping once
        benign = "Task ServeController.graceful_shutdown failed. There are infinite retries"
        worker.print_to_stdstream(
            {"lines": [benign, "a real error"], "pid": "raylet", "is_err": False},
            ignore_prefix=False,
        )
    finally:
        worker.print_to_stdstream = saved
    out = capsys.readouterr().out
    assert "a real error" in out and "graceful_shutdown" not in out
