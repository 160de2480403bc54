"""Run by benchmarks/multilabel_goemotions.py inside .venv-setfit (SetFit 1.2 and its own pins): train SetFit
one-vs-rest on the rows of a job file and save its test probabilities. Not imported by hf_transfer."""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from datasets import Dataset  # noqa: E402
from setfit import SetFitModel, Trainer, TrainingArguments  # noqa: E402


def main(path: str) -> None:
    job = json.loads(open(path).read())
    model = SetFitModel.from_pretrained(job["model"], multi_target_strategy="one-vs-rest")
    train = Dataset.from_dict({"text": job["train"]["text"], "label": job["train"]["labels"]})
    folder = os.path.dirname(job["out"])  # SetFit's checkpoints go to the job's temporary folder, not the cwd
    args = TrainingArguments(output_dir=os.path.join(folder, "checkpoints"), batch_size=16, num_epochs=1,
                             seed=job["seed"], report_to="none")  # fmt: skip
    Trainer(model=model, args=args, train_dataset=train).train()
    probs = np.asarray(model.predict_proba(job["test"], batch_size=128))
    np.save(job["out"], probs)


if __name__ == "__main__":
    main(sys.argv[1])
