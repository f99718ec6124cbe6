# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Grokking in ten minutes
#
# A small transformer learns a knowledge base of facts such as *"the mother of Ann is Beth"* and *"the
# employer of Beth is Acme"*. It is also shown many **two-hop** facts (*"the employer of the mother of Ann is
# Acme"*) and is then asked two-hop questions it has never seen. For a long time it only knows the facts it
# was trained on; then, well after it has memorised them, it suddenly answers new two-hop questions
# correctly. That late jump from memorising to generalising is **grokking**.
#
# This lesson reproduces it on a laptop CPU and looks inside the model, following
# *Grokked Transformers are Implicit Reasoners* (Wang et al. 2024) and Grokfast (Lee et al. 2024). You will:
#
# 1. look at the knowledge base: atomic facts, inferred (two-hop) facts, what ID and OOD mean, and φ;
# 2. train the `demo` setting and watch it grok, then train it again without the Grokfast filter;
# 3. look inside the model with the **logit lens** and **causal tracing**, before and after grokking;
# 4. see what **layer sharing** does, in the model's own code;
# 5. try the exercises (answers are folded away).
#
# Top to bottom it takes about 9 minutes on a 2-core CPU, about 4 if you have already run `make demo`: the
# lesson then finds that run in `runs/` and reads it instead of training it again. Everything goes
# through `groklab.api`, the same functions the `groklab` command uses, so what you write here works in your
# own scripts too. Runs are written to a temporary folder (printed below), never into the repository.

# %%
import dataclasses
import inspect
import os
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import groklab.api as gl

THREADS = int(os.environ.get("GROKLAB_THREADS", "0"))  # CPU threads per run; 0 = every core
# Section 2's demo run: "auto" reads the newest finished run `make demo` left in runs/ (none: train it here),
# a folder reads that run (e.g. "runs/demo-20261202-153000"), "" always trains it here.
DEMO_RUN = os.environ.get("GROKLAB_DEMO_RUN", "auto")
RUNS = Path(tempfile.mkdtemp(prefix="groklab-lesson-"))  # where this lesson's runs go
STARTED = time.perf_counter()
print(f"runs go to {RUNS}")

# %% [markdown]
# ## 1. The knowledge base
#
# The `demo` preset (`groklab/configs/demo.toml`) describes the data, the model and the training. Its `[data]`
# part: 100 entities, 20 relations, every entity has all 20 relations, φ = 9.5, and `ood_atomic_repeat = 8`:
# each of the 100 OOD atomic facts is shown 8 times an epoch, a deviation from the paper (which shows every fact
# once) that lets this small model memorise them early (docs/results.md).

# %%
demo = gl.load_config("demo")
print(demo.data)
data = gl.make_dataset(demo)  # a pure function of the settings: the same facts every time
gl.describe(data)

# %% [markdown]
# **Atomic facts** are single hops, `head relation → tail`: `<e_42> <r_5> → <e_68>` reads "relation 5 of
# entity 42 is entity 68". The model sees every atomic fact during training. Entities and relations are just
# tokens; nothing about them is known in advance.

# %%
gl.facts_table(data, "id_atomic", n=5)

# %% [markdown]
# **Inferred facts** chain two atomic facts: `h r1 r2 → t` holds when `h r1 → b` and `b r2 → t`. The middle
# entity `b` is the **bridge**. It is never in the input: the model must find it itself. The columns `head`,
# `r1`, `bridge`, `r2`, `answer` are the fact's structure, which the generator keeps with every fact.

# %%
gl.facts_table(data, "train_inferred", n=5)

# %% [markdown]
# Check it on every training inferred fact: look both hops up in the atomic facts and compose them.

# %%
train = data.train
is_atomic = train.kinds == "atomic"
hop = {(h, r): t for h, r, t in zip(train.fields["head"][is_atomic], train.fields["r1"][is_atomic],
                                    train.fields["answer"][is_atomic], strict=True)}
inferred = data.probes["train_inferred"]
composed = [hop[(hop[(h, r1)], r2)] for h, r1, r2 in zip(inferred.fields["head"], inferred.fields["r1"],
                                                           inferred.fields["r2"], strict=True)]
