#!/usr/bin/env python3
"""A Baton task worker in plain Python (standard library only).

It long-polls the gateway for tasks of the types it does, renews its lease with heartbeats from
a thread while it works, and reports the result (or the failure). Baton never needs this code:
any language that speaks HTTP can do the same.

    npx baton serve                      # the gateway, on http://127.0.0.1:8080
    python3 examples/tasks/worker.py     # this worker, doing tasks of type "score"

Settings (environment): BATON_URL (default http://127.0.0.1:8080), BATON_API_KEY (when the
gateway requires keys: a key with role operator), WORKER_ID (default: host-pid),
TASK_TYPES (comma-separated, default "score"), SCORE_DELAY (seconds each task takes, default 0;
for demos and tests), WORKER_ONCE=1 (exit after one task).
"""
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

BASE = os.environ.get("BATON_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("BATON_API_KEY")
WORKER_ID = os.environ.get("WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}"
TYPES = [t for t in os.environ.get("TASK_TYPES", "score").split(",") if t]
DELAY = float(os.environ.get("SCORE_DELAY", "0"))
ONCE = os.environ.get("WORKER_ONCE") == "1"
WAIT_SECONDS = 20  # long poll: the gateway answers as soon as a task comes, or 204 after this

stopping = threading.Event()


def log(*parts):
    print(f"[{WORKER_ID}]", *parts, flush=True)


class ApiError(Exception):
    def __init__(self, status, problem):
        super().__init__(f"HTTP {status}: {problem.get('code')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem


def call(method, path, body=None, timeout=WAIT_SECONDS + 10):
    """One JSON request; returns (status, parsed body or None). Problems (4xx/5xx) raise ApiError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if API_KEY:
        req.add_header("authorization", f"Bearer {API_KEY}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
            return res.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = {"code": "HTTP_ERROR", "detail": raw.decode(errors="replace")}
        raise ApiError(e.code, problem) from None


# ------------------------------------------------------------------ the "model"

POSITIVE = {"good", "great", "love", "excellent", "happy", "thanks", "fast", "works", "perfect", "nice"}
NEGATIVE = {"bad", "broken", "hate", "slow", "angry", "refund", "terrible", "error", "crash", "worst"}


def score(task_input):
    """A tiny lexicon sentiment model: the share of positive words among the opinion words."""
    if not isinstance(task_input, dict) or not isinstance(task_input.get("text"), str):
        raise ValueError("input must be an object with a string `text`")
    words = re.findall(r"[a-z']+", task_input["text"].lower())
    pos = sum(w in POSITIVE for w in words)
    neg = sum(w in NEGATIVE for w in words)
    value = 0.5 if pos + neg == 0 else pos / (pos + neg)
    return {"score": round(value, 4), "positive": pos, "negative": neg, "model": "lexicon-v1", "worker": WORKER_ID}


# ------------------------------------------------------------------ the loop

class Heartbeat(threading.Thread):
    """Renews the lease every third of its length until stopped; notes when the lease is lost."""

    def __init__(self, task):
        super().__init__(daemon=True)
        self.task = task
        self.done = threading.Event()
        self.lost = False

    def run(self):
        interval = max(0.05, self.task["lease_ms"] / 3000)
        while not self.done.wait(interval):
            try:
                call("POST", f"/tasks/{self.task['id']}/heartbeat",
                     {"worker_id": WORKER_ID, "lease_token": self.task["lease_token"]}, timeout=10)
            except ApiError as e:
                if e.status in (404, 409):
                    log("lost the lease of", self.task["id"], "-", e.problem.get("detail"))
                    self.lost = True
                    return
                log("heartbeat failed:", e)
            except OSError as e:
                log("heartbeat failed:", e)


def handle(task):
    lease = {"worker_id": WORKER_ID, "lease_token": task["lease_token"]}
    log("leased", task["id"], "attempt", task["attempts"], "of run", task["run_id"])
    hb = Heartbeat(task)
    hb.start()
    try:
        if DELAY:
            time.sleep(DELAY)
        output = score(task["input"])
    except ValueError as e:
        # Bad input will not get better by trying again: the step fails with this error.
        hb.done.set()
        call("POST", f"/tasks/{task['id']}/fail", {**lease, "error": {"code": "BAD_INPUT", "message": str(e)}, "retryable": False})
        log("failed", task["id"], "(not retryable):", e)
        return
    except Exception as e:  # anything else may be transient: let Baton retry per the step's policy
        hb.done.set()
        call("POST", f"/tasks/{task['id']}/fail", {**lease, "error": {"code": type(e).__name__, "message": str(e)}, "retryable": True})
        log("failed", task["id"], "(retryable):", e)
        return
    finally:
        hb.done.set()
    if hb.lost:
        log("dropping the result of", task["id"], "(another worker has it)")
        return
    try:
        call("POST", f"/tasks/{task['id']}/complete", {**lease, "output": output})
        log("completed", task["id"], json.dumps(output))
    except ApiError as e:
        log("result refused for", task["id"], "-", e)


def main():
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    log("polling", BASE, "for", ",".join(TYPES))
    backoff = 0.5
    while not stopping.is_set():
        try:
            status, task = call("POST", "/tasks/poll", {"types": TYPES, "worker_id": WORKER_ID, "wait": WAIT_SECONDS})
            backoff = 0.5
        except (ApiError, OSError) as e:
            log("poll failed:", e, f"- retrying in {backoff:.1f}s")
            stopping.wait(backoff)
            backoff = min(backoff * 2, 10)
            continue
        if status == 204 or task is None:
            continue
        handle(task)
        if ONCE:
            break
    log("stopped")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
