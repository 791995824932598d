"""Small synthetic patient tables with planted, independent per-modality signals.

Used by the tests, the CWL test fixtures and the leakage benchmark: each modality carries one
informative feature (plus a correlated copy) and noise, with independent noise across
modalities, so fusing them must beat every single modality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcmlm.common.tables import PATIENT_ID


def planted_tables(patients: int = 60, noise_features: int = 4, effect: float = 1.2, seed: int = 0,
                   prefix: str = "P", label: str = "mlm", centres: int = 0) -> dict[str, pd.DataFrame]:
    """{'rad', 'path', 'clin'} -> patient table; the outcome column ``label`` is in 'clin'."""
    rng = np.random.default_rng(seed)
    y = np.zeros(patients, dtype=int)
    y[rng.permutation(patients)[: patients * 2 // 5]] = 1
    ids = [f"{prefix}{i:03d}" for i in range(patients)]
    tables = {}
    for m in ("rad", "path", "clin"):
        signal = rng.normal(size=patients) + effect * (y - y.mean())
        cols = {f"{m}_signal": signal, f"{m}_signal_copy": signal + 0.1 * rng.normal(size=patients)}
        cols.update({f"{m}_noise{j}": rng.normal(size=patients) for j in range(noise_features)})
        tables[m] = pd.DataFrame({PATIENT_ID: ids, **cols}).round(6)
    tables["clin"][label] = y
    if centres:
        centre = rng.integers(0, centres, patients)
        tables["clin"]["centre"] = [f"C{c}" for c in centre]
        tables["rad"].iloc[:, 1:] += (centre * 2.0)[:, None]  # a scanner offset ComBat should remove
    return tables


def merged(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out = tables["rad"]
    for m in ("path", "clin"):
        out = out.merge(tables[m], on=PATIENT_ID)
    return out