assert np.array_equal(composed, inferred.answers), "every inferred answer is its two hops composed"
print(f"all {len(inferred):,} checked inferred facts are two atomic facts composed")

# %% [markdown]
# **ID and OOD.** 5% of the atomic facts (100 of 2,000) are set aside as **OOD** (out of distribution). The
# model is trained on them as atomic facts, but never sees them *inside* an inferred fact. The other 95% are
# **ID**. Two test sets ask for inferred facts the model has never seen:
#
# - `test_inferred_id`: both hops are ID facts; the two-hop fact itself was held out;
# - `test_inferred_ood`: both hops are OOD facts.
#
# A model that learned a general *rule* ("find the bridge, then apply r2 to it") should answer both. The paper
# finds that transformers grok the ID test but stay near zero on the OOD test. Here are OOD test facts:

# %%
gl.facts_table(data, "test_inferred_ood", n=5)

# %% [markdown]
# The OOD design, checked: no hop of a training inferred fact is an OOD atomic fact.

# %%
ood = data.probes["ood_atomic"]
ood_pairs = set(zip(ood.fields["head"], ood.fields["r1"], strict=True))
train_inferred = train.kinds == "inferred"
first_hops = set(zip(train.fields["head"][train_inferred], train.fields["r1"][train_inferred], strict=True))
second_hops = set(zip(train.fields["bridge"][train_inferred], train.fields["r2"][train_inferred], strict=True))
assert not ood_pairs & (first_hops | second_hops)
print(f"{len(ood_pairs)} OOD atomic facts; none is a hop of the {train_inferred.sum():,} training inferred facts")

# %% [markdown]
# **φ** (phi) is the number of training inferred facts per ID atomic fact. The paper's main finding about the
# data: how fast a model groks depends on this *ratio*, not on the size of the knowledge base. Higher φ, faster
# grokking.

# %%
phi = data.info["n_train_inferred"] / data.info["n_atomic_id"]
print(f"{data.info['n_train_inferred']:,} inferred / {data.info['n_atomic_id']:,} ID atomic facts: φ = {phi:.1f}")
assert abs(phi - demo.data.phi) < 0.01

# %% [markdown]
# ## 2. Train it and watch it grok
#
# The demo model is a 4-layer GPT-2-style transformer, 64 wide. It is trained with AdamW, weight decay 1.3 and
# the **Grokfast-EMA** gradient filter. The learning rate falls (cosine) from 1e-3 to 3e-4 over the first 2,500
# steps and then stays there: at the falling rate the model memorises every training fact (*fit*:
# train_inferred, id_atomic and ood_atomic ≥ 0.99); at the floor, weight decay slowly shrinks the weights
# until the generalising circuit wins. The run stops once it has grokked (*grok*: test_inferred_id ≥ 0.95)
# after the fit: about 10,000 steps, about 5 minutes on 2 cores. If you ran `make demo` already, a copy of
# that run is read instead (`DEMO_RUN` in the first cell says which).

# %%
def is_demo_run(path):
    """A finished run of the unchanged `demo` preset (the number of CPU threads may differ)."""
    other = gl.load_run(path).config
    same_training = dataclasses.replace(other.train, threads=demo.train.threads) == demo.train
    return gl.load_run(path).finished and same_training and (other.data, other.model, other.filter) == (
        demo.data, demo.model, demo.filter)


if DEMO_RUN == "auto":  # the lesson runs in tutorials/ (Jupyter) or in the repository root
    found = [p.parent for folder in (Path("runs"), Path("../runs"))
             for p in folder.glob("demo-*/summary.json") if is_demo_run(p.parent)]
    DEMO_RUN = str(max(found, key=lambda p: p.stat().st_mtime)) if found else ""
if DEMO_RUN:
    assert is_demo_run(DEMO_RUN), f"{DEMO_RUN} is not a finished run of the demo preset: set DEMO_RUN = ''"
    print(f"reading the demo run {DEMO_RUN} (a copy: the analyses below write into it)")
    run = gl.load_run(shutil.copytree(DEMO_RUN, RUNS / "demo"))
