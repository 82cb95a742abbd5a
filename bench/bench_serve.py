"""Throughput and latency of `mlkit serve` against MLflow's scoring server and a bare FastAPI floor, side by side.

    python bench/bench_serve.py [--seconds 4] [--requests 3000] [--rounds 4] [--mlflow-python PATH]

One scikit-learn model (EdTech features, a plain scikit-learn pipeline so that every server can load it) is served
three ways, each a uvicorn process on a free 127.0.0.1 port:

- mlkit: `mlkit serve edtech@champion` with everything on: bearer token, contract checks, the prediction log;
- mlflow: `mlflow models serve --env-manager local` on the same fitted model (its python is `--mlflow-python`, a
  throwaway virtualenv with `pip install mlflow scikit-learn==<this one's version>`; skipped when absent);
- floor: a bare FastAPI endpoint calling `predict_proba`, no checks, no logging.

Each is measured at concurrency 1 and 16 with one-row and 100-row `dataframe_split` requests, for at most
`--seconds` seconds or `--requests` requests per cell, in `--rounds` slices with the servers taking turns (a
noisy machine's slow spells then fall on every server alike). Load goes to loopback only. Prints a table and the ratios we
aim for: throughput of mlkit >= 1.0x MLflow's; mlkit's p50 latency <= 1.3x the floor's at concurrency 1.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
MLKIT = str(Path(sys.executable).with_name("mlkit"))
TOKEN = "bench-token"

FLOOR_APP = """
import os

import pandas as pd
import skops.io as sio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

path = os.environ["FLOOR_MODEL"]
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
app = FastAPI()


@app.post("/invocations")
def invocations(payload: dict):
    split = payload["dataframe_split"]
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    return JSONResponse({"predictions": model.predict_proba(frame)[:, 1].tolist()})


