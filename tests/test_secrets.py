"""`--secret-file`: only a path is sent with a job; each process reads the value itself."""

import json
import os

import pytest

from ftray.errors import FtrayError
from ftray.secrets import SECRET_FILES_ENV, SECRET_LIKE, load_secret_files, secret_files


def test_a_secret_file_is_read_into_the_environment(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("hunter2\n")
    monkeypatch.setenv(SECRET_FILES_ENV, json.dumps({"FTRAY_TEST_KEY": str(tmp_path / "key")}))
    monkeypatch.delenv("FTRAY_TEST_KEY", raising=False)
    load_secret_files()
    assert os.environ["FTRAY_TEST_KEY"] == "hunter2"  # the file's trailing newline is not part
    monkeypatch.setenv("FTRAY_TEST_KEY", "set by the node")
    load_secret_files()
    assert os.environ["FTRAY_TEST_KEY"] == "set by the node"  # what a node sets itself wins


def test_a_missing_secret_file_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_FILES_ENV, json.dumps({"FTRAY_TEST_KEY": str(tmp_path / "absent")}))
    monkeypatch.delenv("FTRAY_TEST_KEY", raising=False)
    with pytest.raises(FtrayError, match=r"--secret-file FTRAY_TEST_KEY: cannot read .*absent"):
        load_secret_files()


@pytest.mark.parametrize("pair", ["NOPATH", "=/x", "1BAD=/x", "A B=/x"])
def test_bad_secret_file_options_are_refused(pair):
    with pytest.raises(FtrayError, match="--secret-file .*NAME=PATH"):
        secret_files([pair])


def test_credential_like_env_names_are_recognised():
    assert all(SECRET_LIKE.search(n) for n in ["AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "DB_PASSWORD"])
    assert not any(SECRET_LIKE.search(n) for n in ["AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"])
