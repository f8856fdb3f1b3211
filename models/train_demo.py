"""Train the shipped demo checkpoint: a TVConv face MobileNetV2 x0.1 on scikit-learn's digits.

The reference face recipe, scaled down to what a 2-core CPU trains in minutes: the digits
(8x8 grey, 10 classes) are upsampled to the network's 96x96 RGB input in [-1, 1]; the 512-d
embedding feeds an AM-Softmax head (s=32, m=0.35) as in the reference; SGD with momentum.
TVConv generators are shrunk (inter_chans 4, inter_layers 0) so the checkpoint stays a few MB;
every other shape (17 TV layers, 4 of them stride 2, h/w from 96 down to 6) is the real one.
The file is saved in the PyTorch Lightning 1.4.6 ``.ckpt`` layout the reference writes.

    python models/train_demo.py            # writes models/demo_face_mobilenetv2_x0_1.ckpt (+ .json)

``digits_split``, ``to_input``, ``head_weight``, ``embed``, ``accuracy`` and ``evaluate`` are also how
other scripts (benchmarks/resize_accuracy.py, benchmarks/compressed_kernels.py) measure the demo's accuracy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tvexport.layers import TVConv
from tvexport.models import TVSettings, create_model
from tvexport.testing import lightning_checkpoint, save_lightning

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / "demo_face_mobilenetv2_x0_1.ckpt"
DWCONV_CHECKPOINT = HERE / "demo_face_mobilenetv2_x0_1_dwconv.ckpt"  # --atom dwconv: the same recipe without TVConv
TV = TVSettings(k=3, posi_chans=4, inter_chans=4, inter_layers=0, bias=False)
SIZE = 96  # the network's (trained) input size


class AMSoftmax(torch.nn.Module):
    """Additive-margin softmax head, weight (feat_dim, classes) as the reference stores it."""

    def __init__(self, feat_dim: int, classes: int, margin: float = 0.35, scale: float = 32.0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(feat_dim, classes).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5))
        self.margin, self.scale = margin, scale

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = class_cosine(feats, self.weight)
        return self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]))


def class_cosine(feats: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N, classes) cosine between embeddings and the head's class weights (feat_dim, classes)."""
    return (F.normalize(feats) @ F.normalize(weight, dim=0)).clamp(-1, 1)


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits, 80/20 stratified (random_state=0): train images, test images (N, 8, 8), train labels, test labels."""
    digits = load_digits()
    return train_test_split(digits.images, digits.target, test_size=0.2, random_state=0, stratify=digits.target)  # type: ignore[return-value]


def to_input(images: np.ndarray, size: int | tuple[int, int] = SIZE) -> torch.Tensor:
    """(N, 8, 8) digits in 0..16 -> (N, 3, H, W) in [-1, 1], rendered (bilinear) at ``size`` (96x96 for training)."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(size, size) if isinstance(size, int) else size, mode="bilinear", align_corners=False)
    return (x * 2 - 1).repeat(1, 3, 1, 1)


def head_weight(path: Path = CHECKPOINT) -> torch.Tensor:
    """The AM-Softmax class weights (512, 10) a demo checkpoint keeps beside the model (``head.weight``)."""
    from tvexport.checkpoint import _torch_load  # the safe (weights-only) loader, with Lightning's stand-ins

    return _torch_load(Path(path))["state_dict"]["head.weight"].float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--atom", choices=["tvconv", "dwconv"], default="tvconv", help="dwconv: the plain depthwise baseline, trained alike")
    parser.add_argument("--out", type=Path, help=f"default {CHECKPOINT.name} ({DWCONV_CHECKPOINT.name} for dwconv)")
    args = parser.parse_args()
    tv = args.atom == "tvconv"
    args.out = args.out or (CHECKPOINT if tv else DWCONV_CHECKPOINT)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    x_tr, x_te, y_tr, y_te = digits_split()
    x_tr, x_te = to_input(x_tr), to_input(x_te)
    y_tr, y_te = torch.from_numpy(y_tr).long(), torch.from_numpy(y_te).long()

    model = create_model("face_mobilenetv2_x0_1", atom=args.atom, tv=TV).train()
    head = AMSoftmax(512, 10)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = args.epochs * ((len(x_tr) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_tr))
        total = 0.0
        for i in range(0, len(x_tr), 64):
            idx = perm[i : i + 64]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(head(model(x_tr[idx]), y_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = evaluate(model, head.weight, x_te, y_te)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / len(x_tr):.3f}, test accuracy {acc:.4f} ({time.time() - start:.0f} s)", flush=True)

    model.eval()
    acc = evaluate(model, head.weight, x_te, y_te)
    posi_std = float(torch.stack([m.posi_map.std() for m in model.modules() if isinstance(m, TVConv)]).mean()) if tv else None
    hparams = {
        "model_name": "mobilenet_v2_x0_1", "atom": "TVConv" if tv else "base", "input_size": [96, 96], "drop_ratio": 0.0,
        "TVConv_posi_chans": TV.posi_chans, "TVConv_inter_chans": TV.inter_chans, "TVConv_inter_layers": TV.inter_layers,
        "TVConv_Bias": int(TV.bias), "lr": 0.05, "weight_decay": 5e-4, "max_epochs": args.epochs, "batch_size": 64,
        "dataset_name": "sklearn_digits_upsampled_96",
    }
    ckpt = lightning_checkpoint(model, num_classes=10, hparams=hparams, head_weight=head.weight.detach().clone(), epoch=args.epochs - 1)
    save_lightning(ckpt, args.out)
    record = {
        "file": args.out.name,
        "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "bytes": args.out.stat().st_size,
        "arch": "face_mobilenetv2_x0_1",
        "tv_settings": {"k": TV.k, "posi_chans": TV.posi_chans, "inter_chans": TV.inter_chans, "inter_layers": TV.inter_layers, "bias": TV.bias} if tv else None,
        "data": "sklearn.datasets.load_digits, 80/20 stratified split (random_state=0), 8x8 -> 96x96 bilinear, grey -> RGB, [-1, 1]",
        "epochs": args.epochs,
        "test_accuracy": round(acc, 4),
        "test_images": len(x_te),
        "mean_posi_map_std": round(posi_std, 4) if posi_std is not None else None,
        "train_seconds": round(time.time() - start, 1),
        "torch": str(torch.__version__),
        "command": " ".join(["python", "models/train_demo.py", *sys.argv[1:]]),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


@torch.no_grad()
def embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Embeddings of ``x`` in batches of 256 (eval mode)."""
    model.eval()
    return torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])


def accuracy(feats: torch.Tensor, weight: torch.Tensor, y: torch.Tensor) -> float:
    """Share of embeddings ``feats`` whose nearest class by cosine to the head's class weights is ``y``."""
    pred = class_cosine(feats, weight.detach()).argmax(1)
    return float((pred == torch.as_tensor(y)).float().mean())


@torch.no_grad()
def evaluate(model: torch.nn.Module, weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``model`` on ``x`` (``accuracy`` of its embeddings)."""
    return accuracy(embed(model, x), weight, y)


if __name__ == "__main__":
    main()
