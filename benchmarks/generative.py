"""Claims of the generative-models issue, measured side by side in one run:

1. the anchor: pytorch/examples' MLP VAE recipe (784-400-20, Adam 1e-3, batch 128, 10 epochs, summed BCE + KL,
   a test pass after each epoch) as a bare loop written here, against hfdl's `--model_type vae` with the same
   recipe through the shared accelerate loop: test loss within 1 nat, training time <= 1.2x;
2. decoder sampling speed of every model type at batch 256 (>= 5,000 images/s);
3. with --quality: conv_vae under --time_budget_minutes 2 against the anchor's loss (>= 3 nats lower), and
   DCGAN's classifier-feature FID against conv_vae's at the same time budget.

    python benchmarks/generative.py [--epochs 10 --threads 2] [--quality --budget_minutes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import emit

from hfdl.core.image_tensors import load_image_tensors
from hfdl.tasks.generative.model import ImageGenerator
from hfdl.tasks.generative.pipeline import sampling_speed


class ExampleVAE(torch.nn.Module):
    """pytorch/examples' VAE: fc1 784-400, fc21 / fc22 400-20, fc3 20-400, fc4 400-784, sigmoid output."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = torch.nn.Linear(784, 400), torch.nn.Linear(400, 20), torch.nn.Linear(400, 20)
        self.fc3, self.fc4 = torch.nn.Linear(20, 400), torch.nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def example_loss(recon, x, mu, logvar):
    """The example's loss: BCE summed over pixels and the batch, plus the summed KL."""
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def bare_loop(train: torch.Tensor, test: torch.Tensor, epochs: int, seed: int = 1) -> dict:
    """The example's behaviour, no framework: shuffled batches of 128, Adam 1e-3, a test pass per epoch."""
    torch.manual_seed(seed)
    model = ExampleVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xtr, xte = train.float() / 255, test.float() / 255
    train_s, curve = 0.0, []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(xtr)).split(128):
            x = xtr[idx]
            opt.zero_grad()
            loss = example_loss(*_fwd(model, x))
            loss.backward()
            opt.step()
        train_s += time.perf_counter() - t0
        model.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(xte), 128):
                total += example_loss(*_fwd(model, xte[i : i + 128])).item()
        curve.append(total / len(xte))
    return {"test_loss": curve[-1], "curve": curve, "train_seconds": train_s}


def _fwd(model, x):
    recon, mu, logvar = model(x)
    return recon, x, mu, logvar


def hfdl_run(out: Path, args: list[str]) -> dict:
    """scripts/train_generative.py in this process (the same code `accelerate launch` runs)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from train_generative import main

    return main(["--output_dir", str(out), "--overwrite_output_dir", *args])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--quality", action="store_true", help="also the 2-minute conv_vae and DCGAN runs (claims 3)")
    p.add_argument("--budget_minutes", type=float, default=2.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = load_image_tensors("fashion_mnist")
    result: dict = {"threads": a.threads, "epochs": a.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_loop(data.train, data.test, a.epochs)
        ours = hfdl_run(Path(tmp) / "vae", ["--model_type", "vae", "--num_train_epochs", str(a.epochs), "--fid_features", "none", "--iw_samples", "0"])
        result.update(
            anchor_published_test_loss=243.96,
            bare_test_loss=bare["test_loss"],
            bare_epoch1_test_loss=bare["curve"][0],
            hfdl_test_loss=ours["eval_loss_pytorch_example"],
            loss_gap_nats=ours["eval_loss_pytorch_example"] - bare["test_loss"],
            bare_train_seconds=bare["train_seconds"],
            hfdl_train_seconds=ours["train_seconds"],
            time_ratio=ours["train_seconds"] / bare["train_seconds"],
        )
        for t in ("vae", "conv_vae", "dcgan", "autoencoder"):
            model = ImageGenerator(t, latent_dim=100 if t == "dcgan" else 20).eval()
            result[f"sampling_images_per_second_{t}"] = sampling_speed(model)
        if a.quality:
            for t in ("conv_vae", "dcgan"):
                r = hfdl_run(Path(tmp) / t, ["--model_type", t, "--time_budget_minutes", str(a.budget_minutes)])
                result[f"{t}_fid"] = r.get("eval_fid")
                result[f"{t}_train_seconds"] = r["train_seconds"]
                if t == "conv_vae":
                    result.update(
                        conv_vae_loss_pytorch_example=r["eval_loss_pytorch_example"], conv_vae_neg_elbo=r["eval_neg_elbo"], conv_vae_iw_nll=r.get("eval_iw_nll")
                    )
                    result["conv_vae_margin_to_anchor"] = bare["test_loss"] - r["eval_loss_pytorch_example"]
            result["data_fid_floor"] = r.get("data_fid_floor")
    print(json.dumps({"bare_curve": [round(v, 2) for v in bare["curve"]]}))
    emit(result)


if __name__ == "__main__":
    main()
