"""`ftray serve` with real Ray Serve and HTTP on 127.0.0.1: classification, NER and causal-LM
versions, two adapters on one shared base, the official OpenAI client, an alias moved under
traffic, and a barrage of bad requests that leaves the endpoint answering."""

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from conftest import ROOT
from test_artefacts import trained_output

from ftray.artefacts import register_output
from ftray.errors import FtrayError
from ftray.inference import Predictor
from ftray.models import load_task_model, load_tokenizer
from ftray.runs import RESULT_FILE
from registry import BlobCache, Registry, RegistryError
from registry.local_store import LocalStore
from serving.client import call, predict, wait_until_healthy
from serving.launch import replica_urls, serving

pytestmark = pytest.mark.slow
TOKEN = "s3cret"
TEXTS = ["The kettle is superb, I would buy it again.", "A dreadful sequel, a waste of money."]


# A chat template of the kind instruction-tuned models ship (roles marked, the assistant's turn
# opened at the end); it refuses a conversation that does not start with the user or system.
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'assistant' %}"
    "{{ raise_exception('a conversation starts with the user or the system') }}{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def register_task_model(registry, root, base, task, labels, name):
    torch.manual_seed(11)
    model = load_task_model(str(base), task, labels)
    model.save_pretrained(root / name)
    tokenizer = load_tokenizer(str(base))
    if name == "chat":
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(root / name)
    (root / name / RESULT_FILE).write_text(
        json.dumps(
            {
                "task": task,
                "strategy": "full",
                "labels": labels,
                "spec": {"model": {"name": str(base), "task": task}},
            }
        )
    )
    return register_output(registry, root / name, name)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, tiny_bert, tiny_llama):
    root = tmp_path_factory.mktemp("serving")
    registry = Registry(LocalStore(root / "registry"), BlobCache(root / "cache"))
    for seed in (1, 2):  # two LoRA versions of one classifier, on the same base
        output = trained_output(root, tiny_bert, "adapter", seed)
        if seed == 2:  # served at a calibration temperature, as a trained classifier is
            result = json.loads((output / RESULT_FILE).read_text())
            result["metrics"]["temperature"] = 3.0
            (output / RESULT_FILE).write_text(json.dumps(result))
        register_output(registry, output, "clf")
    registry.set_alias("clf", "prod", 1)
    register_task_model(
        registry, root, tiny_bert, "token-classification", ["O", "B-PER", "I-PER"], "ner"
    )
    register_task_model(registry, root, tiny_llama, "causal-lm", [], "lm")
    chat = register_task_model(registry, root, tiny_llama, "causal-lm", [], "chat")
    refs = ["clf@prod", "clf:2", "ner:1", "lm:1", chat.ref]
    with serving(
        refs,
        registry=str(root / "registry"),
        port=8123,
        token=TOKEN,
        poll_interval_s=0.5,
        capacity=4,
    ) as url:
        yield {"url": url, "registry": registry, "root": root}


