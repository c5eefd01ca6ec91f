"""``background.npz``: the benign reference an artifact carries for reasons and explanations.

* ``benign_median`` / ``benign_p05`` / ``benign_p95``: per-feature percentiles over the benign training
  windows, the "benign pods: < 1%" an operator compares a value with (NaN where never known).
* ``importance``: the model's global feature importance, non-negative, summing to 1 (zeros if unknown).
* ``sample`` / ``sample_labels``: a small stratified set of training windows (SHAP/LIME background).

numpy only: the scorer ranks inline reasons from it without any ML library.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from minerlens_core.errors import ArtifactError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Background:
    feature_names: tuple[str, ...]
    benign_median: F64
    benign_p05: F64
    benign_p95: F64
    importance: F64
    sample: F32
    sample_labels: I64

    @classmethod
    def from_windows(
        cls, names: tuple[str, ...], X: npt.ArrayLike, y: npt.ArrayLike, importance: npt.ArrayLike | None = None,
        sample_size: int = 200, seed: int = 0,
    ) -> Background:  # fmt: skip
        """Percentiles over benign rows of ``X`` and a class-stratified sample of at most ``sample_size`` rows."""
        X64 = np.asarray(X, dtype=np.float64)
        labels = np.asarray(y, dtype=np.int64)
        benign = X64[labels == 0]
        if benign.shape[0] == 0:
            msg = "a background needs benign windows"
            raise ValueError(msg)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
                q = np.nanpercentile(benign, [5, 50, 95], axis=0)
        imp = np.zeros(len(names)) if importance is None else np.clip(np.asarray(importance, np.float64), 0, None)
        if imp.sum() > 0:
            imp = imp / imp.sum()
        rng = np.random.default_rng(seed)
        rows: list[int] = []
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            k = min(len(idx), max(1, sample_size * len(idx) // len(labels)))
            rows += rng.choice(idx, size=k, replace=False).tolist()
        rows.sort()
        return cls(tuple(names), q[1], q[0], q[2], imp, X64[rows].astype(np.float32), labels[rows])

    def save(self, path: Path) -> None:
        with Path(path).open("wb") as f:
            np.savez_compressed(
                f,
                feature_names=np.array(self.feature_names),
                benign_median=self.benign_median,
                benign_p05=self.benign_p05,
                benign_p95=self.benign_p95,
                importance=self.importance,
                sample=self.sample,
                sample_labels=self.sample_labels,
            )

    @classmethod
    def load(cls, path: Path) -> Background:
        """Read a background file (never pickles); the caller verified its hash via the manifest."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                return cls(
                    tuple(str(n) for n in z["feature_names"]),
                    z["benign_median"].astype(np.float64),
                    z["benign_p05"].astype(np.float64),
                    z["benign_p95"].astype(np.float64),
                    z["importance"].astype(np.float64),
                    z["sample"].astype(np.float32),
                    z["sample_labels"].astype(np.int64),
                )
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            msg = f"{path}: unreadable background file: {exc}"
            raise ArtifactError(msg) from None
