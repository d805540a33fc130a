"""``medactive serve``: the labelling page (FastAPI), one pending image at a time.

Security model (the page runs on a clinician's workstation or a hospital intranet):

- Every ``/api`` request except login needs ``Authorization: Bearer <token>``; a token comes
  from ``medactive project add-annotator`` and only its SHA-256 is stored. No token in a URL,
  no cookie (so no cross-site request can act for an annotator).
- Images are served by an opaque integer key of the project's samples, and only for samples of
  a queried batch: no path appears in any URL, and anything else (``../``, a file name, an
  unknown key) is a 404.
- Request bodies are capped (``max_upload_bytes``, 413 beyond), checked on the declared length
  and on the bytes actually received.
- :func:`serve` binds to ``127.0.0.1`` unless told otherwise; another address needs
  ``allow_remote`` (plain HTTP: HTTPS belongs in a reverse proxy in front). Requests whose
  ``Host`` header names another host are refused (400), so a web page elsewhere cannot reach
  the server through DNS rebinding.

Region projects (``init --region-size``): an item is a patch; its description carries the
patch's ``box`` (``x0, y0, x1, y1`` in the slice's pixels), the image is the whole slice (the
page outlines the patch), and a mask upload may be the patch or the whole slice (only the patch
is kept).

Leases: ``/api/next`` leases an item to the annotator for ``lease_seconds`` (renewed by the page
while it is open); another annotator is never offered an item under an unexpired lease. When
nothing is free it says whether items are still held by others, and until when (``held``,
``next_free_at``); ``/api/logout`` gives the annotator's leases up. ``/api/lease`` takes the
lease of an image the annotator goes back to (one they skipped). Leases live in the database, so
a restarted server keeps them.

Model-assisted labelling: once a round's model is trained (its checkpoint saved), each item of
the current batch carries ``proposal``, that model's prediction (the predictions
``project export --format label-studio`` writes as pre-annotations,
:func:`medactive.project.label_studio._model_predictions`, computed once per model and batch):
for classification the predicted class and its probability (divided by the temperature
:func:`medactive.project.signals.latest_temperature` fitted on the validation labels), for
segmentation a mask (``/api/proposal/{key}``) the page pre-fills its drawing layer with. ``why``
says why the item was chosen (strategy, round, rank, score). The label written records its
provenance: ``accepted`` (the proposal unchanged: the same class, or a mask with the same
pixels), ``edited`` (a proposal existed and the label differs) or ``scratch`` (no proposal).

Double reading (``project init --readers K``, :mod:`medactive.project.readings`): leases and
label writes go through a :class:`~medactive.project.readings.ReaderDesk` (with ``K = 1`` the
store's own methods, unchanged): each reader has their own lease, an item is offered to K
different annotators, and an item's ``label`` is the signed-in reader's own reading. An
annotator marked adjudicator (``add-annotator --adjudicator``) gets from ``/api/next`` the
undecided disagreements (``adjudicate``: true, ``readings``: each reader's label) and decides
with ``/api/adjudicate`` (``{"key", "value"}`` or ``{"key", "reader"}``; 403 for anyone else,
409 for what is not a disagreement, 422 naming the field of a bad decision). For a mask
disagreement ``/api/adjudicate/{key}/masks`` gives the adjudicator each reader's mask, their
per-pixel vote and pairwise Dice, and ``/api/adjudicate/{key}/mask?start=vote|READER`` stores
an edited mask as the decision (the same
:func:`~medactive.project.adjudication.adjudicate` as ``project adjudicate``).

Annotation cost (:mod:`medactive.project.cost`): a label may carry the page's measured
``active_ms`` (``/api/label`` JSON; ``/api/mask`` query string, with a drawn mask's ``edits``);
the server checks them (422 naming the field, nothing saved) and stores them with the label,
and counts a mask's labelled pixels itself. ``/api/project`` gives the page ``idle_seconds``.

Labels: a label is written only by the holder of the item's lease; a labelled item changes only
by a correction that names the label it replaces (``replaces``: the ``label_seq`` the page
shows), by that label's own annotator. Each write is one check-and-set transaction
(:meth:`~medactive.project.store.ProjectStore.label_as_holder`): of two concurrent writes, the
second gets 409 with a message saying why (403 for a correction of someone else's label).
"""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import logging
import math
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from medactive.errors import ConfigError, DataError
from medactive.project.cost import IDLE_SECONDS, CostError, LabelCost, mask_pixels, parse_cost
from medactive.project.store import LabelWrite, NewLabel, ProjectStore, QueryItem, Sample

