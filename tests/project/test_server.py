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
       ("post", "/api/label"), ("post", "/api/skip"), ("post", "/api/mask/1"),
       ("post", "/api/lease"), ("post", "/api/logout")]


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
    left = client.post("/api/next", headers=h["alice"]).json()  # only bob's image is left
    assert (left["done"], left["waiting"], left["held"]) == (False, True, 1)
    review = client.post("/api/next?review_skipped=true", headers=h["alice"]).json()
    assert review["id"] == c["id"]
    # back: an earlier item can be shown and corrected (naming the label shown); history kept
    seq = client.get(f"/api/item/{a['key']}", headers=h["alice"]).json()["label_seq"]
    r = client.post("/api/label", headers=h["alice"],
                    json={"key": a["key"], "value": 0, "replaces": seq})
    assert r.status_code == 200
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


# -- labels: only the lease holder writes; a change is a recorded correction -----------------
def _race(client, requests):
    """Send ``requests`` (method, path, headers, json) at the same instant from threads; the
    responses in the same order."""
    import threading

    barrier = threading.Barrier(len(requests))
    out = [None] * len(requests)

    def go(i, method, path, headers, body):
        barrier.wait()
        out[i] = getattr(client, method)(path, headers=headers, json=body)

    threads = [threading.Thread(target=go, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_label_needs_the_lease_and_the_loser_of_a_race_gets_409(served):
    client, store, h = served
    a = client.post("/api/next", headers=h["alice"]).json()
    # alice and bob press a key on alice's image at the same instant: one label, alice's
    r_alice, r_bob = _race(client, [
        ("post", "/api/label", h["alice"], {"key": a["key"], "value": 1}),
        ("post", "/api/label", h["bob"], {"key": a["key"], "value": 0})])
    assert r_alice.status_code == 200
    assert r_bob.status_code == 409 and "alice" in r_bob.json()["detail"]
    # ... and bob's page trying again once alice's label is in is refused too, not an overwrite
    r = client.post("/api/label", headers=h["bob"], json={"key": a["key"], "value": 0})
    assert r.status_code == 409 and "already labelled" in r.json()["detail"]
    assert [(lab.value, lab.annotator) for lab in store.label_history(a["id"])] == [(1, "alice")]
    # an item nobody leased: two annotators labelling it at once both lose, nothing is written
    free = next(q for q in store.queries("pending") if q.lease_annotator is None)
    key = store.sample(free.sample_id).key
    rs = _race(client, [("post", "/api/label", h[n], {"key": key, "value": 0})
                        for n in ("alice", "bob")])
    assert [r.status_code for r in rs] == [409, 409]
    assert "not leased to you" in rs[0].json()["detail"]
    assert store.label_history(free.sample_id) == []


def test_a_label_changes_only_by_an_explicit_correction_of_its_own_annotator(served):
    client, store, h = served
    a = client.post("/api/next", headers=h["alice"]).json()
    assert client.post("/api/label", headers=h["alice"],
                       json={"key": a["key"], "value": 1}).status_code == 200
    seen = client.get(f"/api/item/{a['key']}", headers=h["alice"]).json()
    assert seen["label"] == 1 and seen["labelled_by"] == "alice"
    first = seen["label_seq"]
    # the same value again is a no-op; another one without `replaces` is refused
    assert client.post("/api/label", headers=h["alice"],
                       json={"key": a["key"], "value": 1}).status_code == 200
    r = client.post("/api/label", headers=h["alice"], json={"key": a["key"], "value": 0})
    assert r.status_code == 409 and "correction" in r.json()["detail"]
    # bob may not correct alice's label
    r = client.post("/api/label", headers=h["bob"],
                    json={"key": a["key"], "value": 0, "replaces": first})
    assert r.status_code == 403 and "only alice" in r.json()["detail"]
    # alice corrects it from two tabs at once: one correction lands, the other is stale
    rs = _race(client, [("post", "/api/label", h["alice"],
                         {"key": a["key"], "value": 0, "replaces": first})] * 2)
    assert sorted(r.status_code for r in rs) == [200, 409]
    assert "changed since" in next(r for r in rs if r.status_code == 409).json()["detail"]
    history = store.label_history(a["id"])
    assert [(lab.value, lab.annotator) for lab in history] == [(1, "alice"), (0, "alice")]
    assert store.corrections(a["id"]) == [
        {"seq": history[1].seq, "replaces": history[0].seq, "annotator": "alice",
         "created_at": history[1].created_at}]
    for bad in ({"replaces": "x"}, {"replaces": True}):
        r = client.post("/api/label", headers=h["alice"],
                        json={"key": a["key"], "value": 1, **bad})
        assert r.status_code == 422


def test_an_imported_label_is_not_overwritten_by_the_page(served, tmp_path):
    from medactive.project.importer import import_labels

    client, store, h = served
    sid = store.queries("pending")[0].sample_id
    csv = tmp_path / "lab.csv"
    csv.write_text(f"id,label\n{sid},b\n")
    import_labels(store, csv)
    key = store.sample(sid).key
    r = client.post("/api/label", headers=h["alice"], json={"key": key, "value": 0})
    assert r.status_code == 409 and "already labelled b by import:lab.csv" in r.json()["detail"]
    seq = client.get(f"/api/item/{key}", headers=h["alice"]).json()["label_seq"]
    r = client.post("/api/label", headers=h["alice"],
                    json={"key": key, "value": 0, "replaces": seq})
    assert r.status_code == 403
    assert [(lab.value, lab.source) for lab in store.label_history(sid)] == [(1, "import")]


def test_going_back_to_a_skipped_image_takes_its_lease(served):
    client, _, h = served
    a = client.post("/api/next", headers=h["alice"]).json()
    client.post("/api/skip", headers=h["alice"], json={"key": a["key"]})
    b = client.post("/api/next", headers=h["alice"]).json()
    assert b["id"] != a["id"]
    r = client.post("/api/label", headers=h["alice"], json={"key": a["key"], "value": 0})
    assert r.status_code == 409  # skipping gave the lease up
    taken = client.post("/api/lease", headers=h["alice"], json={"key": a["key"]})
    assert taken.status_code == 200 and taken.json()["held_by_other"] is False
    # bob cannot take it from her; she labels it
    assert client.post("/api/lease", headers=h["bob"],
                       json={"key": a["key"]}).status_code == 409
    assert client.post("/api/label", headers=h["alice"],
                       json={"key": a["key"], "value": 0}).status_code == 200
    # holding one image at a time: b was given back when she took a
    assert client.post("/api/next", headers=h["bob"]).json()["id"] == b["id"]


# -- leases of a session that went away ------------------------------------------------------
def test_next_says_what_is_held_and_sign_out_releases(served):
    client, store, h = served
    store.add_annotator("carol")
    carol = {"Authorization": f"Bearer {store.add_annotator('carol')}"}
    held = client.post("/api/next", headers=carol).json()  # carol's tab dies here
    for _ in range(3):
        item = client.post("/api/next", headers=h["alice"]).json()
        assert item["id"] != held["id"]
        client.post("/api/label", headers=h["alice"], json={"key": item["key"], "value": 0})
    waiting = client.post("/api/next", headers=h["alice"]).json()
    assert waiting["done"] is False and waiting["held"] == 1
    expires = store.batch(0)[held["rank"]].lease_expires
    from datetime import UTC, datetime

    assert waiting["next_free_at"] == datetime.fromtimestamp(expires, UTC).isoformat(
        timespec="seconds")
    assert "key" not in waiting
    # carol signs out: her image is free at once
    assert client.post("/api/logout", headers=carol).json() == {"released": 1}
    assert client.post("/api/next", headers=h["alice"]).json()["id"] == held["id"]
    assert client.post("/api/label", headers=h["alice"],
                       json={"key": held["key"], "value": 1}).status_code == 200
    done = client.post("/api/next", headers=h["alice"]).json()
    assert done["done"] is True and done["held"] == 0 and done["next_free_at"] is None


# -- serve: arguments, bind check, remote access -----------------------------------------------
def _serve(capsys, *argv):
    from medactive.cli import main

    rc = main(["serve", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_refuses_a_bad_port_in_one_line(project, capsys, port):
    rc, out, err = _serve(capsys, str(project.directory), "--port", port)
    assert rc == 2 and out == ""
    assert err.strip() == f"medactive: error: --port must be 1..65535, got {port}"


def test_serve_checks_the_port_before_saying_serving(project, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        rc, out, err = _serve(capsys, str(project.directory), "--port", str(port))
    assert rc == 2 and "serving" not in out
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_serve_refuses_a_remote_host_without_allow_remote(project, capsys):
    rc, out, err = _serve(capsys, str(project.directory), "--host", "10.1.2.3")
    assert rc == 2 and "serving" not in out and err.count("\n") == 1
    assert "--allow-remote" in err and "HTTPS" in err and "reverse proxy" in err
    rc, out, err = _serve(capsys, str(project.directory), "--host", "0.0.0.0", "--allow-remote")
    assert rc == 2 and "--allowed-host" in err and err.count("\n") == 1


def test_allowed_hosts():
    from medactive.project.server import allowed_hosts

    assert set(allowed_hosts("127.0.0.1")) == {"127.0.0.1", "localhost", "::1"}
    assert set(allowed_hosts("localhost")) == {"127.0.0.1", "localhost", "::1"}
    assert set(allowed_hosts("10.1.2.3", allow_remote=True, extra=["Labels.Example.org"])) == {
        "10.1.2.3", "labels.example.org"}


def test_requests_for_another_host_are_refused(project):
    from medactive.project.server import allowed_hosts

    app = create_app(project.directory, allowed_hosts=allowed_hosts("127.0.0.1"))
    for base in ("http://127.0.0.1:8000", "http://localhost:8000", "http://127.0.0.1",
                 "http://[::1]:8000", "http://LOCALHOST:8123"):
        assert TestClient(app, base_url=base).get("/").status_code == 200, base
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
        r = TestClient(app, base_url="http://127.0.0.1:8000").get("/", headers={"host": host})
        assert r.status_code == 400, host
        assert "not served here" in r.json()["detail"]
    remote = create_app(project.directory, allowed_hosts=allowed_hosts(
        "10.1.2.3", allow_remote=True, extra=["labels.example.org"]))
    assert TestClient(remote, base_url="https://labels.example.org").get("/").status_code == 200
    assert TestClient(remote, base_url="http://10.1.2.3:8000").get("/").status_code == 200
    assert TestClient(remote, base_url="http://localhost:8000").get("/").status_code == 400
