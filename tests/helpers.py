"""Hand-made prediction files with known answers, for reducer tests."""

import numpy as np

from runner import __version__
from runner.predictions import (
    SCHEMA_VERSION,
    Provenance,
    predictions_table,
    shard_path,
    write_shard,
)


def provenance_for(framework, model, images, shard=(0, 0, 1), pair_key="k", weights="random",
                   protocol="reference", documented=None, spec=None) -> Provenance:
    """`shard` is (index, start, stop); `spec`: catalog entry fields to add or replace."""
    index, start, stop = shard
    return Provenance(
        schema_version=SCHEMA_VERSION, kpbench_version=__version__, run_id="test",
        framework=framework, model=model, pair_key=pair_key, weights=weights,
        protocol=protocol, batch_mode="batched", device="cpu", shard_seconds=2.0,
        dataset={"images": images}, shard={"index": index, "start": start, "stop": stop},
        spec={"published": {"northcutt2019": [50.0, 70.0], "documented": documented},
              "documented_source": "docs", "family": model.rstrip("0123456789"), **(spec or {})},
    )


def write_pair(out, framework, model, labels, top5, errors=(), shard=0, start=0, images=None,
               image_ids=None, **provenance):
    """One shard of `labels` rows from position `start`; `top5[i]` is row i's top-5 (None for
    the rows listed in `errors`, which are written as unreadable)."""
    ok = [i for i in range(len(labels)) if i not in errors]
    classes = np.array([top5[i] for i in ok], np.int32).reshape(-1, 5)
    probs = np.tile(np.array([0.5, 0.2, 0.1, 0.1, 0.1], np.float32), (len(ok), 1))
    prov = provenance_for(framework, model, images or len(labels),
                          (shard, start, start + len(labels)), **provenance)
    table = predictions_table(
        image_ids or [f"img{start + i}" for i in range(len(labels))],
        [start + i for i in range(len(labels))],
        labels,
        ["OSError: broken" if i in errors else None for i in range(len(labels))],
        classes, probs, prov,
    )
    write_shard(table, shard_path(out, framework, model, shard))


# A run for report tests: (framework, model, arch, parameters, GFLOPs, images of 4 it gets right)
REPORT_MODELS = [("pytorch", "resnet50", "resnet50", 25_557_032, 4.1, 3),
                 ("keras", "ResNet50", "resnet50", 25_636_712, 3.9, 2),
                 ("pytorch", "vgg16", "vgg16", 138_357_544, 15.5, 1),
                 ("keras", "MobileNet", "mobilenet_v1", 4_253_864, 0.57, 4)]


def write_report_run(out, weights="random"):
    """Four models of two frameworks on four images (northcutt2019 protocol, so the published
    figure is the 50/70 of provenance_for)."""
    recipe = {"resize": "shorter_side", "size": 256, "crop": 224, "interpolation": "bilinear"}
    for framework, model, arch, params, gflops, right in REPORT_MODELS:
        top5 = [[label if i < right else 9, 8, 7, 6, 5] for i, label in enumerate(range(4))]
        write_pair(out, framework, model, list(range(4)), top5, weights=weights, protocol="northcutt2019",
                   image_ids=[f"ILSVRC2012_val_{n:08d}.JPEG" for n in (1, 2, 3, 4)],
                   spec={"arch": arch, "num_params": params, "gflops": gflops,
                         "model_set": "northcutt2019", "recipes": {"northcutt2019": recipe}})
    return out