logger = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 600.0
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
                "timing.js": "text/javascript; charset=utf-8"}
_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class _TooLarge(Exception):
    pass


_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"content-security-policy", _CSP.encode())]


class BodyLimitMiddleware:
    """ASGI middleware answering 413 to request bodies larger than ``max_bytes`` and adding
    security headers (no caching of images, a strict content security policy) to responses.

    Pure ASGI (not ``BaseHTTPMiddleware``), so the over-limit signal reaches it unwrapped.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = True
            if too_large:
                return await _send_413(send, self.max_bytes)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": list(message.get("headers", [])) + _HEADERS}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_413(send, self.max_bytes)


async def _send_413(send, max_bytes: int) -> None:
    body = (f'{{"detail": "request body larger than the {max_bytes} bytes allowed"}}').encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *_HEADERS]})
    await send({"type": "http.response.body", "body": body})


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, *, allow_remote: bool = False,
                  extra: Sequence[str] = ()) -> list[str]:
    """The ``Host`` header names the server answers when bound to ``host``.

    Loopback: ``localhost``, ``127.0.0.1`` and ``::1`` (and ``host``). Another address must be
    asked for with ``allow_remote``; ``extra`` adds names, e.g. the one a reverse proxy in front
    forwards. An address of every interface (``0.0.0.0``, ``::``) needs ``extra``: no request
    names it.

    Raises:
        ConfigError: a non-loopback ``host`` without ``allow_remote``, or a wildcard address
            without ``extra``.
    """
    names = {h.strip().lower().strip("[]") for h in extra if h.strip()}
    if is_loopback(host):
        return sorted({*LOOPBACK_HOSTS, host.strip().lower(), *names})
    if not allow_remote:
        raise ConfigError(f"--host {host} makes the page reachable from other machines over "
                          "plain HTTP: pass --allow-remote if you mean it, and put HTTPS in front "
                          "of it (a reverse proxy such as nginx or Caddy)")
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        if not names:
            raise ConfigError(f"--host {host} listens on every address of this machine: name "
                              "the host names browsers use with --allowed-host NAME (requests "
                              "for any other Host are refused)")
        return sorted(names)
    return sorted({host.strip().lower(), *names})


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, without port and brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


class HostCheckMiddleware:
    """ASGI middleware answering 400 to requests whose ``Host`` header is not one of
    ``allowed`` (port ignored: a reverse proxy may forward another one)."""

    def __init__(self, app, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = frozenset(h.lower() for h in allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if _host_name(raw) not in self.allowed:
                body = json.dumps({"detail": f"host {raw!r} is not served here (served: "
                                   f"{', '.join(sorted(self.allowed))})"}).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def check_port(port: int) -> None:
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"--port must be 1..65535, got {port}")


def open_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, or a one-line :class:`ConfigError`
    naming ``host:port`` (port taken, not an address of this machine, ...)."""
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the port is in use (another server?): choose another with "
                                 "--port",
               errno.EADDRNOTAVAIL: "not an address of this machine",
               errno.EACCES: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
        raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None
    return sock


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _static(name: str) -> bytes:
    return resources.files("medactive.project").joinpath("static", name).read_bytes()


