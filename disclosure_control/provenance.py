"""Row provenance: stable row ids carried inside the frames the researcher API loads.

A loaded extract table gets a row id per record, twice: as the index (named ``ROW_INDEX``,
so series cut from the frame, ``pd.cut`` bands and comparisons keep it through filters,
sorts and concatenation) and as a column (``ROW_ID``, so a frame keeps it through
``reset_index(drop=True)`` and ``merge``). Row ids of different tables never overlap
(each table owns a block of ids), so an id names its table and its position at once.

Nothing here is trusted by the gate: the ids are only the API's claim of which records
an output used. The gate recomputes the output from those records of the extract and
the recorded expressions; a claim that does not reproduce the published numbers fails.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ROW_ID", "ROW_INDEX", "TABLE_BLOCK", "attach_row_ids", "row_ids", "frame_row_ids"]

ROW_ID = "sdc_row"
ROW_INDEX = "sdc_row_id"
TABLE_BLOCK = 1 << 40  # ids of the k-th loaded table are k * TABLE_BLOCK + position


def attach_row_ids(frame: pd.DataFrame, block: int) -> pd.DataFrame:
    """The table with its row ids as index and as the ``ROW_ID`` column."""
    ids = np.arange(len(frame), dtype=np.int64) + np.int64(block) * TABLE_BLOCK
    out = frame.reset_index(drop=True)
    if ROW_ID in out.columns:
        out = out.drop(columns=[ROW_ID])
    out[ROW_ID] = ids
    out.index = pd.Index(ids, name=ROW_INDEX)
    return out


def _valid(ids) -> np.ndarray | None:
    try:
        arr = np.asarray(ids)
    except Exception:
        return None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        return None
    return arr.astype(np.int64, copy=False)


def frame_row_ids(frame: pd.DataFrame) -> np.ndarray | None:
    """Row ids of a frame: its ``ROW_ID`` column, else a row-id index."""
    if isinstance(frame, pd.DataFrame) and ROW_ID in frame.columns and isinstance(frame[ROW_ID], pd.Series):
        return _valid(frame[ROW_ID].to_numpy())
    if frame.index.name == ROW_INDEX:
        return _valid(frame.index.to_numpy())
    return None


def _parent_frame(series: pd.Series) -> pd.DataFrame | None:
    """The frame a column series was taken from (pandas keeps a weak reference while it caches it)."""
    cacher = getattr(series, "_cacher", None)
    if not isinstance(cacher, tuple) or len(cacher) != 2:
        return None
    try:
        parent = cacher[1]()
    except Exception:
        return None
    return parent if isinstance(parent, pd.DataFrame) else None


def row_ids(series: pd.Series) -> np.ndarray | None:
    """Row ids of a series: its row-id index, or those of the frame it is a column of."""
    if series.index.name == ROW_INDEX:
        return _valid(series.index.to_numpy())
    parent = _parent_frame(series)
    if parent is None or series.name not in parent.columns or len(parent) != len(series):
        return None
    try:
        column = parent[series.name]
        if not isinstance(column, pd.Series) or not column.index.equals(series.index) or not column.equals(series):
            return None
    except Exception:
        return None
    return frame_row_ids(parent)
