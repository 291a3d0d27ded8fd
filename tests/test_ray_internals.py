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


SWITCHES = {*ray_internals.ALL_FLAGS, *ray_internals.HAPROXY_SETTINGS}


@pytest.mark.parametrize("flag", sorted(SWITCHES))
def test_each_environment_switch_is_still_read_by_ray(flag):
    assert ray_reads(flag), f"Ray {ray.__version__} no longer reads {flag}"


def test_serve_haproxy_template_still_binds_stats_and_metrics_to_every_interface():
    """When a Ray upgrade binds them to the HTTP host, `loopback_haproxy`'s launcher can go."""
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    for line in ray_internals.HAPROXY_OPEN_BINDS:
        assert line in HAPROXY_CONFIG_TEMPLATE, f"Serve's HAProxy template lost {line!r}"


def test_the_haproxy_launcher_binds_only_its_own_ports_to_loopback(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "frontend prometheus\n    bind :9101\nfrontend http_frontend\n    bind *:8000\n"
        "listen stats\n  bind *:8404\n"
    )
    fake = tmp_path / "real-haproxy"
    fake.write_text('#!/bin/sh\necho "ran with $*"\n')
    fake.chmod(0o755)
    launcher = ray_internals.write_haproxy_launcher(tmp_path, str(fake), [9101, 8404])
    ran = subprocess.run([launcher, "-db", "-f", str(config), "-sf", "12"], capture_output=True)
    assert ran.stdout.decode() == f"ran with -db -f {config} -sf 12\n"
    assert config.read_text() == (
        "frontend prometheus\n    bind 127.0.0.1:9101\nfrontend http_frontend\n"
        "    bind *:8000\nlisten stats\n  bind 127.0.0.1:8404\n"
    )


def test_haproxy_ports_lie_outside_the_range_the_kernel_hands_out():
    """They bind when Serve first deploys, maybe after a training run whose connections would
    take a port from the ephemeral range (`make demo` failed so)."""
    low, high = ray_internals.ephemeral_port_range()
    with ray_internals.loopback_haproxy() as flags:
        names = (*ray_internals.HAPROXY_PORTS, *ray_internals.FALLBACK_PROXY_PORTS)
        ports = [int(flags[name]) for name in names]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert port in ray_internals.LATE_BIND_PORTS and not low <= port <= high


def test_a_late_bind_port_taken_meanwhile_is_passed_over(monkeypatch):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", ray_internals.late_bind_port()))
    held = taken.getsockname()[1]
    first, choose = iter([held, held]), ray_internals.random.choice
    monkeypatch.setattr(
        ray_internals.random, "choice", lambda ports: next(first, 0) or choose(ports)
    )
    try:
        assert ray_internals.late_bind_port() != held
    finally:
        taken.close()


def test_ray_init_still_takes_the_node_address():
    for option in ray_internals.loopback_node():
        assert option in inspect.getsource(ray.init), f"ray.init lost {option}"


def test_serve_still_lists_replica_ports_through_its_controller():
    from ray.serve._private.client import ServeControllerClient
    from ray.serve._private.controller import ServeController
    from ray.serve.context import _get_global_client

    assert callable(_get_global_client)
    assert "self._controller" in inspect.getsource(ServeControllerClient)
    assert "from_proxy_manager" in inspect.signature(ServeController.get_target_groups).parameters


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
        benign = [
            "Task ServeController.graceful_shutdown failed. There are infinite retries",
            "Task ServeController.listen_for_change failed. There are infinite retries",
        ]
        worker.print_to_stdstream(
            {"lines": [*benign, "a real error"], "pid": "raylet", "is_err": False},
            ignore_prefix=False,
        )
    finally:
        worker.print_to_stdstream = saved
    out = capsys.readouterr().out
    assert "a real error" in out and "ServeController" not in out


def test_ray_data_still_has_what_the_idle_backoff_reads():
    from ray.data._internal.execution.interfaces.physical_operator import PhysicalOperator
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    executor = inspect.getsource(StreamingExecutor)
    assert "self._topology" in executor, "StreamingExecutor lost _topology"
    assert "on_execution_step(self)" in inspect.getsource(StreamingExecutor.run)
    operator = inspect.getsource(PhysicalOperator.__init__)
    for flag in ("_in_task_submission_backpressure", "_in_task_output_backpressure"):
        assert f"self.{flag}" in operator, f"PhysicalOperator lost {flag}"
