"""`ftray registry ...` end to end through the command line, on a local registry."""

import json

import pytest
from test_cli import run_cli
from test_registry import model_dir


@pytest.fixture
def uri(tmp_path, monkeypatch):
    monkeypatch.setenv("FTRAY_CACHE", str(tmp_path / "cache"))
    return str(tmp_path / "registry")


def registry_cli(capsys, uri, *argv):
    return run_cli(capsys, "registry", "--uri", uri, *argv)


def test_push_list_versions_show_alias_rollback_pull_verify_gc(capsys, tmp_path, uri):
    for i in (1, 2):
        code, out, _ = registry_cli(
            capsys,
            uri,
            "push",
            str(model_dir(tmp_path, f"{i}".encode(), f"m{i}")),
            "--name",
            "clf",
            "--kind",
            "full",
            "--json",
        )
        assert code == 0 and json.loads(out)["ref"] == f"clf:{i}"
    code, out, _ = registry_cli(capsys, uri, "list", "--json")
    assert json.loads(out)["models"] == [{"name": "clf", "aliases": {"latest": 2}}]
    code, out, _ = registry_cli(capsys, uri, "versions", "clf", "--json")
    assert [row["version"] for row in json.loads(out)] == [1, 2]
    code, out, _ = registry_cli(capsys, uri, "alias", "clf", "production", "2")
    assert code == 0 and "clf@production -> 2" in out
    registry_cli(capsys, uri, "alias", "clf", "production", "1")
    code, out, _ = registry_cli(capsys, uri, "rollback", "clf", "production", "--json")
    assert json.loads(out)["version"] == 2
    code, out, _ = registry_cli(capsys, uri, "show", "clf@production", "--json")
    assert json.loads(out)["version"] == 2
    code, out, _ = registry_cli(
        capsys, uri, "pull", "clf@production", str(tmp_path / "pulled"), "--json"
    )
    assert code == 0 and (tmp_path / "pulled/model.safetensors").read_bytes() == b"2"
    code, out, _ = registry_cli(capsys, uri, "verify", "--json")
    assert code == 0 and json.loads(out)["problems"] == []
    code, out, _ = registry_cli(capsys, uri, "gc", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["would_delete"] == []


def test_verify_exits_1_on_a_tampered_blob(capsys, tmp_path, uri):
    registry_cli(capsys, uri, "push", str(model_dir(tmp_path)), "--name", "m", "--kind", "full")
    blob = next((tmp_path / "registry/blobs").rglob("*"))
    while blob.is_dir():
        blob = next(blob.iterdir())
    blob.chmod(0o644)
    blob.write_bytes(b"flipped")
    code, out, _ = registry_cli(capsys, uri, "verify")
    assert code == 1 and "is missing or corrupt" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["versions", "../x"], "model name '../x' is invalid"),
        (["show", "a/b@prod"], "model name 'a/b' is invalid"),
        (["show", "ghost:1"], "unknown model 'ghost'"),
        (["alias", "m", "latest", "1"], "'latest' is maintained by the registry"),
        (["rollback", "m", "prod"], "unknown alias m@prod"),
        (["show", "m:7"], "unknown version m:7: m has versions 1-1"),
        (["push", "/definitely/absent", "--name", "m"], "/definitely/absent: no such directory"),
        (["push", "{dir}", "--name", ""], "model name is empty"),
        (["push", "{dir}", "--name", "x" * 129], "is 129 characters (at most 128)"),
        (["pull", "m:1", "{nonempty}"], "is not an empty directory"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, uri, argv, message):
    source = model_dir(tmp_path, name="src")
    registry_cli(capsys, uri, "push", str(source), "--name", "m", "--kind", "full")
    nonempty = tmp_path / "full"
    nonempty.mkdir()
    (nonempty / "x").write_text("x")
    argv = [a.format(dir=source, nonempty=nonempty) for a in argv]
    code, _, err = registry_cli(capsys, uri, *argv)
    assert code == 1 and err.startswith("ftray: error: ") and err.count("\n") == 1, err
    assert message in err


def test_an_unreachable_s3_registry_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    code, _, err = run_cli(capsys, "registry", "--uri", "s3://bucket/p", "list")
    assert code == 1 and err.startswith("ftray: error: registry: cannot reach http://127.0.0.1:9")


def test_show_card_prints_the_model_card_and_pull_writes_it_as_readme(capsys, tmp_path, uri):
    directory = model_dir(tmp_path)
    (directory / "MODEL_CARD.md").write_text("# carded\n\n| f1 | 0.9100 |\n")
    registry_cli(capsys, uri, "push", str(directory), "--name", "carded", "--kind", "full")
    code, out, _ = registry_cli(capsys, uri, "show", "carded:1", "--card")
    assert code == 0 and out == "# carded\n\n| f1 | 0.9100 |\n"
    code, _, _ = registry_cli(capsys, uri, "pull", "carded:1", str(tmp_path / "pulled"))
    assert (tmp_path / "pulled/README.md").read_text() == "# carded\n\n| f1 | 0.9100 |\n"
    registry_cli(capsys, uri, "push", str(model_dir(tmp_path, name="bare")), "--name", "bare")
    code, _, err = registry_cli(capsys, uri, "show", "bare:1", "--card")
    assert (
        code == 1
        and err.strip()
        == "ftray: error: bare:1 has no model card (ftray writes one for what it trains)"
    )
