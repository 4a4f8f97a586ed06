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
                   protocol="reference", documented=None, dataset=None) -> Provenance:
    """`shard` is (index, start, stop); `dataset`: more dataset entries (name, subset)."""
    index, start, stop = shard
    return Provenance(
        schema_version=SCHEMA_VERSION, kpbench_version=__version__, run_id="test",
        framework=framework, model=model, pair_key=pair_key, weights=weights,
        protocol=protocol, batch_mode="batched", device="cpu", shard_seconds=2.0,
        dataset={"images": images, **(dataset or {})}, shard={"index": index, "start": start, "stop": stop},
        spec={"published": {"northcutt2019": [50.0, 70.0], "documented": documented},
              "documented_source": "docs", "family": model.rstrip("0123456789")},
    )


def write_pair(out, framework, model, labels, top5, errors=(), shard=0, start=0, images=None,
               image_ids=None, subset_top5=None, **provenance):
    """One shard of `labels` rows from position `start`; `top5[i]` is row i's top-5 (None for
    the rows listed in `errors`, which are written as unreadable); `subset_top5` likewise, for
    a dataset scored over a class subset."""
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
        None if subset_top5 is None else (np.array([subset_top5[i] for i in ok], np.int32), probs),
    )
    write_shard(table, shard_path(out, framework, model, shard))