else:
    run = gl.train("demo", {"train.threads": THREADS}, out=RUNS / "demo", progress=False)
summary = run.summary
print(f"train_inferred reached 0.95 at step {summary['train_reaches_grok_level_step']}, "
      f"test_inferred_id at step {summary['grok_step']} (grokked); every training fact memorised (fit) at step "
      f"{summary['fit_step']}; {summary['elapsed_s']:.0f} s of training at train.threads="
      f"{run.config.train.threads} (0: every core)")
gl.Table([{"probe": k, "final accuracy": v, "no-information level": summary["no_information"].get(k)}
          for k, v in summary["final"].items()])

# %%
gl.plot_accuracy(run)

# %% [markdown]
# How to read it (the step axis is logarithmic):
#
# - **train** (`train_inferred`, blue) and the atomic facts (dashed) rise first: the model memorises every
#   training fact, the OOD atomic ones included (the dotted *fit* line), while the ID test stays near its
#   no-information level.
# - Then a **plateau** (shaded): every training fact is known and nothing seems to happen for thousands of
#   steps; the weight norm (lower panel) shrinks under weight decay.
# - **test (ID)** (green) rises *late*, several times the fit step: the model starts answering two-hop
#   questions it was never shown. This late jump is grokking.
# - **test (OOD)** (red) stays near zero, although the model knows both hops of every OOD question
#   (`ood_atomic` reaches 1.0). It can look both facts up one at a time, but it cannot *chain* them.
#
# These three statements are what this lesson teaches, so they are checked:

# %%
final = summary["final"]
assert final["test_inferred_id"] >= 0.95, "grokked: ID two-hop questions answered"
assert final["test_inferred_ood"] < 0.10, "OOD two-hop questions stay near zero"
assert final["ood_atomic"] >= 0.95 and final["id_atomic"] >= 0.95, "... although both hops are known"
assert summary["grok_step"] is not None and summary["fit_step"] is not None
assert summary["train_reaches_grok_level_step"] < summary["grok_step"], "train first, the ID test after"
assert summary["fit_step"] < summary["grok_step"], "every training fact memorised before ID generalises"
at_fit = [r for r in run.metrics if r["step"] <= summary["fit_step"]][-1]["test_inferred_id/acc"]
assert at_fit <= 0.5, "at the fit the ID test is still low: memorised, not generalised"
assert summary["grok_step"] >= 3 * summary["fit_step"], "the plateau: grokking comes several times later"

# %% [markdown]
# ### The same run without Grokfast
#
# Grokfast (Lee et al. 2024) adds to each gradient λ times its slow-moving average (an EMA), amplifying the
# slow, consistent part of the gradient over the fast, noisy part (notebook 02 shows its code). Train the
# same setting with `filter.kind = "none"` for 2,000 steps (to the first evaluation from step 2,000 on), about
# 2 minutes. `stop_at` pauses the run there on the *same* schedule (learning rate and evaluation steps are
# those of the full run), so the two are comparable step by step; `gl.resume(...)` would continue it.

# %%
plain = gl.train("demo", {"train.threads": THREADS, "filter.kind": "none"}, out=RUNS / "demo-no-filter",
                 stop_at=2000, progress=False)
budget = plain.summary["final_step"]
filtered_then = next(r for r in run.metrics if r["step"] == budget)  # the same evaluation step, with the filter

fig, ax = plt.subplots(figsize=(7, 3.8))
for r, name, style in ((run, "Grokfast-EMA", "-"), (plain, "no filter", "--")):
    for probe, color in (("train_inferred", "tab:blue"), ("test_inferred_id", "tab:green")):
        ax.plot(*r.curve(probe), style, color=color, label=f"{probe}, {name}")
