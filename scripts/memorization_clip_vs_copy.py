#!/usr/bin/env python
"""On the offline world, how much does the CLIP score of a memorized prompt measure copying?

Reads the generations of the sweeps listed in results/prss_tiny_world.md (outputs/...;
images_per_prompt=2, memorized prompts first) and prints the Pearson correlation between
each memorized-prompt generation's copy similarity and its CLIP score.

    python scripts/memorization_clip_vs_copy.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import glob, json, torch, numpy as np
from PIL import Image
from pathlib import Path
from benchmark.config import DatasetConfig, WorldSourceConfig
from benchmark.data.datasets import load_dataset
from benchmark.metrics.encoders import load_clip
from benchmark.metrics.memorization import PixelCopyDescriptor
from benchmark.models.backbone import PACKAGED_WORLD
torch.set_num_threads(1)
data = load_dataset(DatasetConfig(name="m", source="world", world=WorldSourceConfig(population="memorized", num_adapt=48, num_heldout=0)), 32)
model, proc = load_clip(PACKAGED_WORLD / "clip")
d = PixelCopyDescriptor()
xs, ys = [], []
for run in ["outputs/final7/0_none_epsinf_s0", "outputs/final7/1_prss_epsinf_s0", "outputs/final7/2_pe_epsinf_s0", "outputs/sw_gni/2_gni_epsinf_s0", "outputs/sw_knob/3_rt_epsinf_s0"]:
    files = sorted(glob.glob(run + "/images/*.png"))
    # images_per_prompt=2: image k belongs to prompt k // 2; memorized prompts are 0..15
    idx = [k for k in range(len(files)) if (k // 2) < 16]
    imgs = torch.stack([torch.from_numpy(np.asarray(Image.open(files[k]).convert("RGB"))).permute(2, 0, 1) for k in idx])
    texts = [data.prompts[k // 2].text() for k in idx]
    gt = data.adapt.images[[data.prompts[k // 2].ground_truth[0] for k in idx]]
    sim = (d(imgs) * d(gt)).sum(1)
    with torch.no_grad():
        inp = proc(text=texts, images=[im.permute(1, 2, 0).numpy() for im in imgs], return_tensors="pt", padding=True)
        ie = model.get_image_features(inp["pixel_values"]); te = model.get_text_features(inp["input_ids"], inp.get("attention_mask"))
        cs = 100 * torch.nn.functional.cosine_similarity(ie, te).clamp(min=0)
    xs += sim.tolist(); ys += cs.tolist()
print("n", len(xs), "pearson(copy similarity, CLIP score) on memorized prompts:", np.corrcoef(xs, ys)[0, 1])
xs, ys = np.array(xs), np.array(ys)
print("CLIP | sim>0.75:", ys[xs > 0.75].mean(), " CLIP | sim<0.5:", ys[xs < 0.5].mean(), (xs<0.5).sum())
