"""Digests of pooled extraction rows, shared by ``test_bitwise_outputs.py`` and its subprocess.

Run as a script, it imports the ``skdynemb`` found first on ``PYTHONPATH`` (a past revision's tree)
and prints, as JSON, the digest of every requested configuration and the file it imported from;
with a third argument it also saves every configuration's rows (:func:`matrix`) there, as
``rows<k>`` of an ``.npz``, and the digest of everything but the rows (:func:`layout_digest`):

    PYTHONPATH=TREE python tests/_bitwise_rows.py CIFS.json CONFIGS.json [ROWS.npz]
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np


def digest(out) -> str:
    """SHA-256 of the output: per compound its elements, fractions (float64) and rows, or the matrix."""
    h = hashlib.sha256()
    if isinstance(out, np.ndarray):
        h.update(str((out.shape, out.dtype)).encode())
        h.update(np.ascontiguousarray(out).tobytes())
        return h.hexdigest()
    for compound in out:
        h.update(" ".join(compound.elements).encode())
        h.update(np.ascontiguousarray(compound.fractions, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(compound.features).tobytes())
    return h.hexdigest()


def matrix(out) -> np.ndarray:
    """The rows of an output as one float32 matrix: the 2-D array itself, or the compounds' element
    rows one after the other."""
    return out if isinstance(out, np.ndarray) else np.concatenate([c.features for c in out])


def layout_digest(out) -> str:
    """SHA-256 of everything but the row values: shape and dtype of :func:`matrix`, and per compound
    its elements and fractions (float64)."""
    h = hashlib.sha256()
    rows = matrix(out)
    h.update(str((rows.shape, rows.dtype)).encode())
    if not isinstance(out, np.ndarray):
        for compound in out:
            h.update(" ".join(compound.elements).encode())
            h.update(np.ascontiguousarray(compound.fractions, dtype=np.float64).tobytes())
    return h.hexdigest()


def rows(structures, backbone: str, pooling: str, batch_size: int, compound_features: str | None):
    """Every stage's pooled rows of ``structures`` (float32), on the CPU, without a disk cache."""
    from skdynemb import DynamicEmbeddingTransformer

    transformer = DynamicEmbeddingTransformer(
        backbone=backbone, layer="all", pooling=pooling, batch_size=batch_size,
        compound_features=compound_features, device="cpu", progress=False,
    )
    out = transformer.fit(structures).transform(structures)
    matrix = out if pooling == "mean" else np.concatenate([c.features for c in out])
    if matrix.dtype != np.float32 or len(out) != len(structures):
        raise AssertionError(f"{backbone}/{pooling}: {len(out)} rows of {matrix.dtype} for {len(structures)} structures")
    return out


def main(cifs_path: str, configs_path: str, rows_path: str | None = None) -> None:
    import torch
    from pymatgen.core import Structure

    import skdynemb

    torch.set_num_threads(1)
    with open(cifs_path) as fh:
        structures = [Structure.from_str(cif, fmt="cif") for cif in json.load(fh)]
    with open(configs_path) as fh:
        configs = json.load(fh)
    outputs = [rows(structures, *config) for config in configs]
    answer = {"skdynemb": skdynemb.__file__, "digests": [digest(out) for out in outputs]}
    if rows_path is not None:
        np.savez(rows_path, **{f"rows{k}": matrix(out) for k, out in enumerate(outputs)})
        answer["layouts"] = [layout_digest(out) for out in outputs]
    print(json.dumps(answer))


if __name__ == "__main__":
    main(*sys.argv[1:])
