"""Label store: a directory that accumulates validated label batches with their provenance.

Layout::

    store/store.json                      manifest: schema and one record per batch
    store/batches/<id>/labels.geojson     the accepted plots, normalised (lon/lat), with
                                          provenance properties (batch_id, source_file,
                                          source_sha256, added)
    store/batches/<id>/rejected.geojson   rejected features with their reasons (--skip-invalid)
    store/cache/<key>.npz                 per-batch feature extractions (training.extract)

Batch ids are "1", "2", ... in the order added. Batch files are written first, the manifest
last, each atomically: a batch exists once the manifest lists it, and a crash leaves at most
an unlisted directory that the next ``add`` overwrites. One writer at a time (no locking).
Adding content already in the store is refused. Loading checks each batch against the
sha256 in the manifest, so a hand-edited batch is noticed, not trained on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry import shape

from estimator.errors import LabelFileError
from estimator.location import write_json
from estimator.regions.geometry import read_features
from training.extract import BatchRef, LabelSet
from training.labels import LabelBatch, Plot, plots_sha256, read_label_file

__all__ = ["STORE_SCHEMA", "BatchRecord", "LabelStore"]

STORE_SCHEMA = 1
_MANIFEST = "store.json"


@dataclass(frozen=True)
class BatchRecord:
    """One batch as the manifest lists it."""

    id: str
    sha256: str
    """sha256 of the normalised plots (``training.labels.plots_sha256``)."""
    n_plots: int
    classes: dict[str, int]
    added: str
    """UTC time the batch was added (ISO 8601)."""
    source_file: str
    """Path of the delivered file, as given."""
    source_sha256: str
    counts: dict[str, Any]
    """read / accepted / rejected by reason / classes / without interpreter."""
    rejected_file: str | None = None
    """Relative path of rejected.geojson, when features were rejected."""
    reference_sample: dict[str, Any] | None = None
    """Provenance of a labelled reference sample batch (see ``training.labels``)."""

    def ref(self) -> BatchRef:
        return BatchRef(self.id, self.sha256, self.n_plots, dict(self.classes), self.reference_sample)


class LabelStore:
    """A label store directory (created by the first ``add``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def _manifest(self) -> dict[str, Any]:
        path = self.root / _MANIFEST
        if not path.is_file():
            return {"store_schema": STORE_SCHEMA, "batches": []}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise LabelFileError(f"{path}: unreadable label store manifest ({e})") from None
        if data.get("store_schema") != STORE_SCHEMA:
            raise LabelFileError(f"{path}: label store schema {data.get('store_schema')!r}, this code reads {STORE_SCHEMA}")
        return data

    def batches(self) -> tuple[BatchRecord, ...]:
        """The batches in the order they were added."""
        return tuple(BatchRecord(**b) for b in self._manifest()["batches"])

    def read(self, path: Path, **kwargs: Any) -> LabelBatch:
        """``read_label_file`` checked against this store (plot ids, geometries, classes).

        A delivery already in the store is named as such rather than reported as a list of
        duplicate plots."""
        records = self.batches()
        if not records:
            return read_label_file(path, **kwargs)
        existing = self.load()
        try:
            new = (*kwargs.get("new_classes", ()), *existing.classes)
            alone = read_label_file(path, **{**kwargs, "skip_invalid": True, "new_classes": new})
        except LabelFileError:
            alone = None
        same = [r.id for r in records if alone is not None and r.sha256 == alone.sha256]
        if same:
            raise LabelFileError(f"{path}: the same plots are already in the store as batch {same[0]}; nothing added")
        return read_label_file(path, existing=existing, **kwargs)

    def add(self, batch: LabelBatch) -> str:
        """Append a validated batch; return its id.

        Raises
        ------
        LabelFileError
            The same content is already in the store, or a plot id is (the batch was read
            against another state of the store).
        """
        manifest = self._manifest()
        records = [BatchRecord(**b) for b in manifest["batches"]]
        sha = batch.sha256
        for r in records:
            if r.sha256 == sha:
                raise LabelFileError(f"{batch.path}: the same plots are already in the store as batch {r.id}; nothing added")
        taken = {pid for pid in self.load().plot_ids} if records else set()
        clash = sorted(taken & {p.plot_id for p in batch.plots})
        if clash:
            raise LabelFileError(f"{batch.path}: plot_id {clash[0]!r} is already in the store ({len(clash)} clashes); "
                                 "read the file against the store (LabelStore.read)")
        batch_id = str(len(records) + 1)
        added = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        d = self.root / "batches" / batch_id
        provenance = {"batch_id": batch_id, "source_file": batch.path.name, "source_sha256": batch.file_sha256, "added": added}
        feats = []
        for p in batch.plots:
            f = p.feature()
            f["properties"].update(provenance)
            feats.append(f)
        write_json(d / "labels.geojson", {"type": "FeatureCollection", "features": feats})
        rejected_file = None
        if batch.rejected:
            rejected_file = f"batches/{batch_id}/rejected.geojson"
            write_json(self.root / rejected_file, {
                "type": "FeatureCollection",
                "features": [{**r.feature, "properties": {**r.feature["properties"], "feature_index": r.index}}
                             for r in batch.rejected],
            })
        else:
            (d / "rejected.geojson").unlink(missing_ok=True)
        record = BatchRecord(batch_id, sha, len(batch.plots), batch.class_counts(), added, str(batch.path),
                             batch.file_sha256, batch.counts(), rejected_file, batch.reference_sample)
        manifest["batches"].append(record.__dict__)
        write_json(self.root / _MANIFEST, manifest)
        return batch_id

    def load(self, batch_ids: list[str] | tuple[str, ...] | None = None) -> LabelSet:
        """The plots of ``batch_ids`` (default: all), each batch checked against its sha256."""
        records = self.batches()
        if not records:
            raise LabelFileError(f"{self.root}: no label batches; add one with `python -m training labels add FILE --store {self.root}`")
        by_id = {r.id: r for r in records}
        unknown = [b for b in (batch_ids or ()) if b not in by_id]
        if unknown:
            raise LabelFileError(f"{self.root}: no batch {unknown[0]!r}; batches: {sorted(by_id, key=int)}")
        chosen = [by_id[b] for b in batch_ids] if batch_ids else list(records)
        ids, classes, geoms, batch_of = [], [], [], []
        for r in chosen:
            path = self.root / "batches" / r.id / "labels.geojson"
            plots = [_plot(f) for f in read_features(path, LabelFileError, "label batch")]
            if plots_sha256(plots) != r.sha256:
                raise LabelFileError(f"{path} does not match its sha256 in {_MANIFEST} (edited by hand?); "
                                     "restore it, or add the edited plots as a new batch")
            ids += [p.plot_id for p in plots]
            classes += [p.class_name for p in plots]
            geoms += [p.geometry for p in plots]
            batch_of += [r.id] * len(plots)
        combined = hashlib.sha256("".join(f"{r.id}:{r.sha256}\n" for r in chosen).encode()).hexdigest()
        return LabelSet(tuple(ids), tuple(classes), tuple(geoms), self.root, combined,
                        tuple(r.ref() for r in chosen), tuple(batch_of), self.cache_dir)


def _plot(feature: dict[str, Any]) -> Plot:
    p = feature["properties"]
    return Plot(str(p["plot_id"]), str(p["class"]), shape(feature["geometry"]), dt.date.fromisoformat(p["observed"]), str(p["source"]),
                p.get("interpreter"), p.get("sample_unit"))
