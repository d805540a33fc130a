"""The human-in-the-loop annotation workflow: a project store (SQLite), the query/train loop on
its labels, import/export, and the labelling web page (``medactive serve``)."""

from __future__ import annotations
