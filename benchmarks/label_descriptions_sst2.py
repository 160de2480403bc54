"""How the SST-2 recipes' label descriptions were chosen: zero-shot accuracy of candidate sets.

Selection uses the bundled *train* slice only; validation accuracy is reported beside it so the
reader can see the choice was not made on the evaluation split. Writes
``benchmarks/results/label_descriptions_sst2.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CANDIDATES = {
    "label names": [["negative"], ["positive"]],
    "movie-1": [["a bad movie"], ["a good movie"]],
    "movie-3": [["a bad movie", "a terrible film", "i hated it"], ["a good movie", "a great film", "i loved it"]],
    "review": [["a negative movie review"], ["a positive movie review"]],
    "opinion": [["i did not like this movie, it was bad"], ["i liked this movie, it was good"]],
    "mix-5": [
        ["a bad movie", "a terrible film", "i hated it", "boring and awful", "a waste of time"],
        ["a good movie", "a great film", "i loved it", "fun and moving", "well worth seeing"],
    ],
    "adjectives": [["bad, boring, awful, terrible, dull"], ["good, great, wonderful, fun, moving"]],
    "this is": [["this is bad"], ["this is good"]],
    "it's-3": [["it's bad", "it's terrible", "it's boring"], ["it's good", "it's great", "it's wonderful"]],
}


def main() -> None:
    import torch

    import hf_transfer as ht
    from hf_transfer.finetune import description_head, embed_texts, prepare

    data = ht.load_bundled("sst2")
    model, tok = prepare("minilm", ht.label_names(data), head_init="random")
    features = {split: embed_texts(model, tok, data[split]["text"]) for split in ("train", "validation")}
    results = {}
    for name, descriptions in CANDIDATES.items():
        head = description_head(model, tok, descriptions)
        results[name] = {
            split: float(((x @ head.T).argmax(-1) == torch.tensor(data[split]["label"])).float().mean())
            for split, x in features.items()
        }
        results[name]["descriptions"] = descriptions
        print(f"{name:12s} train {results[name]['train']:.4f}  validation {results[name]['validation']:.4f}")
    best = max(results, key=lambda k: results[k]["train"])
    print(f"chosen on train: {best}")
    out = Path(__file__).parent / "results" / "label_descriptions_sst2.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"chosen_on_train": best, "candidates": results}, indent=2))


if __name__ == "__main__":
    main()