ax.axvline(budget, color="grey", lw=0.8)
ax.set(xscale="log", xlabel="step (log)", ylabel="accuracy",
       title=f"with and without the filter (no filter: {budget:,} steps)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()
gl.Table([{"at step": budget, "run": name, "train_inferred": train_acc, "test_inferred_id": test_acc}
          for name, train_acc, test_acc in (
              ("Grokfast-EMA", filtered_then["train_inferred/acc"], filtered_then["test_inferred_id/acc"]),
              ("no filter", plain.summary["final"]["train_inferred"], plain.summary["final"]["test_inferred_id"]))])

# %% [markdown]
# At the same step the filtered run has memorised more of the training two-hop facts (in this setting the filter
# speeds up memorising as well as generalising); neither has begun to generalise: the ID test is near its
# no-information level in both. The filter's main job is the plateau that follows: resumed, the unfiltered run
# waits far longer before it groks (exercise 5). The filter does not change *what* is learned (OOD stays near zero either
# way: docs/results.md, "Grokfast on the reasoning tasks"), only *how fast*.

# %%
assert plain.summary["grok_step"] is None and 2000 <= budget < demo.train.steps
assert filtered_then["train_inferred/acc"] > plain.summary["final"]["train_inferred"] + 0.1, "the filter is faster"
assert plain.summary["final"]["test_inferred_id"] < 0.5

# %% [markdown]
# ## 3. Inside the model
#
# Training saved checkpoints on a log-spaced schedule (30 here), so we can look at the model at any stage.
# Two methods from the paper, both in `groklab/analysis/` (the table of methods is
# `groklab/analysis/methods.py`). To keep this quick we analyse every other checkpoint from step 100 on, and
# compare two moments: **before**, when the training two-hop facts are known (train_inferred ≥ 0.95) but the
# ID test is not yet, and **after**, at the end.
#
# ### Logit lens: where does the bridge entity become readable?
#
# The model writes its intermediate results into the *residual stream*, one vector per input position,
# updated by every layer. The logit lens asks what the model would answer if it stopped after *i* layers: it
# decodes the state with the final LayerNorm and the unembedding, exactly as the last layer is decoded. If
# the bridge entity `b` ranks high when we decode the state at the `r1` position after two layers, the model
# has looked up the first hop `h r1 → b` by then. The score is the mean reciprocal rank (MRR: 1 when `b` is
# the top guess, 0.5 when second, ...).

# %%
saved = run.checkpoints()
before = min(saved, key=lambda s: abs(s - summary["train_reaches_grok_level_step"]))
after = saved[-1]
steps = sorted(set([s for s in saved if s >= 100][::2]) | {before, after})
print(f"before: step {before:,}; after: step {after:,}; analysed at {steps}")
for when, step in (("before", before), ("after", after)):
    row = next(r for r in run.metrics if r["step"] == step)
    print(f"{when}: train_inferred {row['train_inferred/acc']:.2f}, test_inferred_id {row['test_inferred_id/acc']:.2f}")

# %%
lens = gl.analyze(run, "logit-lens", steps=steps)  # on test_inferred_id
lens.figures[0]

# %% [markdown]
# Each panel is one target, each line one layer (the state after *i* blocks), the dashed line the test
# accuracy. Before and after grokking, layer by layer:

# %%
def mrr_table(analysis, target):
    early, late = analysis.at(before), analysis.at(after)
    return gl.Table([{"state after blocks": layer,
                      f"MRR before (step {early['step']:,})": early["targets"][target]["mrr"][layer],
                      f"MRR after (step {late['step']:,})": late["targets"][target]["mrr"][layer]}
                     for layer in range(analysis.result["depth"] + 1)])


mrr_table(lens, "bridge@r1")

# %% [markdown]
# In plain words: the bridge entity is never in the input, yet after a couple of blocks it can be read off the
# state at the `r1` position, and more clearly after grokking than before. The model computes the first hop
# there, and the upper blocks use it to apply `r2`. (The last row is the model's own output at `r1`, where it
# was trained to answer the atomic fact `h r1 → b`: there the bridge is expected.) The `answer@last` panel shows
# the answer becoming readable only at the top: the second hop comes after the first.

# %%
end = lens.at(after)["targets"]
top = demo.model.depth
assert end["bridge@r1"]["mrr"][top - 1] > 0.5, "the bridge is readable at r1 one block below the top"
assert end["answer@last"]["top1"][top] >= 0.9, "the last layer's top guess is the answer"

# %% [markdown]
# ### Causal tracing: which states does the answer depend on?
#
# Take a training two-hop fact `h r1 r2`. Replace one input token by another that would change the answer
# (say `h` by `h'`) and run the model on this *perturbed* input. Then run the clean input again, but paste in
# the perturbed state of one position after *i* blocks, recompute the blocks above, and see whether the
# prediction changes. The fraction of facts whose prediction changes is that state's **causal strength**: 1
# means the answer runs through that state, 0 means it does not.

# %%
trace = gl.analyze(run, "causal-tracing", examples=200, steps=steps)  # on train_inferred

names = trace.result["position_names"]  # head r1 r2
grids = [np.array(trace.at(step)["strength"]) for step in (before, after)]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
for ax, grid, title, cmap, low in zip(axes, grids + [grids[1] - grids[0]],
                                      (f"before (step {before:,})", f"after (step {after:,})", "after − before"),
                                      ("viridis", "viridis", "RdBu_r"), (0, 0, -1), strict=True):
    image = ax.imshow(grid, origin="lower", cmap=cmap, vmin=low, vmax=1, aspect="auto")
    for (i, q), v in np.ndenumerate(grid):
        ax.text(q, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if abs(v) > 0.5 else "black")
    ax.set(xticks=range(len(names)), xticklabels=names, yticks=range(len(grid)), title=title,
           xlabel="position (its own token perturbed)", ylabel="state after i blocks")
    fig.colorbar(image, ax=ax, fraction=0.05)
fig.tight_layout()
plt.show()

# %% [markdown]
# Each column is a position traced with its own token perturbed; each row a depth. At the bottom every column
# is ~1 (the token *is* the input). Read the `head` column upwards: how high up does the head's own state
# still matter? After grokking it stops mattering after a block or two, while the `r1` column stays at 1 up to
# the top: what the answer needs from the head has moved to the `r1` position, as the bridge entity. The `r2`
# position is where the answer is produced, so it matters all the way up. The full grid also shows where the
# head's perturbation goes: with the head replaced, patching the `r1` state changes the answer. The curves
# follow every intermediate state over training:

# %%
trace.figures[1]

# %%
def strength(step, perturbed, layer, position):
    """Causal strength of the state after `layer` blocks at `position` when token `perturbed` is replaced."""
    return trace.at(step)["perturbed"][perturbed]["strength"][layer][position]


for when, step in (("before", before), ("after", after)):
    print(f"{when}: head replaced → strength of the head's own state after 2 blocks "
          f"{strength(step, 'head', 2, 0):.2f}, of the r1 state after 2 blocks {strength(step, 'head', 2, 1):.2f}")

# %%
assert all(grids[1][0][q] > 0.9 for q in range(3)), "every input token matters at the embedding"
assert strength(after, "head", 2, 1) > 0.5, "after grokking the head's effect passes through the r1 state"
assert strength(after, "head", 2, 0) < 0.2, "... and no longer through the head's own state"

# %% [markdown]
# ## 4. Layer sharing, in the code
#
# Wang et al. (App. E.2) also train a model whose upper layers *share* their parameters with the lower ones:
# the same block is applied at depth 0 and again at depth 4. Their idea: an OOD fact is stored in the lower
# layers only (the model learned to look it up there as a *first* hop), so a second hop done by the upper
# layers cannot find it; if the upper layers are the lower ones, it can. In groklab this is one config field,
# `model.loops`: the model holds a block of `n_layers` layers and applies it `loops` times, `depth` layers in all:

# %%
from groklab.config import ModelConfig  # noqa: E402
from groklab.model import Transformer  # noqa: E402

print(inspect.getsource(ModelConfig.depth.fget))
print(inspect.getsource(Transformer.block_at))

# %% [markdown]
# and its forward pass walks over *depths*, asking `block_at(depth)` which block to apply: with a block of 2
# layers looped twice, depths 0, 1, 2, 3 use blocks 0, 1, 0, 1. Hook names (what the logit lens and causal tracing
# read) are indexed by depth, so the analysis works unchanged on a shared model.

# %%
source = inspect.getsource(Transformer._run)
print(source[source.index("        x = _hooked(self.embed"):])

# %% [markdown]
# Build both models and compare. A shared block is one module object at two depths, so its weights are one
# tensor (the same memory), and `model.parameters()` lists it once: the optimiser updates it once per step with
# the gradient summed over both depths it is used at.

# %%
n_vocab, n_ctx = len(data.vocab), data.n_ctx
models = {k: Transformer(ModelConfig(n_layers=4 // k, loops=k), n_vocab, n_ctx) for k in (1, 2)}
count = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
per_block = sum(p.numel() for p in models[1].blocks[0].parameters())
shared = models[2]
gl.Table([{"model.loops": k, "blocks holding weights": len(m.blocks), "parameters": count[k],
           "block at depths 0..3": [list(m.blocks).index(m.block_at(d)) for d in range(4)]} for k, m in models.items()])

# %%
assert shared.block_at(0) is shared.block_at(2) and shared.block_at(1) is shared.block_at(3)
assert shared.block_at(0).mlp.fc.weight.data_ptr() == shared.block_at(2).mlp.fc.weight.data_ptr()
assert count[1] - count[2] == 2 * per_block, "sharing saves exactly two blocks' parameters"
print(f"a block has {per_block:,} parameters; sharing saves {count[1] - count[2]:,} of {count[1]:,}")

# %% [markdown]
# A tiny shared run: the demo with two blocks applied twice, paused after about 1,500 steps (at the first
# evaluation from step 1,500 on), beside the same steps of the unshared run above. It learns with half the
# block parameters, a little more slowly.

# %%
shared_run = gl.train("demo", {"train.threads": THREADS, "model.n_layers": 2, "model.loops": 2},
                      out=RUNS / "demo-shared", stop_at=1500, progress=False)
paused_at = shared_run.summary["final_step"]
fig, ax = plt.subplots(figsize=(7, 3.8))
for r, name, style in ((run, "4 distinct blocks", "-"), (shared_run, "2 blocks, each twice", "--")):
    for probe, color in (("train_inferred", "tab:blue"), ("test_inferred_id", "tab:green"),
                         ("test_inferred_ood", "tab:red")):
        steps, acc = r.curve(probe)
        keep = [i for i, s in enumerate(steps) if s <= paused_at]
        ax.plot([steps[i] for i in keep], [acc[i] for i in keep], style, color=color, label=f"{probe}, {name}")
ax.set(xscale="log", xlabel="step (log)", ylabel="accuracy", title=f"layer sharing, first {paused_at:,} steps")
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
plt.show()

# %%
assert shared_run.config.model.n_layers == 2 and 1500 <= paused_at < demo.train.steps
learned = shared_run.summary["final"]["train_inferred"]
assert learned > 5 * shared_run.summary["no_information"]["train_inferred"], "the shared model learns"

# %% [markdown]
# **What the paper claims, and what we measured.** With sharing, Wang et al. see OOD two-hop accuracy climb
# above zero, slowly and far later than ID (|E| = 2,000, an 8-layer model, millions of steps on a GPU). At
# this CPU scale we did not reproduce it: over 12,000 steps shared and unshared models both stay at the noise
# level of a 100-fact OOD probe (docs/results.md, "Parameter sharing and OOD composition"). `groklab sweep
# sharing-gpu` is the paper-scale experiment.

# %% [markdown]
# ## 5. Exercises
#
# Each answer is folded away below its question (click the cell's left bar, or the ▸, to open it). Train with
# `gl.train("demo", {...}, out=RUNS / "name", progress=False)`.
#
# **1.** Change φ to 5.4 (`{"data.phi": 5.4}`). What happens to the fit step and the grok step? Predict first.

# %% [markdown] jupyter={"source_hidden": true}
# <details><summary>Answer</summary>
#
# With fewer inferred facts per atomic fact the model still memorises everything (fit comes at about the same
# step or earlier: there is less to memorise), but the ID test groks much later or not within the schedule:
# memorising the inferred facts one by one is now cheaper, compared with learning the rule, than at φ = 9.5.
# In our φ sweep (docs/results.md) φ 5.4 stayed near 0.13 on the ID test after 12,000 steps while φ 9, 12.6
# and 18 grokked at 8,210, 3,496 and 2,892 steps. Try `{"data.phi": 5.4, "train.steps": 12000}`.
# </details>

# %% [markdown]
# **2.** Set the weight decay to 0.1 (`{"train.weight_decay": 0.1}`). Faster or slower grokking?

# %% [markdown] jupyter={"source_hidden": true}
# <details><summary>Answer</summary>
#
# Slower. Weight decay keeps pulling the weights towards small norms; the memorising solution needs large
# weights (one entry per fact), the rule-based one is smaller, so stronger decay favours the rule. In our
# weight-decay sweep 0.1 / 0.3 / 1.0 grokked at 11,208 / 6,258 / 3,171 steps (3.0 was too strong: the model
# could not even fit).
# </details>

# %% [markdown]
# **3.** `ood_atomic` is 1.0 but `test_inferred_ood` is near 0. Run the logit lens on the OOD test
# (`gl.analyze(run, "logit-lens", split="test_inferred_ood")`) and compare `bridge@r1` and `answer@last` with
# the ID test. Which hop fails?

# %% [markdown] jupyter={"source_hidden": true}
# <details><summary>Answer</summary>
#
# The first hop works: the bridge of an OOD question is readable at `r1` (the model learned to look up atomic
# facts as first hops, OOD ones included). The second hop fails: `answer@last` stays low. The upper layers
# apply `r2` to the bridge, but the OOD facts about the bridge were only ever used as first hops, so they are
# stored where the lower layers can use them and the upper layers cannot. That is the paper's explanation,
# and the motivation for layer sharing (section 4).
# </details>

# %% [markdown]
# **4.** Make the demo model deeper or shallower (`{"model.n_layers": 2}`; with sharing, the depth is
# `n_layers × loops`). Does a 2-layer model grok? Where is the bridge in its logit lens?

# %% [markdown] jupyter={"source_hidden": true}
# <details><summary>Answer</summary>
#
# It groks, but later. In our depth sweep (docs/results.md, an earlier constant-learning-rate version of this
# setting) 2 layers grokked at 8,210 steps, 4 at 3,496 and 8 at 2,892: deeper models grok sooner here. Two
# blocks leave little room, about one block per hop: see where `bridge@r1` becomes readable in its logit lens
# and how few rows its causal-tracing grid has to route the answer through.
# </details>

# %% [markdown]
# **5.** Resume the no-filter run to the end of its schedule (`gl.resume(plain.path)`, up to 15,000 steps in
# all). Does it grok? Are its metrics up to the pause the same as before you resumed?

# %% [markdown] jupyter={"source_hidden": true}
# <details><summary>Answer</summary>
#
# Its first part is unchanged: `resume` continues from the checkpoint at the pause exactly as an uninterrupted
# run would have (same batches, same optimiser and filter state), so the metrics up to the pause are the same
# rows. Without the filter the plateau is far longer, and within the demo's 15,000-step cap it may not reach
# 95% at all (docs/results.md: 0.52 at 9,000 steps in an earlier, constant-learning-rate version of the demo).
# </details>

# %% [markdown]
# ## Where next
#
# - `tutorials/02-modular-arithmetic-and-grokfast.ipynb`: classic grokking on x·y mod 97, weight decay vs
#   Grokfast, and the Fourier structure of the grokked embedding.
# - `groklab sweep phi-cpu --jobs 2` and `groklab report runs/phi-cpu`: the φ experiment on your machine.
# - docs/science.md (the papers' designs and findings), docs/results.md (our measurements).

# %%
print(f"this notebook ran in {time.perf_counter() - STARTED:.0f} s with train.threads={THREADS}; runs in {RUNS}")
