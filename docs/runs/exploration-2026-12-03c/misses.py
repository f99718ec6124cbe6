"""Which training inferred facts are still wrong where train_inferred stalls at ~0.97 (wd03c-s3)?

    python docs/runs/exploration-2026-12-03c/misses.py RUN_DIR STEP [STEP ...]   # needs the run's checkpoints

Accuracy on the train_inferred probe by quartile of how often the fact's bridge entity, and its second hop
(bridge, r2), appear among the training inferred facts: flat quartiles mean no class of facts is hard.
"""

import collections
import sys

import numpy as np
import torch

from groklab import api

torch.set_num_threads(1)
run = api.load_run(sys.argv[1])
probe, train = run.data.probes["train_inferred"], run.data.train
inferred = train.kinds == "inferred"
bridges, second = train.fields["bridge"][inferred], train.fields["r2"][inferred]
bridge_count = collections.Counter(bridges.tolist())
hop_count = collections.Counter(zip(bridges.tolist(), second.tolist(), strict=True))

for step in map(int, sys.argv[2:]):
    with torch.no_grad():
        logits = run.model(step).eval()(torch.as_tensor(probe.tokens))
    last = torch.as_tensor(probe.lengths) - 1
    correct = logits[torch.arange(len(probe.answers)), last].argmax(-1).numpy() == probe.answers
    b, r2 = probe.fields["bridge"], probe.fields["r2"]
    counts = {
        "bridge": np.array([bridge_count[x] for x in b]),
        "(bridge, r2)": np.array([hop_count[(x, y)] for x, y in zip(b, r2, strict=True)]),
    }
    print(f"step {step}: train_inferred {correct.mean():.3f}, {int((~correct).sum())} wrong")
    for name, count in counts.items():
        edges = np.quantile(count, [0.25, 0.5, 0.75])
        quartile = np.digitize(count, edges)
        by_quartile = [round(float(correct[quartile == q].mean()), 3) for q in range(4)]
        print(f"  by {name} count (quartile edges {edges.round(0).tolist()}): {by_quartile}")