def post(url, path, body, token=TOKEN, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health_and_the_served_models(endpoint):
    with urllib.request.urlopen(endpoint["url"] + "/healthz") as response:
        assert response.status == 200
    models = call(endpoint["url"], "/v1/models", token=TOKEN)
    assert {m["id"]: m["resolved"] for m in models["data"]} == {
        "clf@prod": "clf:1",
        "clf:2": "clf:2",
        "ner:1": "ner:1",
        "lm:1": "lm:1",
        "chat:1": "chat:1",
    }


def test_two_adapter_versions_share_one_base_in_one_replica(endpoint):
    from ray import serve

    registry = endpoint["registry"]
    answers = {}
    for ref, version in (("clf@prod", "clf:1"), ("clf:2", "clf:2")):
        result = predict(endpoint["url"], ref, TEXTS, token=TOKEN)
        assert result["model"] == version and result["task"] == "sequence-classification"
        local = Predictor.from_registry(registry, version)
        assert local.calibration_temperature == (3.0 if version == "clf:2" else 1.0)
        expected = local.predict(TEXTS)
        for got, want in zip(result["outputs"], expected, strict=True):
            assert got["label"] == want["label"] and got["scores"] == pytest.approx(
                want["scores"], abs=1e-5
            )
        answers[version] = result["outputs"]
    assert answers["clf:1"] != answers["clf:2"]
    stats = serve.get_deployment_handle("endpoint", app_name="ftray").stats.remote().result()
    [shared] = stats["shared_bases"]
    assert shared["versions"] == ["clf:1", "clf:2"] and shared["family"] == "lora"


def test_the_replica_answers_directly_as_the_proxy_does(endpoint):
    """Direct ingress: the replica's own port skips the ingress, with the same API and auth."""
    [direct] = replica_urls()
    assert direct != endpoint["url"]
    via_proxy = predict(endpoint["url"], "clf:2", TEXTS, token=TOKEN)
    assert predict(direct, "clf:2", TEXTS, token=TOKEN) == via_proxy
    status, body = post(direct, "/v1/predict", {"model": "clf:2", "inputs": TEXTS}, token=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"


def test_one_replica_is_served_through_haproxy_listening_on_loopback_only(endpoint):
    """`ftray serve`'s default ingress: HAProxy answers at the URL, and every socket it listens
    on is bound to 127.0.0.1 (Ray 2.60's template binds its stats and metrics listeners to every
    interface; `ray_internals.loopback_haproxy` rewrites those two)."""
    import psutil

    listening = [
        connection
        for process in psutil.process_iter(["name"])
        if process.info["name"] == "haproxy"
        for connection in process.net_connections("tcp")
        if connection.status == psutil.CONN_LISTEN
    ]
    port = int(endpoint["url"].rsplit(":", 1)[1])
    assert port in {connection.laddr.port for connection in listening}
    assert len(listening) == 3  # the API, HAProxy's stats page and its Prometheus metrics
    assert {connection.laddr.ip for connection in listening} == {"127.0.0.1"}


def test_ner_answers_with_character_spans(endpoint):
    text = "Amara Okafor flew to Kelderby."
    [output] = predict(endpoint["url"], "ner", [text], token=TOKEN)["outputs"]
    for entity in output["entities"]:
        assert entity["text"] == text[entity["start"] : entity["end"]] and entity["type"] == "PER"


def test_the_openai_client_gets_completions(endpoint):
    from openai import OpenAI

    client = OpenAI(base_url=endpoint["url"] + "/v1", api_key=TOKEN)
    completion = client.completions.create(
        model="lm:1", prompt="Colour of lime?\nAnswer:", max_tokens=4
    )
    assert completion.model == "lm:1" and isinstance(completion.choices[0].text, str)
    assert completion.usage.completion_tokens <= 4
    chat = client.chat.completions.create(
        model="lm", messages=[{"role": "user", "content": "Day after Monday?"}], max_tokens=3
    )
    assert chat.model == "lm:1" and chat.choices[0].message.role == "assistant"


def test_streams_through_the_openai_client_are_the_completions(endpoint):
    from openai import OpenAI

    client = OpenAI(base_url=endpoint["url"] + "/v1", api_key=TOKEN)
    prompt = "Colour of lime?\nAnswer:"
    whole = client.completions.create(model="lm:1", prompt=prompt, max_tokens=10)
    chunks = list(
        client.completions.create(model="lm:1", prompt=prompt, max_tokens=10, stream=True)
    )
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert len(texts) >= 2 and "".join(texts) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    messages = [{"role": "user", "content": "Day after Monday?"}]
    chat = client.chat.completions.create(model="chat:1", messages=messages, max_tokens=8)
    streamed = client.chat.completions.create(
        model="chat:1",
        messages=messages,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = list(streamed)
    pieces = [p.choices[0].delta.content or "" for p in parts if p.choices]
    assert "".join(pieces) == chat.choices[0].message.content
    assert parts[-1].usage.completion_tokens == chat.usage.completion_tokens


def test_a_multi_turn_chat_reaches_the_model_through_its_template(endpoint):
    messages = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Colour of lime?"},
        {"role": "assistant", "content": "Green."},
        {"role": "user", "content": "And of a lemon?"},
    ]
    code, answer = post(
        endpoint["url"], "/v1/chat/completions", {"model": "chat:1", "messages": messages}
    )
    assert code == 200
    rendered = (
        "<|system|>You answer in one word.\n<|user|>Colour of lime?\n<|assistant|>Green.\n"
        "<|user|>And of a lemon?\n<|assistant|>"
    )
    tokenizer = load_tokenizer(str(endpoint["root"] / "chat"))
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        rendered
    )
    # The template's text alone, special tokens and all, as training encodes a chat.
    encoded = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert answer["usage"]["prompt_tokens"] == len(encoded)
    # Without a template (a prompt/completion model), the contents in order, as it trained.
    code, plain = post(
        endpoint["url"], "/v1/chat/completions", {"model": "lm:1", "messages": messages}
    )
    joined = "\n".join(m["content"] for m in messages)
    assert plain["usage"]["prompt_tokens"] == len(tokenizer(joined)["input_ids"])


def test_an_alias_move_under_traffic_fails_no_request(endpoint):
    registry, url = endpoint["registry"], endpoint["url"]
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                seen.append(predict(url, "clf@prod", TEXTS[:1], token=TOKEN)["model"])
            except FtrayError as exc:
                failures.append(str(exc))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(2)
    registry.set_alias("clf", "prod", 2)  # picked up by the replica's poll, no restart
    deadline = time.time() + 30
    while time.time() < deadline and (not seen or seen[-1] != "clf:2"):
        time.sleep(0.2)
    time.sleep(2)
    registry.rollback("clf", "prod")
    deadline = time.time() + 30
    while time.time() < deadline and seen[-1] != "clf:1":
        time.sleep(0.2)
    time.sleep(1)
    stop.set()
    for thread in clients:
        thread.join()
    assert failures == []
    assert "clf:2" in seen and seen[0] == "clf:1" and seen[-1] == "clf:1"
    switched = seen.index("clf:2")
    assert len(seen) > 20 and switched > 0


@pytest.mark.parametrize(
    ("path", "body", "raw", "token", "status", "message"),
    [
        ("/v1/predict", None, b"{not json", TOKEN, 400, "not valid JSON"),
        ("/v1/predict", {"inputs": ["x"]}, None, TOKEN, 422, "model: Field required"),
        ("/v1/predict", {"model": "clf:2", "inputs": {"text": "x"}}, None, TOKEN, 422, "inputs"),
        ("/v1/predict", {"model": "clf:2", "inputs": [1, 2]}, None, TOKEN, 422, "inputs.0"),
        ("/v1/predict", {"model": "clf:2", "inputs": []}, None, TOKEN, 422, "inputs"),
        ("/v1/predict", {"model": "clf:2", "inputs": ["x"], "extra": 1}, None, TOKEN, 422, "extra"),
        (
            "/v1/predict",
            {"model": "ghost", "inputs": ["x"]},
            None,
            TOKEN,
            404,
            "unknown model 'ghost'",
        ),
        ("/v1/predict", {"model": "clf:2", "inputs": ["x"] * 257}, None, TOKEN, 413, "at most 256"),
        (
            "/v1/predict",
            {"model": "clf:2", "inputs": ["x" * 5000]},
            None,
            TOKEN,
            413,
            "at most 4096",
        ),
        ("/v1/predict", None, b" " * 7_000_000, TOKEN, 413, "limits.max_body_bytes"),
        ("/v1/predict", {"model": "clf:2", "inputs": ["x"]}, None, None, 401, "bearer token"),
        ("/v1/predict", {"model": "clf:2", "inputs": ["x"]}, None, "wrong", 401, "bearer token"),
        ("/v1/completions", {"model": "clf:2", "prompt": "x"}, None, TOKEN, 400, "use /v1/predict"),
        (
            "/v1/completions",
            {"model": "lm:1", "prompt": "x", "max_tokens": 9999},
            None,
            TOKEN,
            413,
            "max_tokens",
        ),
        ("/v1/completions", {"model": "lm:1", "prompt": []}, None, TOKEN, 422, "prompt"),
        (
            "/v1/completions",
            {"model": "lm:1", "prompt": "x", "seed": -(2**80), "stream": True},
            None,
            TOKEN,
            422,
            "seed: Input should be greater than or equal to",
        ),
        (
            "/v1/completions",
            {"model": "lm:1", "prompt": ["x", "y"], "stream": True},
            None,
            TOKEN,
            400,
            "one prompt per streamed request",
        ),
        (
            "/v1/chat/completions",
            {"model": "chat:1", "messages": [{"role": "assistant", "content": "hi"}]},
            None,
            TOKEN,
            400,
            "chat template cannot render them: a conversation starts with the user",
        ),
        (
            "/v1/chat/completions",
            {"model": "chat:1", "messages": [{"role": "robot", "content": "hi"}]},
            None,
            TOKEN,
            422,
            "messages.0.role",
        ),
        ("/v1/chat/completions", {"model": "lm:1", "messages": []}, None, TOKEN, 422, "messages"),
    ],
)
def test_bad_requests_get_4xx_json_errors(endpoint, path, body, raw, token, status, message):
    code, answer = post(endpoint["url"], path, body, token=token, raw=raw)
    assert code == status and message in answer["error"]["message"]


def test_one_text_is_answered_as_a_list_of_one(endpoint):
    status, one = post(endpoint["url"], "/v1/predict", {"model": "clf:2", "inputs": TEXTS[0]})
    assert status == 200
    listed = predict(endpoint["url"], "clf:2", TEXTS[:1], token=TOKEN)
    assert one["outputs"] == listed["outputs"] and len(one["outputs"]) == 1


def test_the_endpoint_still_answers_after_the_barrage(endpoint):
    for _ in range(3):
        post(endpoint["url"], "/v1/predict", None, raw=b"\x00\xff garbage")
    result = predict(endpoint["url"], "clf:2", TEXTS, token=TOKEN)
    assert result["model"] == "clf:2" and len(result["outputs"]) == 2
    # More inputs than one request may carry: the client sends two (256 + 44), and each input
    # gets what it gets in a small request.
    many = predict(endpoint["url"], "clf:2", TEXTS * 150, token=TOKEN)["outputs"]
    assert len(many) == 300
    for got, expected in zip(many, result["outputs"] * 150, strict=True):
        assert got["label"] == expected["label"]
        assert got["scores"] == pytest.approx(expected["scores"], abs=1e-4)


def test_unknown_references_are_refused_before_serving(endpoint):
    with (
        pytest.raises(RegistryError, match="unknown version clf:9"),
        serving(["clf:9"], registry=str(endpoint["root"] / "registry"), port=8124),
    ):
        pass


def test_the_serve_and_predict_commands(tmp_path, endpoint):
    registry = str(endpoint["root"] / "registry")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftray.cli",
            "serve",
            "clf:2",
            "--registry",
            registry,
            "--port",
            "8125",
        ],
        cwd=ROOT,
        # A file, not a pipe nobody reads: Ray's output would fill it and stall the server.
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("w"),
    )
    try:
        wait_until_healthy("http://127.0.0.1:8125", timeout=180)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ftray.cli",
                "predict",
                "clf:2",
                *TEXTS,
                "--url",
                "http://127.0.0.1:8125",
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["model"] == "clf:2"
        missing = subprocess.run(
            [
                sys.executable,
                "-m",
                "ftray.cli",
                "predict",
                "nope",
                "x",
                "--url",
                "http://127.0.0.1:8125",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert missing.returncode == 1 and "404: unknown model 'nope'" in missing.stderr
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0


def test_the_api_fuzzed_from_its_openapi_schema_never_answers_5xx(endpoint):
    """Every operation of /openapi.json, with bodies that fit its schema and bodies that do not
    (schemathesis, fixed seed, bounded): no 5xx, and the replica still answers afterwards. The
    `model` fields are narrowed to the served refs, else nearly every request would be a 404."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    url = endpoint["url"]
    document = json.loads(urllib.request.urlopen(f"{url}/openapi.json", timeout=30).read())
    refs = ["clf@prod", "ner:1", "lm:1", "chat:1"]
    for path in document["paths"].values():
        body = path.get("post", {}).get("requestBody")
        if body:
            body["content"]["application/json"]["schema"]["properties"]["model"] = {"enum": refs}
    schema = schemathesis.openapi.from_dict(document)
    requests: list[int] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/reload":
            continue  # reloading re-reads the registry: slow, and not input handling
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=25,
                derandomize=True,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def call_once(case):
                response = case.call(
                    base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
                )
                requests.append(response.status_code)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.path}: {response.text[:200]}")

            try:
                call_once()
            except Unsatisfiable:  # nothing to make invalid (GET /healthz has no inputs)
                assert mode == GenerationMode.NEGATIVE
    print(f"schemathesis: {len(requests)} requests, statuses {sorted(set(requests))}")
    assert len(requests) >= 100 and not failures, failures[:3]
    assert predict(url, "clf@prod", TEXTS[:1], token=TOKEN)["outputs"]