@app.get("/health")
def health():
    return {"ok": True}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plain_model(frame, label):
    "A scikit-learn pipeline on the EdTech features with no custom classes (loadable by any server)."
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlkit.edtech.data import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
    encode = ColumnTransformer([("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES)],
                               remainder="passthrough")
    model = Pipeline([("encode", encode), ("classifier", HistGradientBoostingClassifier(max_iter=100))])
    columns = CATEGORICAL_FEATURES + NUMERIC_FEATURES
    assert sorted(columns) == sorted(FEATURES)
    return model.fit(frame[FEATURES], label)


def prepare(workdir: Path) -> dict:
    "Train the model, archive and register it (with the contract), save an MLflow copy; returns paths and data."
    sys.path.insert(0, str(REPO / "tests"))
    from test_serving_app import archived_run

    from mlkit.archive import Archive
    from mlkit.edtech.data import FEATURES, generate
    from mlkit.edtech.privacy import ingest
    from mlkit.models import save_model
    from mlkit.registry import Registry, promote

    attempts = ingest(generate(1500, seed=0), generated=True)
    model = plain_model(attempts, attempts["passed"])
    archive = Archive(workdir / "runs")
    run_id = archived_run(archive, "train", {"data_path": None}, (), {"model.skops": lambda p: save_model(model, p)},
                          origin="generated")
    registry = Registry(archive)
    registry.register("edtech", archive.get_run(run_id))
    promote(registry, "edtech", 1)
    skops_path = archive.get_run(run_id).path / "artifacts" / "model.skops"
    pickled = workdir / "model.pkl"
    import pickle
    pickled.write_bytes(pickle.dumps(model))
    sample = json.loads(generate(60, seed=5).to_json(orient="records"))
    return {"archive": archive.root, "skops": skops_path, "pickle": pickled, "features": FEATURES, "rows": sample}


def start(command: list, env: dict, url: str, health: str, headers=None, seconds: float = 120):
    "Start a server process; wait until `health` answers 200; returns the Popen."
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + health, headers=headers, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{command} not ready in {seconds} s")


def stop(process):
    "End a server process by its pid (SIGTERM, then SIGKILL)."
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def mlflow_model(python: str, pickled: Path, workdir: Path) -> Path:
    "Save the pickled model as an MLflow sklearn model with `python` (the MLflow virtualenv)."
    target = workdir / "mlflow-model"
    code = ("import pickle, sys, mlflow.sklearn\n"
            "model = pickle.loads(open(sys.argv[1], 'rb').read())\n"
            "mlflow.sklearn.save_model(model, sys.argv[2], skops_trusted_types=[\n"
            "    'sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor'])\n")
    saved = subprocess.run([python, "-c", code, str(pickled), str(target)], timeout=300, capture_output=True,
                           text=True, check=False)
    if saved.returncode != 0:
        raise RuntimeError(f"saving the MLflow model failed: {saved.stderr[-2000:]}")
    return target


def body(rows: list, features: list, count: int) -> bytes:
    "A `dataframe_split` request with `count` rows (the sample repeated)."
    picked = [rows[i % len(rows)] for i in range(count)]
    return json.dumps({"dataframe_split": {"columns": features,
                                           "data": [[row[f] for f in features] for row in picked]}}).encode()


def load(url: str, payload: bytes, concurrency: int, seconds: float, limit: int, headers: dict) -> dict:
    "Send `payload` from `concurrency` threads for `seconds` or `limit` requests; throughput and latencies."
    latencies, failures, sent, lock = [], [0], [0], threading.Lock()
    clients = [httpx.Client(base_url=url, timeout=30, headers={**headers, "Content-Type": "application/json"})
               for _ in range(concurrency)]
    ready = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(client):
        ready.wait()
        while time.monotonic() < deadline[0]:
            with lock:
                if sent[0] >= limit:
                    return
                sent[0] += 1
            started = time.perf_counter()
            answer = client.post("/invocations", content=payload)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures[0] += answer.status_code != 200

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    began = time.perf_counter()
    ready.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    for client in clients:
        client.close()
    return {"latencies": latencies, "failed": failures[0], "wall": wall}


def summary(slices: list) -> dict:
    "Requests, failures, throughput and p50/p99 latency (ms) over the `load` results of one server's slices."
    ordered = sorted(latency for piece in slices for latency in piece["latencies"])
    wall = sum(piece["wall"] for piece in slices)

    def pick(share):
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")

    return {"requests": len(ordered), "failed": sum(piece["failed"] for piece in slices),
            "rps": len(ordered) / wall if wall else float("nan"), "p50": pick(0.5), "p99": pick(0.99)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="longest measurement per cell (default 4)")
    parser.add_argument("--requests", type=int, default=3000, help="most requests per cell (default 3000)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="slices per cell, the servers taking turns, so that a slow spell of a noisy machine "
                             "falls on all of them (default 4)")
    parser.add_argument("--mlflow-python", default=os.environ.get("MLFLOW_PYTHON"),
                        help="python of a virtualenv with mlflow installed (default $MLFLOW_PYTHON; absent: skip)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    processes = []
    try:
        prepared = prepare(workdir)
        servers = {}
        port = free_port()
        env = {**os.environ, "MLKIT_PSEUDONYM_KEY": "bench-secret-not-for-production", "BENCH_TOKEN": TOKEN}
        processes.append(start([MLKIT, "serve", "edtech@champion", "--port", str(port), "--archive",
                                str(prepared["archive"]), "--token-env", "BENCH_TOKEN"], env,
                               f"http://127.0.0.1:{port}", "/health/ready"))
        servers["mlkit"] = (f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"})
        if args.mlflow_python and Path(args.mlflow_python).exists():
            model_dir = mlflow_model(args.mlflow_python, prepared["pickle"], workdir)
            port = free_port()
            mlflow_bin = str(Path(args.mlflow_python).with_name("mlflow"))
            processes.append(start([mlflow_bin, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                                    "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                                   {**os.environ, "PATH": f"{Path(mlflow_bin).parent}{os.pathsep}{os.environ['PATH']}"},
                                   f"http://127.0.0.1:{port}", "/ping"))
            servers["mlflow"] = (f"http://127.0.0.1:{port}", {})
        else:
            print("mlflow: skipped (give --mlflow-python, a virtualenv's python with mlflow installed)")
        port = free_port()
        floor = workdir / "floor.py"
        floor.write_text(FLOOR_APP)
        processes.append(start([sys.executable, "-m", "uvicorn", "floor:app", "--app-dir", str(workdir),
                                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                "--no-access-log"], {**os.environ, "FLOOR_MODEL": str(prepared["skops"])},
                               f"http://127.0.0.1:{port}", "/health"))
        servers["floor"] = (f"http://127.0.0.1:{port}", {})
        results = measure(servers, prepared, args)
        report(results)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def measure(servers: dict, prepared: dict, args) -> dict:
    "Every server at every (rows, concurrency) cell: a warm-up, then `--rounds` slices per server, taking turns."
    results = {}
    for rows in (1, 100):
        payload = body(prepared["rows"], prepared["features"], rows)
        for concurrency in (1, 16):
            slices = {name: [] for name in servers}
            for url, headers in servers.values():
                load(url, payload, 2, 0.5, 50, headers)
            for turn in range(args.rounds):
                names = list(servers)[turn % len(servers):] + list(servers)[:turn % len(servers)]
                for name in names:
                    url, headers = servers[name]
                    slices[name].append(load(url, payload, concurrency, args.seconds / args.rounds,
                                             max(1, args.requests // args.rounds), headers))
            for name, pieces in slices.items():
                results[(name, rows, concurrency)] = summary(pieces)
    return results


def ratio(a: float, b: float) -> str:
    "`a / b` as `1.23x`, or n/a when `b` is zero or missing."
    return f"{a / b:.2f}x" if b and b == b and a == a else "n/a"


def report(results: dict):
    "Print the table and the goal ratios."
    print(f"{'server':<8}{'rows':>6}{'conc':>6}{'requests':>10}{'failed':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for (name, rows, concurrency), r in sorted(results.items(), key=lambda item: (item[0][1], item[0][2])):
        print(f"{name:<8}{rows:>6}{concurrency:>6}{r['requests']:>10}{r['failed']:>8}{r['rps']:>10.1f}"
              f"{r['p50']:>9.2f}{r['p99']:>9.2f}")
    print()
    for rows in (1, 100):
        for concurrency in (1, 16):
            mlkit, floor = results[("mlkit", rows, concurrency)], results[("floor", rows, concurrency)]
            line = f"rows {rows:>3}, concurrency {concurrency:>2}:"
            if ("mlflow", rows, concurrency) in results:
                mlflow = results[("mlflow", rows, concurrency)]
                line += f" throughput mlkit/mlflow {ratio(mlkit['rps'], mlflow['rps'])};"
            line += f" p50 mlkit/floor {ratio(mlkit['p50'], floor['p50'])};"
            line += f" throughput mlkit/floor {ratio(mlkit['rps'], floor['rps'])}"
            print(line)


if __name__ == "__main__":
    main()
