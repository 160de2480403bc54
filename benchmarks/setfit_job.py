"""Run by benchmarks/few_shot_auto.py inside .venv-setfit (SetFit 1.2 and its own pins): train SetFit on the
rows of a job file with its defaults (one epoch of contrastive pairs, logistic-regression head) and save its
predictions on the evaluation texts. Not imported by hf_transfer."""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from datasets import Dataset  # noqa: E402
from setfit import SetFitModel, Trainer, TrainingArguments  # noqa: E402


def main(path: str) -> None:
    job = json.loads(open(path).read())
    model = SetFitModel.from_pretrained(job["model"])
    train = Dataset.from_dict({"text": job["train"]["text"], "label": job["train"]["label"]})
    folder = os.path.dirname(job["out"])  # SetFit's checkpoints go to the job's temporary folder, not the cwd
    args = TrainingArguments(output_dir=os.path.join(folder, "checkpoints"), batch_size=16, num_epochs=1,
                             seed=job["seed"], report_to="none")  # fmt: skip
    Trainer(model=model, args=args, train_dataset=train).train()
    np.save(job["out"], np.asarray(model.predict(job["test"], batch_size=128)))


if __name__ == "__main__":
    main(sys.argv[1])
