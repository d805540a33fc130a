"""The labelling server through FastAPI's TestClient: auth, traversal, upload cap, leases."""

from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from medactive.cli import build_parser
from medactive.project.server import create_app
from medactive.project.workflow import query


@pytest.fixture
def served(project):
    query(project, strategy="random", budget=4)  # the random initial batch, pending
    tokens = {name: project.add_annotator(name) for name in ("alice", "bob")}
    client = TestClient(create_app(project.directory, max_upload_bytes=2048))
    return client, project, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}


API = [("post", "/api/login"), ("get", "/api/project"), ("post", "/api/next"),
       ("post", "/api/renew"), ("get", "/api/item/1"), ("get", "/api/image/1"),
       ("post", "/api/label"), ("post", "/api/skip"), ("post", "/api/mask/1")]


@pytest.mark.parametrize("method,path", API)
def test_api_refuses_without_valid_token(served, method, path):
    client, _, _ = served
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        assert getattr(client, method)(path, headers=headers).status_code == 401


def test_page_and_static_whitelist(served):
    client, _, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "medactive" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    for path in ("/static/index.html.bak", "/static/../store.py", "/static/..%2fstore.py",
                 "/static/%2e%2e/%2e%2e/etc/passwd", "/project.db", "/etc/passwd"):
        assert client.get(path).status_code == 404, path


def test_images_by_key_only(served):
    client, store, h = served
    item = client.post("/api/next", headers=h["alice"]).json()
    png = client.get(f"/api/image/{item['key']}", headers=h["alice"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (8, 8)
    assert "path" not in item and "/" not in str(item["key"])
    in_batch = {q.sample_id for q in store.queries()}
    outside = next(s for s in store.samples() if s.id not in in_batch)
    root = store.images_root
    for path in (f"/api/image/{outside.key}",  # a real sample, but not in a batch
                 "/api/image/99999", "/api/image/-1", "/api/image/1.0", "/api/image/case0001",
                 "/api/image/..%2F..%2Fetc%2Fpasswd", "/api/image/../../etc/passwd",
                 f"/api/image/{root}/case0001.png", "/api/image/%2e%2e%2fproject.db",
                 "/api/item/..%2fproject.db", "/api/image/1%00"):
        assert client.get(path, headers=h["alice"]).status_code == 404, path


def test_label_flow_and_leases(served):
    client, store, h = served
    a = client.post("/api/next", headers=h["alice"]).json()
    b = client.post("/api/next", headers=h["bob"]).json()
    assert a["id"] != b["id"]
    # bob cannot label or skip alice's image while she holds it
    assert client.post("/api/label", headers=h["bob"],
                       json={"key": a["key"], "value": 0}).status_code == 409
    assert client.post("/api/skip", headers=h["bob"], json={"key": a["key"]}).status_code == 409
    assert client.get(f"/api/item/{a['key']}", headers=h["bob"]).json()["held_by_other"]
    r = client.post("/api/label", headers=h["alice"], json={"key": a["key"], "value": 1})
    assert r.status_code == 200 and r.json()["progress"]["labelled"] == 1
    label = store.current_labels()[a["id"]]
    assert (label.value, label.annotator, label.source) == (1, "alice", "expert")
    for bad in ({"key": a["key"], "value": 2}, {"key": a["key"], "value": "a"},
                {"key": a["key"], "value": True}):
        assert client.post("/api/label", headers=h["alice"], json=bad).status_code == 422
    assert client.post("/api/label", headers=h["alice"], content=b"not json").status_code == 400
    # skip, then the next pending one; the skipped one comes back on review
    c = client.post("/api/next", headers=h["alice"]).json()
    assert c["id"] not in (a["id"], b["id"])
    assert client.post("/api/skip", headers=h["alice"], json={"key": c["key"]}).status_code == 200
    d = client.post("/api/next", headers=h["alice"]).json()
    assert d["id"] not in (a["id"], b["id"], c["id"])
    client.post("/api/label", headers=h["alice"], json={"key": d["key"], "value": 0})
    assert client.post("/api/next", headers=h["alice"]).json()["done"]
    review = client.post("/api/next?review_skipped=true", headers=h["alice"]).json()
    assert review["id"] == c["id"]
    # back: an earlier item can be shown and relabelled; history is kept
    client.post("/api/label", headers=h["alice"], json={"key": a["key"], "value": 0})
    assert [l.value for l in store.label_history(a["id"])] == [1, 0]


def test_upload_cap(served):
    client, _, h = served
    item = client.post("/api/next", headers=h["alice"]).json()
    big = b"\0" * 4096
    r = client.post(f"/api/mask/{item['key']}", headers=h["alice"], content=big)
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(8):
            yield b"\0" * 512

    r = client.post(f"/api/mask/{item['key']}", headers=h["alice"], content=chunks())
    assert r.status_code == 413
    # under the cap, a classification project refuses masks politely
    r = client.post(f"/api/mask/{item['key']}", headers=h["alice"], content=b"\0" * 100)
    assert r.status_code == 400


def test_serve_binds_to_localhost_by_default():
    args = build_parser().parse_args(["serve", "somewhere"])
    assert args.host == "127.0.0.1"
