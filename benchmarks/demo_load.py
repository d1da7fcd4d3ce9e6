"""A bounded load check of the Gradio demo on loopback; prints JSON.

    python benchmarks/demo_load.py [--run RUN] [--requests 64] [--clients 8] [--server-concurrency 2]

Starts ``avlab demo`` on a free loopback port, then ``--clients`` threads, each with its own
``gradio_client.Client``, send ``--requests`` requests in all, alternating voice → face and
face → voice on the demo's test clips (the whole test gallery ranked each time). Reports errors,
p50/p95/max latency per request (queue wait included) and throughput. With --uploads each query
is the clip's file uploaded (decoded, preprocessed and embedded per request). Clients take the answer
without fetching its media files unless --download (a browser fetches each gallery image once and
then has it cached). The run defaults to the newest voice-face run under runs/.
"""
import argparse
import concurrent.futures
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def one_request(client, api: str, clip: str, upload: Path | None) -> float:
    from gradio_client import handle_file

    t0 = time.perf_counter()
    out = client.predict(None if upload else clip, handle_file(str(upload)) if upload else None, None, api_name=api)
    if not out[2 if api == "/voice_to_face" else 1]["data"]:
        raise RuntimeError(f"{api} returned an empty ranking")
    return time.perf_counter() - t0


def main() -> int:
    from gradio_client import Client

    from avlab.runs import load_config, newest_runs
    from avlab.demo.process import demo_process

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a voice-face run (default: the newest under runs/)")
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--server-concurrency", type=int, default=2)
    p.add_argument("--uploads", action="store_true",
                   help="send each test clip's file as an upload (decoded and embedded per request)")
    p.add_argument("--download", action="store_true",
                   help="clients also download every returned image and audio file (a browser caches them)")
    args = p.parse_args()
    run = Path(args.run) if args.run else next(
        (r for r in newest_runs("runs") if load_config(r)[0].task == "voice-face"), None)
    if run is None:
        sys.exit("no voice-face run under runs/: `make run` or `avlab train … --eval` first, or pass --run")

    log = Path(tempfile.mkdtemp(prefix="avlab-demo-bench-")) / "server.log"
    t_start = time.perf_counter()
    with demo_process(run, log, ["--concurrency", args.server_concurrency]) as (url, _, _):
        startup = time.perf_counter() - t_start
        clients = [Client(url, verbose=False, download_files=args.download) for _ in range(args.clients)]
        info = clients[0].view_api(return_format="dict", print_info=False)
        clips = info["named_endpoints"]["/voice_to_face"]["parameters"][0]["type"]["enum"]
        data = Path(json.loads((run / "config.json").read_text())["data"])
        jobs = [(("/voice_to_face", "/face_to_voice")[i % 2], clips[i % len(clips)],
                 data / clips[i % len(clips)] if args.uploads else None) for i in range(args.requests)]
        latencies, errors = [], []

        def client_loop(k: int) -> None:
            """Client k sends its share of the jobs one after another (a Client is not shared between threads)."""
            for job in jobs[k::args.clients]:
                try:
                    latencies.append(one_request(clients[k], *job))
                except Exception as exc:  # counted and reported, not fatal: this is a load check
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client_loop, range(args.clients)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    print(json.dumps({
        "run": str(run), "gallery_identities": len({Path(c).parts[2] for c in clips}),
        "requests": args.requests, "clients": args.clients, "server_concurrency": args.server_concurrency,
        "queries": "uploaded clip files" if args.uploads else "test clips (embedded at start-up)",
        "clients_download_media": args.download,
        "errors": len(errors), "error_samples": errors[:3],
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3), "latency_p95_s": round(float(np.percentile(lat, 95)), 3),
        "latency_max_s": round(float(lat.max()), 3), "throughput_rps": round(len(latencies) / wall, 2),
        "wall_s": round(wall, 1), "server_startup_s": round(startup, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