def render_png(store: ProjectStore, sample: Sample) -> bytes:
    """A sample's image as 8-bit PNG bytes (grayscale or RGB) for the page."""
    from PIL import Image

    if store.task == "segmentation":
        from medactive.project.volumes import render_slice

        arr = render_slice(store, sample)
    else:
        from medactive.data.images import read_image

        arr = read_image(store.sample_path(sample), channels=int(store.get_meta("channels", 3)))
    arr = np.asarray(arr, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class Proposals:
    """The latest trained model's predictions for the items of the current batch, computed on
    first use and kept until another model or batch appears (one computation at a time)."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._values: dict[str, Any] = {}
        self._version = ""
        self._temperature = 1.0

    def _model_key(self) -> tuple:
        models = [m for m in self.store.models()
                  if m["checkpoint"] and (self.store.directory / m["checkpoint"]).is_file()]
        return (models[-1]["seq"] if models else None, self.store.current_round())

    def _refresh(self) -> None:
        key = self._model_key()
        if key == self._key:
            return
        self._key, self._values, self._version = key, {}, ""
        if key[0] is None or key[1] < 0:
            return
        from medactive.project.label_studio import _model_predictions
        from medactive.project.signals import latest_temperature

        ids = [q.sample_id for q in self.store.batch(key[1])]
        try:
            preds = _model_predictions(self.store, ids, device="cpu")
            self._temperature = float(latest_temperature(self.store))
        except Exception:  # a proposal is a help: the page works without one
            logger.exception("the model's proposals could not be computed")
            return
        if preds is not None:
            self._values, self._version = preds["values"], preds["model_version"]

    def get(self, sample_id: str) -> Any:
        """The proposal for ``sample_id``: class probabilities (temperature applied) or a
        ``[H, W]`` class mask; None when there is none."""
        with self._lock:
            self._refresh()
            value = self._values.get(sample_id)
            if value is None or self.store.task != "classification":
                return value
            from medactive.calibration import apply_temperature

            logp = np.log(np.clip(np.asarray(value, dtype=np.float64), 1e-300, None))
            return apply_temperature(logp[None], self._temperature)[0]

    def describe(self, sample_id: str) -> dict[str, Any] | None:
        """The item's ``proposal`` as the page gets it (None: no proposal)."""
        value = self.get(sample_id)
        if value is None:
            return None
        out: dict[str, Any] = {"model": self._version, "temperature": self._temperature}
        if self.store.task == "classification":
            best = int(np.argmax(value))
            return {**out, "value": best, "class": self.store.classes[best],
                    "probability": float(value[best])}
        h, w = value.shape
        return {**out, "mask": True, "height": int(h), "width": int(w)}

    def provenance(self, sample_id: str, *, value: int | None = None,
                   mask_path: str | None = None) -> str:
        """``accepted``, ``edited`` or ``scratch`` for a label about to be written."""
        proposal = self.get(sample_id)
        if proposal is None:
            return "scratch"
        if self.store.task == "classification":
            return "accepted" if value == int(np.argmax(proposal)) else "edited"
        from medactive.project.volumes import mask_png

        # masks are kept under their content hash: the same pixels give the same path
        return "accepted" if mask_path == mask_png(proposal)[0] else "edited"


def create_app(directory: str | Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               allowed_hosts: Sequence[str] | None = None):
    """The FastAPI application serving the project in ``directory``.

    Args:
        directory: an existing project.
        lease_seconds: how long an offered image stays reserved for its annotator without
            activity (the page renews it every minute while open).
        max_upload_bytes: cap on any request body (mask uploads).
        allowed_hosts: ``Host`` header names to answer (see :func:`allowed_hosts`); others get
            400. None: no check (tests); :func:`serve` always passes them.
    """
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(directory)
    if lease_seconds <= 0:
        raise ConfigError(f"lease time must be positive, got {lease_seconds}")
    app = FastAPI(title="medactive labelling", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    proposals = Proposals(store)
    app.state.proposals = proposals
    from medactive.project.readings import ReaderDesk, is_adjudicator

    desk = ReaderDesk(store)  # leases and label writes: the store's own for one reader

    def annotator(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        name = store.annotator_for_token(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            raise HTTPException(status_code=401, detail="missing or invalid token",
                                headers={"WWW-Authenticate": "Bearer"})
        return name

    def batch_item(key: str) -> tuple[Sample, QueryItem]:
        """The sample behind an opaque key, if it belongs to a batch; else 404."""
        if not key.isdigit() or len(key) > 18:
            raise HTTPException(status_code=404, detail="not found")
        sample = store.sample_by_key(int(key))
        if sample is None:
            raise HTTPException(status_code=404, detail="not found")
        rows = store.execute("SELECT round, sample_id, rank, score, status, lease_annotator, "
                             "lease_expires FROM queries WHERE sample_id = ? "
                             "ORDER BY round DESC LIMIT 1", (sample.id,))
        if not rows:
            raise HTTPException(status_code=404, detail="not found")
        return sample, QueryItem(**dict(rows[0]))

    def progress() -> dict[str, Any]:
        counts = store.counts()
        batch = counts["batch"]
        return {"round": counts["round"], "batch_size": sum(batch.values()), **batch,
                "pending_all": counts["queries"]["pending"],
                "skipped_all": counts["queries"]["skipped"]}

    region = store.task == "segmentation" and store.get_meta("region_size") is not None

    def describe(sample: Sample, item: QueryItem, who: str) -> dict[str, Any]:
        label = desk.label_of(sample.id, who)
        extra: dict[str, Any] = {}
        if region:  # the patch to outline on the slice: x = column, y = row, x1/y1 exclusive
            from medactive.project.volumes import sample_box

            r, c, h, w = sample_box(store, sample.id)
            extra["box"] = {"x0": c, "y0": r, "x1": c + w, "y1": r + h}
        strategy = store.execute("SELECT strategy FROM rounds WHERE round = ?", (item.round,))
        score = None if item.score is None or math.isnan(item.score) else item.score
        extra["why"] = {"strategy": strategy[0][0] if strategy else None, "round": item.round,
                        "rank": item.rank, "score": score}
        extra["proposal"] = (proposals.describe(sample.id)
                             if item.round == store.current_round() else None)
        return {**extra, "key": sample.key, "id": sample.id, "round": item.round, "rank": item.rank,
                "score": None if item.score is None or math.isnan(item.score) else item.score,
                "status": item.status,
                "label": None if label is None else label.value,
                "label_seq": None if label is None else label.seq,
                "mask": None if label is None else label.mask_path is not None,
                "labelled_by": None if label is None else label.annotator,
                "held_by_other": desk.held_by_other(sample.id, who),
                "progress": progress()}

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(_static("index.html").decode("utf-8"))

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(status_code=404, detail="not found")
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.post("/api/login")
    def login(who: str = Depends(annotator)) -> dict[str, Any]:
        return {"annotator": who}

    @app.get("/api/project")
    def project(who: str = Depends(annotator)) -> dict[str, Any]:
        return {"annotator": who, "task": store.task, "classes": store.classes,
                "name": store.directory.name, "lease_seconds": lease_seconds,
                "max_upload_bytes": max_upload_bytes, "progress": progress(),
                "idle_seconds": IDLE_SECONDS,
                "readers": desk.k, "adjudicator": desk.k > 1 and is_adjudicator(store, who),
                **({"region_size": store.get_meta("region_size")} if region else {})}

    @app.post("/api/next")
    def next_item(review_skipped: bool = False, who: str = Depends(annotator)) -> dict[str, Any]:
        if desk.k > 1 and is_adjudicator(store, who):
            return next_disagreement(who)
        statuses = ("skipped",) if review_skipped else ("pending",)
        item = desk.lease_next(who, seconds=lease_seconds, statuses=statuses)
        if item is None:  # nothing free: done, or waiting for leases of others
            held, until = desk.held_by_others(who, statuses=statuses)
            return {"done": held == 0, "waiting": held > 0, "held": held,
                    "next_free_at": None if until is None else _iso(until),
                    "progress": progress()}
        sample = store.sample(item.sample_id)
        return {"done": False, **describe(sample, item, who)}

    @app.post("/api/lease")
    async def take(request: Request, who: str = Depends(annotator)) -> dict[str, Any]:
        body = await _json(request)
        sample, _ = await run_in_threadpool(batch_item, str(body.get("key", "")))
        taken, holder, until = await run_in_threadpool(desk.take_lease, sample.id, who,
                                                       seconds=lease_seconds)
        if not taken:
            detail = (f"another annotator ({holder}) holds this image until {_iso(until)}"
                      if holder else "this image is labelled: nothing to lease")
            raise HTTPException(status_code=409, detail=detail)
        _, it = await run_in_threadpool(batch_item, str(sample.key))
        return await run_in_threadpool(describe, sample, it, who)

    @app.post("/api/logout")
    def logout(who: str = Depends(annotator)) -> dict[str, Any]:
        return {"released": desk.release_leases(who)}

    @app.post("/api/renew")
    def renew(who: str = Depends(annotator)) -> dict[str, Any]:
        return {"renewed": desk.renew_lease(who, seconds=lease_seconds)}

    @app.get("/api/item/{key}")
    def item(key: str, who: str = Depends(annotator)) -> dict[str, Any]:
        sample, it = batch_item(key)
        return describe(sample, it, who)

    @app.get("/api/proposal/{key}")
    def proposal(key: str, who: str = Depends(annotator)) -> dict[str, Any]:
        """The proposed mask of a segmentation item: ``{"height", "width", "values"}``, the
        class indices row-major as base64 bytes (exact, unlike a decoded image)."""
        sample, it = batch_item(key)
        value = proposals.get(sample.id) if it.round == store.current_round() else None
        if value is None or store.task != "segmentation":
            raise HTTPException(status_code=404, detail="not found")
        import base64

        mask = np.ascontiguousarray(value, dtype=np.uint8)
        return {"height": int(mask.shape[0]), "width": int(mask.shape[1]),
                "values": base64.b64encode(mask.tobytes()).decode("ascii")}

    @app.get("/api/image/{key}")
    def image(key: str, who: str = Depends(annotator)) -> Response:
        sample, _ = batch_item(key)
        try:
            data = render_png(store, sample)
        except DataError as exc:
            logger.error("%s", exc)
            raise HTTPException(status_code=500, detail="image cannot be read") from exc
        return Response(data, media_type="image/png")

    def what(lab) -> str:
        if lab.value is None:
            return "with a mask"
        return store.classes[lab.value] if 0 <= lab.value < len(store.classes) else str(lab.value)

    def refusal(out: LabelWrite) -> HTTPException:
        """The HTTP answer to a refused label write (nothing was saved)."""
        cur = out.current
        if out.outcome == "held":
            return HTTPException(status_code=409, detail=(
                f"another annotator ({out.holder}) holds this image until "
                f"{_iso(out.holder_until)}; your label was not saved"))
        if out.outcome == "not_leased":
            return HTTPException(status_code=409, detail=(
                "this image is not leased to you (skipped, signed out, or taken over after your "
                "lease ran out): open it again, then label it; your label was not saved"))
        if out.outcome == "labelled":
            return HTTPException(status_code=409, detail=(
                f"already labelled {what(cur)} by {cur.annotator}: a change must be sent as a "
                "correction of that label; your label was not saved"))
        if out.outcome == "stale":
            now = f"now {what(cur)} by {cur.annotator}" if cur else "it has none now"
            return HTTPException(status_code=409, detail=(
                f"the label changed since you saw it ({now}); your label was not saved"))
        if out.outcome == "not_owner":
            return HTTPException(status_code=403, detail=(
                f"only {cur.annotator}, who labelled this image {what(cur)}, can correct that "
                "label; your label was not saved"))
        return HTTPException(status_code=409, detail="this image is not open for labelling")

    def cost_of(active_ms, edits, *, mask: bool) -> LabelCost:
        """The measured cost sent with a label (medactive.project.cost); 422 when bad."""
        try:
            return parse_cost(active_ms, edits, mask=mask)
        except CostError as exc:
            raise HTTPException(status_code=422, detail=f"{exc}; the label was not "
                                                        "saved") from None

    def replaces_of(raw) -> int | None:
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise HTTPException(status_code=422, detail="replaces must be the label_seq of the "
                                                        "label being corrected")
        return raw

    @app.post("/api/label")
    async def label(request: Request, who: str = Depends(annotator)) -> dict[str, Any]:
        body = await _json(request)
        sample, _ = await run_in_threadpool(batch_item, str(body.get("key", "")))
        value = body.get("value")
        if store.task != "classification":
            raise HTTPException(status_code=400, detail="upload a mask for this project")
        if isinstance(value, bool) or not isinstance(value, int) or not (
                0 <= value < len(store.classes)):
            raise HTTPException(status_code=422, detail=f"value must be a class index "
                                                        f"0..{len(store.classes) - 1}")
        replaces = replaces_of(body.get("replaces"))
        spent = cost_of(body.get("active_ms"), body.get("edits"), mask=False)
        made = await run_in_threadpool(proposals.provenance, sample.id, value=value)
        out = await run_in_threadpool(desk.label_as_holder,
                                      NewLabel(sample.id, value=value, provenance=made,
                                               active_ms=spent.active_ms),
                                      annotator=who, replaces=replaces)
        if not out.ok:
            raise refusal(out)
        return {"ok": True, "label_seq": out.current.seq, "progress": progress()}

    @app.post("/api/skip")
    async def skip(request: Request, who: str = Depends(annotator)) -> dict[str, Any]:
        body = await _json(request)
        sample, it = await run_in_threadpool(batch_item, str(body.get("key", "")))
        if it.status == "labelled":
            return {"ok": True, "progress": progress()}
        if not await run_in_threadpool(desk.set_status, sample.id, "skipped", annotator=who):
            raise HTTPException(status_code=409, detail="another annotator holds this image")
        return {"ok": True, "progress": progress()}

    @app.post("/api/mask/{key}")
    async def mask(key: str, request: Request, replaces: int | None = None,
                   who: str = Depends(annotator)) -> dict[str, Any]:
        data = await request.body()  # read first: the size cap applies to every upload
        sample, _ = await run_in_threadpool(batch_item, key)
        if store.task != "segmentation":
            raise HTTPException(status_code=400, detail="this project labels classes, not masks")
        spent = cost_of(request.query_params.get("active_ms"), request.query_params.get("edits"),
                        mask=True)
        name = request.headers.get("x-filename", "mask.png").lower()
        suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii" if name.endswith(
            ".nii") else ".png"
        from medactive.project.volumes import save_uploaded_mask

        try:
            rel = await run_in_threadpool(save_uploaded_mask, store, sample, data, suffix)
        except DataError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        made = await run_in_threadpool(proposals.provenance, sample.id, mask_path=rel)
        pixels = await run_in_threadpool(mask_pixels, store, rel)
        out = await run_in_threadpool(desk.label_as_holder,
                                      NewLabel(sample.id, mask_path=rel, provenance=made,
                                               active_ms=spent.active_ms, edits=spent.edits,
                                               pixels=pixels),
                                      annotator=who, replaces=replaces)
        if not out.ok:
            raise refusal(out)
        return {"ok": True, "label_seq": out.current.seq, "progress": progress()}

    # -- double reading: the adjudicator's page (medactive.project.adjudication)
    def next_disagreement(who: str) -> dict[str, Any]:
        """The first disagreement nobody decided yet, with every reader's label; ``done`` when
        none is left."""
        from medactive.project.agreement import agreement_report

        open_ = [d for d in agreement_report(store)["disagreements"] if d["adjudicated"] is None]
        if not open_:
            return {"done": True, "waiting": False, "held": 0, "next_free_at": None,
                    "adjudicate": True, "progress": progress()}
        d = open_[0]
        sample = store.sample(d["sample_id"])
        _, it = batch_item(str(sample.key))
        return {"done": False, **describe(sample, it, who), "adjudicate": True,
                "readings": d["readings"], "open_disagreements": len(open_),
                **{k: d[k] for k in ("dice", "min_dice") if k in d}}

    def check_adjudicator(who: str) -> None:
        if not is_adjudicator(store, who):
            raise HTTPException(status_code=403, detail=f"{who} is not an adjudicator "
                                "(`medactive project add-annotator DIR NAME --adjudicator`)")

    def store_decision(decision, who: str) -> None:
        """:func:`medactive.project.adjudication.adjudicate` (the store function of
        ``project adjudicate``); a refusal is 422 naming the field, or 409 when the item is not
        (or no longer) a disagreement; nothing is stored then."""
        from medactive.project.adjudication import DecisionRefused, adjudicate

        try:
            adjudicate(store, [decision], by=who)
        except DecisionRefused as exc:
            if exc.field is None or exc.field == "sample":
                raise HTTPException(status_code=409, detail=exc.problem) from None
            field = "value" if exc.field == "label" else exc.field
            raise HTTPException(status_code=422, detail=f"{field}: {exc.problem}; nothing was "
                                                        "stored") from None
        except (ConfigError, DataError) as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc

    @app.post("/api/adjudicate")
    async def decide(request: Request, who: str = Depends(annotator)) -> dict[str, Any]:
        from medactive.project.adjudication import Decision

        body = await _json(request)
        sample, _ = await run_in_threadpool(batch_item, str(body.get("key", "")))
        await run_in_threadpool(check_adjudicator, who)
        value, reader = body.get("value"), body.get("reader")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value < len(store.classes)):
            raise HTTPException(status_code=422, detail=f"value must be a class index "
                                                        f"0..{len(store.classes) - 1}")
        if reader is not None and not isinstance(reader, str):
            raise HTTPException(status_code=422, detail="reader must be a reader's name")
        decision = Decision(sample.id, label=None if value is None else store.classes[value],
                            reader=reader, where="decision")
        await run_in_threadpool(store_decision, decision, who)
        return {"ok": True, "progress": progress()}

    def mask_disagreement(key: str, who: str) -> tuple[Sample, dict[str, Any]]:
        """The sample behind ``key`` and its entry in the mask disagreements (403 for anyone
        but an adjudicator, 409 when it is not a disagreement)."""
        from medactive.project.agreement import agreement_report

        sample, _ = batch_item(key)
        check_adjudicator(who)
        if store.task != "segmentation":
            raise HTTPException(status_code=400, detail="this project labels classes, not masks")
        found = [d for d in agreement_report(store)["disagreements"]
                 if d["sample_id"] == sample.id]
        if not found:
            raise HTTPException(status_code=409, detail=f"sample {sample.id!r} is not a "
                                                        "disagreement of its readers")
        return sample, found[0]

    @app.get("/api/adjudicate/{key}/masks")
    def reading_masks(key: str, who: str = Depends(annotator)) -> dict[str, Any]:
        """A mask disagreement for the adjudicator's page: each reader's mask, their per-pixel
        vote (:func:`~medactive.project.readings.vote_mask`) and each pair's Dice, masks as in
        ``/api/proposal``: ``{"height", "width", "readers": [{"annotator", "values"}],
        "vote", "pairs": [{"readers": [a, b], "dice"}]}``."""
        import base64
        from itertools import combinations

        from medactive.project.agreement import dice
        from medactive.project.readings import load_mask, vote_mask

        _, d = mask_disagreement(key, who)
        names = [r["annotator"] for r in d["readings"]]
        masks = [np.ascontiguousarray(load_mask(store, r["mask_path"]), dtype=np.uint8)
                 for r in d["readings"]]
        n = len(store.classes)

        def b64(m: np.ndarray) -> str:
            return base64.b64encode(np.ascontiguousarray(m, dtype=np.uint8).tobytes()).decode()

        return {"height": int(masks[0].shape[0]), "width": int(masks[0].shape[1]),
                "readers": [{"annotator": a, "values": b64(m)} for a, m in zip(names, masks,
                                                                            strict=True)],
                "vote": b64(vote_mask(masks, n)),
                "pairs": [{"readers": [names[i], names[j]], "dice": dice(masks[i], masks[j], n)}
                          for i, j in combinations(range(len(masks)), 2)]}

    @app.post("/api/adjudicate/{key}/mask")
    async def decide_mask(key: str, request: Request, start: str | None = None,
                          who: str = Depends(annotator)) -> dict[str, Any]:
        """The adjudicator's edited mask (a PNG or NIfTI body, as ``/api/mask``) settles a mask
        disagreement; ``start``: where the edit started, ``vote`` or a reader's name."""
        from medactive.project.adjudication import Decision
        from medactive.project.volumes import check_uploaded_mask

        data = await request.body()  # read first: the size cap applies to every upload
        sample, _ = await run_in_threadpool(batch_item, key)
        await run_in_threadpool(check_adjudicator, who)
        if store.task != "segmentation":
            raise HTTPException(status_code=400, detail="this project labels classes, not masks")
        name = request.headers.get("x-filename", "mask.png").lower()
        suffix = ".nii.gz" if name.endswith(".nii.gz") else ".nii" if name.endswith(
            ".nii") else ".png"
        try:
            arr = await run_in_threadpool(check_uploaded_mask, store, sample, data, suffix)
        except DataError as exc:
            raise HTTPException(status_code=422, detail=f"mask: {exc}; nothing was "
                                                        "stored") from exc
        decision = Decision(sample.id, mask=arr, start=start, where="decision")
        await run_in_threadpool(store_decision, decision, who)
        return {"ok": True, "progress": progress()}

    async def _json(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(status_code=400, detail="expected a JSON body") from exc
        if not isinstance(body, dict):
            raise HTTPException(status_code=400, detail="expected a JSON object")
        return body

    @app.exception_handler(404)
    async def not_found(request: Request, exc) -> JSONResponse:
        return JSONResponse({"detail": "not found"}, status_code=404)

    if allowed_hosts is not None:
        app.add_middleware(HostCheckMiddleware, allowed=list(allowed_hosts))
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_upload_bytes)  # outermost
    return app


def serve(directory: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          allow_remote: bool = False, extra_hosts: Sequence[str] = (),
          lease_seconds: float = DEFAULT_LEASE_SECONDS,
          max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
          on_listening: Callable[[str], None] | None = None) -> None:
    """Run the labelling page with uvicorn until interrupted.

    Everything that can fail is checked before ``on_listening(url)`` is called: the port, the
    host policy (:func:`allowed_hosts`), the project, and the bind itself (the bound socket is
    handed to uvicorn, so nobody can take the port in between).
    """
    import uvicorn

    check_port(port)
    hosts = allowed_hosts(host, allow_remote=allow_remote, extra=extra_hosts)
    app = create_app(directory, lease_seconds=lease_seconds, max_upload_bytes=max_upload_bytes,
                     allowed_hosts=hosts)
    sock = open_socket(host, port)
    try:
        if on_listening is not None:
            shown = f"[{host}]" if ":" in host else host
            on_listening(f"http://{shown}:{port}/")
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
